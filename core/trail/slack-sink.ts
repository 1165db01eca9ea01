import type { SlackApi } from "../slack/ports.ts";
import type { Alert, AlertSink } from "./alerts.ts";

/** Slack mrkdwn control characters; event fields (user agents, session names) are caller-controlled. */
const mrkdwn = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * Alerts to the security channel (settings.slack.securityChannel) through issue C's Slack port: one
 * message per alert, the grouped events as a list, the plain text as the notification fallback.
 */
export function slackAlertSink(slack: SlackApi, channel: string): AlertSink {
  return {
    async send(alert: Alert) {
      const lines = alert.events.map(
        (event) =>
          `• \`${mrkdwn(event.eventTime ?? "?")}\` *${mrkdwn(event.eventName ?? "?")}* in ${mrkdwn(event.account ?? "?")}/${mrkdwn(event.region ?? "?")}` +
          `${event.grantId ? ` (grant \`${mrkdwn(event.grantId)}\`)` : ""}: ${mrkdwn(event.reasons.join("; "))}`,
      );
      const [title] = alert.text.split("\n");
      await slack.postMessage(channel, {
        text: alert.text.slice(0, 3_000),
        blocks: [
          {
            type: "header",
            text: { type: "plain_text", text: `:rotating_light: ${title ?? "Trail alert"}`.slice(0, 150) },
          },
          {
            type: "section",
            text: { type: "mrkdwn", text: lines.join("\n").slice(0, 2_900) || "(no details)" },
          },
          ...(alert.more > 0
            ? [
                {
                  type: "context",
                  elements: [
                    { type: "mrkdwn", text: `…and ${alert.more} more: \`access report\` lists them all` },
                  ],
                },
              ]
            : []),
        ],
      });
    },
  };
}
