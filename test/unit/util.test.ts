import { describe, expect, it } from "vitest";
import { AppError, ConflictError, ForbiddenError, InputError } from "../../core/error.ts";
import * as Identity from "../../core/identity/index.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import { formatDuration, parseDuration } from "../../core/util/duration.ts";
import { createId, grantIdOf, ID_PATTERN, requestIdOf } from "../../core/util/id.ts";
import { log } from "../../core/util/log.ts";
import { toResponse } from "../../functions/middleware/errors.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";

describe("durations", () => {
  it.each([
    ["90s", 90],
    ["30m", 1800],
    ["1h", 3600],
    ["1h30m", 5400],
    ["2d", 172_800],
  ])("parses %s", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
    expect(parseDuration(formatDuration(seconds))).toBe(seconds);
  });

  it.each(["", "0m", "1x", "h", "-5m", "1.5h", "30 m"])("rejects %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe("ids", () => {
  it("pairs each request with its grant and sorts by creation", () => {
    const ids = Array.from({ length: 100 }, () => createId("request", 1_000));
    expect([...ids].sort()).toEqual(ids);
    const id = ids[0] as string;
    expect(id).toMatch(ID_PATTERN.request);
    expect(grantIdOf(id)).toMatch(ID_PATTERN.grant);
    expect(requestIdOf(grantIdOf(id))).toBe(id);
  });
});

describe("identity from claims", () => {
  const config = parseConfig(DEMO_CONFIG_TEXT);
  it.each([
    ["API Gateway's bracket form", "[ops admins]"],
    ["a JSON array string", '["ops","admins"]'],
    ["a real array", ["ops", "admins"]],
  ])("reads groups from %s and adds directory groups", (_name, groups) => {
    const actor = Identity.fromClaims({ email: "Bob@Example.com", groups }, config);
    expect(actor).toEqual({ email: "bob@example.com", groups: ["admins", "ops", "sre-leads"] });
  });

  it("rejects claims without a usable email", () => {
    expect(() => Identity.fromClaims({ sub: "x" }, config)).toThrow(/email/);
    expect(() => Identity.fromClaims({ email: "not-an-email" }, config)).toThrow(/email/);
  });
});

describe("error responses", () => {
  it.each<[AppError, number]>([
    [new InputError("a.b", "bad"), 400],
    [new ForbiddenError("a.b", "no"), 403],
    [new ConflictError("a.b", "late"), 409],
    [new AppError("too_large", "a.b", "big"), 413],
    [new AppError("throttled", "a.b", "busy"), 429],
  ])("maps %s to its status with the error body", (error, status) => {
    const response = toResponse(error) as { statusCode: number; body: string };
    expect(response.statusCode).toBe(status);
    expect(JSON.parse(response.body)).toEqual({ error: { code: "a.b", message: error.message } });
  });

  it("hides the message of unexpected errors", () => {
    const logged = captureStderr(() => {
      const response = toResponse(new Error("db password=hunter2"), "rid") as {
        statusCode: number;
        body: string;
      };
      expect(response.statusCode).toBe(500);
      expect(response.body).not.toContain("hunter2");
    });
    expect(logged).toContain("unhandled error");
  });
});

describe("logs", () => {
  it("redacts secret-looking keys at any depth", () => {
    const line = captureStderr(() => {
      log.warn("x", {
        headers: { authorization: "Bearer abc.def" },
        token: "t",
        nested: [{ privateKey: "k" }],
        ok: 1,
      });
    });
    expect(line).not.toMatch(/abc\.def|"t"|"k"/);
    expect(JSON.parse(line)).toMatchObject({ ok: 1, token: "[redacted]" });
  });
});

function captureStderr(run: () => void): string {
  const original = process.stderr.write;
  let written = "";
  process.stderr.write = ((chunk: string) => {
    written += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    run();
  } finally {
    process.stderr.write = original;
  }
  return written;
}
