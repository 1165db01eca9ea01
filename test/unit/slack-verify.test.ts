import { describe, expect, it } from "vitest";
import { MAX_SKEW_SECONDS, SLACK_PLACEHOLDER, sign, verify } from "../../core/slack/verify.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const NOW = new Date("2026-11-21T10:00:00.000Z");
const TS = Math.floor(NOW.getTime() / 1000);
const BODY = Buffer.from(
  "token=x&team_id=T0TEAM&user_id=U0ALICE&command=%2Faccess&text=i-0a1b2c3d4e5f60718+for+30m+logs",
);

const request = (headers: Record<string, string | undefined>, body: Buffer = BODY) => ({ headers, body });
const signed = (timestamp: number | string = TS, body: Buffer | string = BODY, secret = SECRET) => ({
  "x-slack-request-timestamp": String(timestamp),
  "x-slack-signature": sign(secret, timestamp, body),
});

describe("Slack request verification (v0 HMAC-SHA256 over the raw body, 5-minute window)", () => {
  it("matches Slack's documented example signature", () => {
    // api.slack.com "Verifying requests from Slack": the sample secret, timestamp and body.
    const body =
      "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    expect(sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body)).toBe(
      "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    );
  });

  it("accepts a correctly signed request within the window", () => {
    expect(verify(SECRET, request(signed()), NOW)).toEqual({ ok: true });
    expect(verify(SECRET, request(signed(TS - MAX_SKEW_SECONDS)), NOW)).toEqual({ ok: true });
    expect(verify(SECRET, request(signed(TS + MAX_SKEW_SECONDS)), NOW)).toEqual({ ok: true });
  });

  it.each<[string, Record<string, string | undefined>, Buffer | undefined, string]>([
    ["a tampered body", signed(), Buffer.from(`${BODY.toString()}&text=sudo`), "bad_signature"],
    [
      "a tampered timestamp",
      { ...signed(), "x-slack-request-timestamp": String(TS - 1) },
      undefined,
      "bad_signature",
    ],
    ["a stale timestamp (> 5 min)", signed(TS - MAX_SKEW_SECONDS - 1), undefined, "stale_timestamp"],
    ["a future timestamp (> 5 min)", signed(TS + MAX_SKEW_SECONDS + 1), undefined, "future_timestamp"],
    ["no signature header", { "x-slack-request-timestamp": String(TS) }, undefined, "missing_headers"],
    [
      "no timestamp header",
      { "x-slack-signature": signed()["x-slack-signature"] },
      undefined,
      "missing_headers",
    ],
    ["no headers at all", {}, undefined, "missing_headers"],
    [
      "a non-numeric timestamp",
      { ...signed(), "x-slack-request-timestamp": "12ab" },
      undefined,
      "malformed_timestamp",
    ],
    [
      "a v1 signature",
      { ...signed(), "x-slack-signature": signed()["x-slack-signature"].replace("v0=", "v1=") },
      undefined,
      "malformed_signature",
    ],
    [
      "a truncated signature",
      { ...signed(), "x-slack-signature": signed()["x-slack-signature"].slice(0, 40) },
      undefined,
      "malformed_signature",
    ],
    ["the wrong secret", signed(TS, BODY, "another-apps-secret"), undefined, "bad_signature"],
    [
      "a signature over the base64 form of the body",
      signed(TS, BODY.toString("base64")),
      undefined,
      "bad_signature",
    ],
  ])("rejects %s", (_name, headers, body, reason) => {
    expect(verify(SECRET, request(headers, body ?? BODY), NOW)).toEqual({ ok: false, reason });
  });

  it("never verifies with the deploy placeholder or an empty secret, even when signed with it", () => {
    expect(verify(SLACK_PLACEHOLDER, request(signed(TS, BODY, SLACK_PLACEHOLDER)), NOW)).toEqual({
      ok: false,
      reason: "not_configured",
    });
    expect(verify("", request(signed(TS, BODY, "")), NOW)).toMatchObject({
      ok: false,
      reason: "not_configured",
    });
    expect(verify(undefined, request(signed()), NOW)).toMatchObject({ ok: false, reason: "not_configured" });
  });
});
