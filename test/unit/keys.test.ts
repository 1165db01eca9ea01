import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { existingKeyPair, generateKeyPair } from "../../cli/keys.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const roots: string[] = [];
const tempRoot = () => {
  const dir = mkdtempSync(join(tmpdir(), "access-keys-test-"));
  roots.push(dir);
  return dir;
};

afterAll(() => {
  for (const dir of roots) rmSync(dir, { recursive: true, force: true });
});

/** A child process that makes a key in `root`, prints its directory, then does `then`. */
function child(root: string, then: string) {
  const script = join(root, "child.ts");
  writeFileSync(
    script,
    `import { generateKeyPair } from ${JSON.stringify(join(ROOT, "cli/keys.ts"))};
const key = generateKeyPair("test", { tmpRoot: ${JSON.stringify(root)} });
process.stdout.write(key.dir + "\\n");
${then}
`,
  );
  const process_ = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const dir = new Promise<string>((done) => {
    let out = "";
    process_.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes("\n")) done(out.trim());
    });
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    process_.once("exit", (code, signal) => done({ code, signal })),
  );
  return { process: process_, dir, exit };
}

describe("generateKeyPair", () => {
  it("makes an ED25519 pair in a 0700 directory, both files 0600, and dispose removes it", () => {
    const key = generateKeyPair("access-broker-gr_01jxexample000000000000000", { tmpRoot: tempRoot() });
    expect(key.dir && statSync(key.dir).mode & 0o777).toBe(0o700);
    expect(statSync(key.privateKeyPath).mode & 0o777).toBe(0o600);
    expect(statSync(`${key.privateKeyPath}.pub`).mode & 0o777).toBe(0o600);
    expect(key.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+ access-broker-gr_01jxexample000000000000000$/);
    expect(readFileSync(key.privateKeyPath, "utf8")).toContain(["BEGIN OPENSSH", "PRIVATE KEY"].join(" ")); // split: no key marker in the repo
    key.dispose();
    expect(existsSync(key.dir as string)).toBe(false);
    key.dispose();
  });

  it("makes a new pair every time", () => {
    const root = tempRoot();
    const a = generateKeyPair("a", { tmpRoot: root });
    const b = generateKeyPair("b", { tmpRoot: root });
    expect(a.publicKey.split(" ")[1]).not.toBe(b.publicKey.split(" ")[1]);
    a.dispose();
    b.dispose();
    expect(readdirSync(root)).toEqual([]);
  });

  it.each([
    ["a normal exit", "", { code: 0, signal: null }],
    ["an uncaught exception", "throw new Error('boom');", { code: 1, signal: null }],
    [
      "SIGTERM",
      "process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 10_000);",
      { code: null, signal: "SIGTERM" },
    ],
    [
      "SIGINT (Ctrl-C)",
      "process.kill(process.pid, 'SIGINT'); setTimeout(() => {}, 10_000);",
      { code: null, signal: "SIGINT" },
    ],
    [
      "SIGHUP",
      "process.kill(process.pid, 'SIGHUP'); setTimeout(() => {}, 10_000);",
      { code: null, signal: "SIGHUP" },
    ],
  ])(
    "removes the key directory on %s, and the process still ends the same way",
    async (_name, then, ending) => {
      const root = tempRoot();
      const run = child(root, then);
      const dir = await run.dir;
      expect(dir.startsWith(join(root, "access-ssh-"))).toBe(true);
      expect(await run.exit).toEqual(ending);
      expect(existsSync(dir)).toBe(false);
    },
  );
});

describe("existingKeyPair", () => {
  it("reads the public half from <file>.pub and never removes the user's key", () => {
    const root = tempRoot();
    const made = generateKeyPair("mine", { tmpRoot: root });
    const key = existingKeyPair(made.privateKeyPath);
    expect(key.publicKey).toBe(made.publicKey);
    key.dispose();
    expect(existsSync(made.privateKeyPath)).toBe(true);
    made.dispose();
  });

  it("derives the public half with ssh-keygen -y when there is no .pub file", () => {
    const root = tempRoot();
    const made = generateKeyPair("mine", { tmpRoot: root });
    rmSync(`${made.privateKeyPath}.pub`);
    expect(existingKeyPair(made.privateKeyPath).publicKey.split(" ").slice(0, 2)).toEqual(
      made.publicKey.split(" ").slice(0, 2),
    );
    made.dispose();
  });

  it("refuses a missing file and key types EC2 Instance Connect does not take", () => {
    const root = tempRoot();
    expect(() => existingKeyPair(join(root, "nope"))).toThrow(/does not exist/);
    writeFileSync(join(root, "ecdsa"), "");
    writeFileSync(join(root, "ecdsa.pub"), "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= me\n");
    expect(() => existingKeyPair(join(root, "ecdsa"))).toThrow(/not an ED25519 or RSA key/);
  });
});
