import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Slack request signing ("Verifying requests from Slack"): `v0=` + hex HMAC-SHA256 of
 * `v0:<timestamp>:<raw body>` keyed with the app's signing secret. The raw body is hashed exactly as
 * received (after undoing API Gateway's base64), before anything parses it.
 */

/** Slack's replay window. Bolt checks only the past; we check the absolute skew (a future stamp is no better). */
export const MAX_SKEW_SECONDS = 5 * 60;

/** The value infra/secrets.ts deploys when no Slack app is set up: public, so never a usable key. */
export const SLACK_PLACEHOLDER = "slack-not-configured";

/** A signing secret the broker may verify with: set, and not the public placeholder. */
export function isUsableSecret(secret: string | undefined): secret is string {
  return secret !== undefined && secret.trim() !== "" && secret !== SLACK_PLACEHOLDER;
}

export type Rejection =
  | "missing_headers"
  | "malformed_timestamp"
  | "stale_timestamp"
  | "future_timestamp"
  | "malformed_signature"
  | "bad_signature"
  | "not_configured";

export type Verdict = { ok: true } | { ok: false; reason: Rejection };

export interface SignedRequest {
  /** Lower-case header names, as API Gateway (payload 2.0) delivers them. */
  headers: Record<string, string | undefined>;
  body: Buffer;
}

/** `v0=<hex>` for `body` sent at `timestamp` (seconds): what Slack puts in `X-Slack-Signature`. */
export function sign(secret: string, timestamp: number | string, body: Buffer | string): string {
  const mac = createHmac("sha256", secret);
  mac.update(`v0:${timestamp}:`);
  mac.update(body);
  return `v0=${mac.digest("hex")}`;
}

/** Checks the signature and the timestamp window; the body is not looked at beyond hashing it. */
export function verify(secret: string | undefined, request: SignedRequest, now: Date): Verdict {
  if (!isUsableSecret(secret)) return { ok: false, reason: "not_configured" };
  const timestamp = request.headers["x-slack-request-timestamp"];
  const signature = request.headers["x-slack-signature"];
  if (!timestamp || !signature) return { ok: false, reason: "missing_headers" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "malformed_timestamp" };
  const skew = Math.floor(now.getTime() / 1000) - Number(timestamp);
  if (skew > MAX_SKEW_SECONDS) return { ok: false, reason: "stale_timestamp" };
  if (skew < -MAX_SKEW_SECONDS) return { ok: false, reason: "future_timestamp" };
  if (!/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: "malformed_signature" };
  const expected = Buffer.from(sign(secret, timestamp, request.body), "utf8");
  const given = Buffer.from(signature, "utf8");
  // Same length by the pattern above, so timingSafeEqual cannot throw, and the compare is constant-time.
  return timingSafeEqual(expected, given) ? { ok: true } : { ok: false, reason: "bad_signature" };
}
