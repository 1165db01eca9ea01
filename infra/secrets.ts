// Per-stage values set with `sst secret set <Name> <value> --stage <stage>`.

// No placeholder: an authorizer pointed at a made-up issuer would reject every token, so a stage without
// a real identity provider should fail at deploy time instead of deploying an API nobody can call.
export const oidcIssuer = new sst.Secret("OidcIssuer");

// Comma-separated, because an IdP often issues tokens for several client ids (web app, CLI) at once.
export const oidcAudience = new sst.Secret("OidcAudience");

// The Slack app's secrets (README § Slack setup). The placeholder keeps stages without a Slack app deployable;
// the Slack adapter treats it as "Slack disabled" and never as a usable signing key, since this value is
// public (core/slack/verify.ts has the same constant).
export const SLACK_PLACEHOLDER = "slack-not-configured";
export const slackSigningSecret = new sst.Secret("SlackSigningSecret", SLACK_PLACEHOLDER);
export const slackBotToken = new sst.Secret("SlackBotToken", SLACK_PLACEHOLDER);

export const jwtIssuer = oidcIssuer.value.apply((issuer) => {
  // API Gateway only accepts an https issuer; failing here names the secret instead of a CloudFormation-style
  // error from the authorizer resource.
  if (!issuer.startsWith("https://")) {
    throw new Error(`OidcIssuer must be an https URL, got "${issuer}"`);
  }
  return issuer;
});

export const jwtAudiences = oidcAudience.value.apply((value) => {
  const audiences = value
    .split(",")
    .map((audience) => audience.trim())
    .filter((audience) => audience.length > 0);
  if (audiences.length === 0) {
    throw new Error("OidcAudience must list at least one audience");
  }
  return audiences;
});
