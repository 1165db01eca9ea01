import { beforeAll, describe, expect, it } from "vitest";
import {
  createTestBroker,
  DEMO_CONFIG_TEXT,
  requestBody,
  snapshot,
  type TestBroker,
} from "../helpers/broker.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";

/** Demo config where bob is also an admin: self-approval must stay impossible. */
const ADMIN_CONFIG = DEMO_CONFIG_TEXT.replace("admins: []", "admins: [user:bob@example.com]");

let broker: TestBroker;
beforeAll(async () => {
  broker = await createTestBroker(ADMIN_CONFIG);
});

/** Every case: a 4xx with the error body, and neither a request nor an audit record written. */
async function expectRejected(
  user: string | null,
  method: string,
  path: string,
  options: Parameters<TestBroker["call"]>[3],
  status: number,
  code?: string,
) {
  const before = await snapshot(broker);
  const response = await broker.call(user, method, path, options);
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(response.body.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
  if (code) expect(response.body.error.code).toBe(code);
  expect(await snapshot(broker)).toEqual(before);
  return response.body.error;
}

describe("POST /requests rejects bad bodies and writes nothing", () => {
  it.each([
    ["malformed JSON", { rawBody: '{"instanceId": ' }, 400, "input.malformed_json"],
    [
      "a wrong content type",
      { rawBody: "instanceId=i-1", headers: { "content-type": "text/plain" } },
      415,
      undefined,
    ],
    [
      "a form body",
      { rawBody: "a=b", headers: { "content-type": "application/x-www-form-urlencoded" } },
      415,
      undefined,
    ],
    ["an unknown field", { body: requestBody({ admin: true }) }, 400, "input.invalid"],
    ["a wrong type", { body: requestBody({ durationSeconds: "1800" }) }, 400, "input.invalid"],
    ["a JSON array", { body: [requestBody()] }, 400, "input.invalid"],
    ["null", { rawBody: "null" }, 400, "input.invalid"],
    ["a body over 64 KB", { body: requestBody({ reason: "x".repeat(70_000) }) }, 413, "input.body_too_large"],
    ["a short instance id", { body: requestBody({ instanceId: "i-123" }) }, 400, "input.invalid"],
    [
      "an upper-case instance id",
      { body: requestBody({ instanceId: "i-0A1B2C3D4E5F60718" }) },
      400,
      "input.invalid",
    ],
    [
      "an instance id with a suffix",
      { body: requestBody({ instanceId: "i-0a1b2c3d4e5f60718;rm" }) },
      400,
      undefined,
    ],
    ["an OS user starting with -", { body: requestBody({ osUser: "-oProxyCommand" }) }, 400, "input.invalid"],
    ["an OS user of 32 characters", { body: requestBody({ osUser: "a".repeat(32) }) }, 400, "input.invalid"],
    ["an OS user with a space", { body: requestBody({ osUser: "ec2 user" }) }, 400, "input.invalid"],
    ["an empty OS user", { body: requestBody({ osUser: "" }) }, 400, "input.invalid"],
    [
      "an OS user the rule does not allow",
      { body: requestBody({ osUser: "root" }) },
      400,
      "request.violates_rule",
    ],
    [
      "a port the rule does not allow",
      { body: requestBody({ method: "tunnel", osUser: undefined, port: 3389 }) },
      400,
      "request.violates_rule",
    ],
    [
      "a port out of range",
      { body: requestBody({ method: "tunnel", osUser: undefined, port: 70_000 }) },
      400,
      "input.invalid",
    ],
    ["a port on an ssh request", { body: requestBody({ port: 22 }) }, 400, "request.violates_rule"],
    [
      "a duration above the rule",
      { body: requestBody({ durationSeconds: 7_200 }) },
      400,
      "request.violates_rule",
    ],
    ["a zero duration", { body: requestBody({ durationSeconds: 0 }) }, 400, "input.invalid"],
    ["a negative duration", { body: requestBody({ durationSeconds: -60 }) }, 400, "input.invalid"],
    ["a fractional duration", { body: requestBody({ durationSeconds: 1.5 }) }, 400, "input.invalid"],
    [
      "an empty reason where one is required",
      { body: requestBody({ reason: "  " }) },
      400,
      "request.violates_rule",
    ],
    [
      "a start in the past",
      { body: requestBody({ startAt: "2001-01-01T00:00:00Z" }) },
      400,
      "request.invalid_start",
    ],
    ["a method that does not exist", { body: requestBody({ method: "telnet" }) }, 400, "input.invalid"],
  ])("rejects %s", async (_name, options, status, code) => {
    await expectRejected(ALICE, "POST", "/requests", options, status, code);
  });

  it("lists every problem of the body at once", async () => {
    const error = await expectRejected(
      ALICE,
      "POST",
      "/requests",
      { body: { instanceId: "nope", method: "ssh", durationSeconds: -1, reason: 5, extra: 1 } },
      400,
    );
    const paths = (error.details as { path: string }[]).map((issue) => issue.path).sort();
    expect(paths).toEqual(expect.arrayContaining(["durationSeconds", "instanceId", "reason"]));
  });

  it("refuses instances outside every target and users outside every rule", async () => {
    await expectRejected(
      ALICE,
      "POST",
      "/requests",
      { body: requestBody({ instanceId: "i-00000000deadbeef" }) },
      403,
      "policy.unknown_target",
    );
    await expectRejected(
      "carol@example.com",
      "POST",
      "/requests",
      { body: requestBody() },
      403,
      "policy.no_matching_rule",
    );
  });

  it("rejects a reused Idempotency-Key with another body, and malformed keys", async () => {
    const first = await broker.call(ALICE, "POST", "/requests", {
      body: requestBody(),
      headers: { "Idempotency-Key": "k-1" },
    });
    expect(first.status).toBe(201);
    await expectRejected(
      ALICE,
      "POST",
      "/requests",
      { body: requestBody({ reason: "something else" }), headers: { "Idempotency-Key": "k-1" } },
      409,
      "idempotency.mismatch",
    );
    await expectRejected(
      ALICE,
      "POST",
      "/requests",
      { body: requestBody(), headers: { "Idempotency-Key": "a b" } },
      400,
    );
    await expectRejected(
      ALICE,
      "POST",
      "/requests",
      { body: requestBody(), headers: { "Idempotency-Key": "x".repeat(300) } },
      400,
    );
  });
});

describe("acting on requests one may not act on", () => {
  it("keeps strangers out and the requester from deciding", async () => {
    const own = await broker.call(BOB, "POST", "/requests", {
      body: requestBody({ instanceId: "i-0fedcba9876543210", ticket: "INC-42" }),
    });
    expect(own.status).toBe(201);
    // bob is an admin and an sre-lead, yet cannot approve his own request
    await expectRejected(BOB, "POST", `/requests/${own.body.id}/approve`, {}, 403, "request.self_approval");
    await expectRejected(BOB, "POST", `/requests/${own.body.id}/deny`, {}, 403, "request.self_approval");
    await expectRejected(ALICE, "POST", `/requests/${own.body.id}/cancel`, {}, 404, "request.not_found");
    await expectRejected(ALICE, "POST", `/requests/${own.body.id}/approve`, {}, 404, "request.not_found");

    const dave = await broker.call("dave@example.com", "POST", `/requests/${own.body.id}/approve`);
    expect(dave.status).toBe(200);
    await expectRejected(
      "dave@example.com",
      "POST",
      `/requests/${own.body.id}/approve`,
      {},
      409,
      "request.already_approved",
    );
  });

  it("refuses decisions on finished requests and unknown ids", async () => {
    const request = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    await broker.call(ALICE, "POST", `/requests/${request.body.id}/cancel`);
    await expectRejected(BOB, "POST", `/requests/${request.body.id}/approve`, {}, 409, "request.not_pending");
    await expectRejected(
      ALICE,
      "POST",
      `/requests/${request.body.id}/cancel`,
      {},
      409,
      "request.not_pending",
    );
    await expectRejected(BOB, "POST", `/grants/${request.body.grantId}/revoke`, {}, 404, "grant.not_found");
    await expectRejected(BOB, "POST", "/requests/req_nope/approve", {}, 404);
    await expectRejected(BOB, "POST", "/requests/../../etc/approve", {}, 404);
    await expectRejected(BOB, "GET", "/grants/gr_01m7y9ms5fjay2j5d0d4qd3wev", {}, 404, "grant.not_found");
  });

  it("rejects unknown fields and bad values on decisions", async () => {
    const request = await broker.call(ALICE, "POST", "/requests", { body: requestBody() });
    await expectRejected(BOB, "POST", `/requests/${request.body.id}/approve`, { body: { comment: 1 } }, 400);
    await expectRejected(
      BOB,
      "POST",
      `/requests/${request.body.id}/approve`,
      { body: { approve: true } },
      400,
    );
    await expectRejected(ALICE, "POST", `/requests/${request.body.id}/cancel`, { rawBody: "{" }, 400);
  });
});

describe("queries and routes", () => {
  it.each([
    ["an unknown filter", "/requests", { owner: "bob" }],
    ["a bad status", "/requests", { status: "done" }],
    ["a limit of 0", "/requests", { limit: "0" }],
    ["a limit over 100", "/requests", { limit: "101" }],
    ["a forged cursor", "/requests", { cursor: "eyJpIjoiZ3NpNCIsImsiOnsicGsiOjF9fQ" }],
    ["a garbage cursor", "/requests", { cursor: "!!!" }],
    ["a bad audit time", "/audit/events", { from: "yesterday" }],
  ])("rejects %s", async (_name, path, query) => {
    await expectRejected("carol@example.com", "GET", path, { query }, 400);
  });

  it("answers unknown routes and missing identity with 404 and 401", async () => {
    await expectRejected(ALICE, "GET", "/nope", {}, 404, "route.not_found");
    await expectRejected(ALICE, "DELETE", "/requests", {}, 404);
    await expectRejected(null, "GET", "/requests", {}, 401, "auth.unauthorized");
    // the dev issuer exists only in the local server, never in the Lambda handler
    await expectRejected(null, "POST", "/dev/login", { body: { user: ALICE } }, 404, "route.not_found");
  });
});
