import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePublicKey } from "../../core/access/ssh-key.ts";
import { AppError } from "../../core/error.ts";

// Keys are generated here, at test time, and deleted afterwards: no private key is ever committed.
let dir: string;
const keys: Record<string, { public: string; private: string; fingerprint: string }> = {};
const key = (name: string) => {
  const found = keys[name];
  if (!found) throw new Error(`no generated key ${name}`);
  return found;
};

function generate(name: string, args: string[]) {
  const path = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-N", "", "-C", `${name}@test`, "-f", path, ...args]);
  const fingerprint = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${path}.pub`], {
    encoding: "utf8",
  });
  keys[name] = {
    public: readFileSync(`${path}.pub`, "utf8"),
    private: readFileSync(path, "utf8"),
    fingerprint: fingerprint.split(" ")[1] ?? "",
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ssh-key-test-"));
  generate("ed25519", ["-t", "ed25519"]);
  generate("rsa2048", ["-t", "rsa", "-b", "2048"]);
  generate("rsa4096", ["-t", "rsa", "-b", "4096"]);
  generate("rsa3072", ["-t", "rsa", "-b", "3072"]);
  generate("rsa1024", ["-t", "rsa", "-b", "1024"]);
  generate("ecdsa", ["-t", "ecdsa", "-b", "256"]);
  generate("rsa2048pem", ["-t", "rsa", "-b", "2048", "-m", "PEM"]);
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The InputError thrown for `text`, checked never to quote it. */
function rejection(text: string): AppError {
  try {
    parsePublicKey(text);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    const appError = error as AppError;
    expect(appError.kind).toBe("input");
    const said = `${appError.message} ${JSON.stringify(appError.details ?? null)}`;
    for (const token of text.split(/\s+/).filter((part) => part.length >= 16))
      expect(said).not.toContain(token);
    return appError;
  }
  throw new Error("expected the key to be rejected");
}

describe("public keys the broker accepts", () => {
  it.each(["ed25519", "rsa2048", "rsa4096"])("accepts %s with ssh-keygen's SHA256 fingerprint", (name) => {
    const generated = key(name);
    const parsed = parsePublicKey(generated.public);
    expect(parsed.fingerprint).toBe(generated.fingerprint);
    expect(parsed.line).toBe(generated.public.trim());
    expect(parsed.bits).toBe({ ed25519: 256, rsa2048: 2048, rsa4096: 4096 }[name]);
  });

  it("accepts a bare ed25519 line of exactly 80 characters (SendSSHPublicKey's minimum)", () => {
    const bare = key("ed25519").public.split(" ").slice(0, 2).join(" ");
    expect(bare).toHaveLength(80);
    expect(parsePublicKey(bare).line).toBe(bare);
  });
});

describe("what the broker refuses, without echoing it", () => {
  it.each(["ed25519", "rsa2048", "rsa2048pem", "ecdsa"])("refuses the %s private key file", (name) => {
    expect(rejection(key(name).private).code).toBe("key.private_key");
  });

  it("refuses private key material even without its armour, or pasted after a public key", () => {
    const body = key("ed25519").private.split("\n").slice(1, -2).join("");
    expect(rejection(body).code).toBe("key.private_key");
    expect(rejection(`${key("ed25519").public.trim()} ${body}`).code).toBe("key.private_key");
    expect(rejection("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none").code).toBe("key.private_key");
  });

  it.each([
    ["rsa3072", "key.unsupported_size"],
    ["rsa1024", "key.unsupported_size"],
    ["ecdsa", "key.unsupported_type"],
  ])("refuses a %s public key (%s)", (name, code) => {
    expect(rejection(key(name).public).code).toBe(code);
  });

  it("refuses authorized_keys options, several lines, and bad blobs", () => {
    const [type, base64] = key("ed25519").public.split(" ") as [string, string];
    expect(rejection(`command="/bin/sh" ${type} ${base64}`).code).toBe("key.unsupported_type");
    expect(rejection(`${key("ed25519").public.trim()}\n${key("rsa2048").public.trim()}`).code).toBe(
      "key.not_one_line",
    );
    expect(rejection(`ssh-rsa ${base64} mismatched-type-and-blob`).code).toBe("key.malformed");
    const truncated = Buffer.from(base64, "base64").subarray(0, 40).toString("base64");
    expect(rejection(`${type} ${truncated} a-comment-long-enough-for-the-length-check`).code).toBe(
      "key.malformed",
    );
    expect(rejection(`${type} ${base64.replace(/.$/, "*")} not-base64-at-all`).code).toBe("key.malformed");
    const extra = Buffer.concat([Buffer.from(base64, "base64"), Buffer.from([0, 0, 0, 1, 7])]).toString(
      "base64",
    );
    expect(rejection(`${type} ${extra}`).code).toBe("key.malformed");
  });

  it("refuses lines outside 80-4096 characters and non-ASCII comments", () => {
    expect(rejection("ssh-ed25519 AAAA").code).toBe("key.invalid_length");
    expect(rejection(`${key("rsa4096").public.trim()} ${"x".repeat(4096)}`).code).toBe("key.invalid_length");
    expect(rejection(`${key("ed25519").public.trim()} caf\u00e9`).code).toBe("key.invalid_comment");
  });
});
