import { execFile, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprint, selectKeys } from "../../local/demo-instance/authorized-keys.mjs";
import {
  AUTHORIZED_KEYS_SCRIPT,
  DemoInstanceError,
  installKeyScript,
  isSshdAvailable,
  keyFingerprint,
  sshdConfig,
  unsafeCommandPath,
  writableByOthers,
} from "../../local/demo-instance.ts";

const INSTANCE = "i-0a1b2c3d4e5f60718";
const OTHER = "i-0c0ffee0c0ffee0ee";
const dir = mkdtempSync(join(tmpdir(), "access-demo-unit-"));

/** Real key lines (ssh-keygen), so fingerprints are what sshd would pass as %f. */
function makeKey(name: string): string {
  const path = join(dir, name);
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path]);
  return readFileSync(`${path}.pub`, "utf8").trim();
}
const keyA = makeKey("a");
const keyB = makeKey("b");
const future = () => Math.floor(Date.now() / 1000) + 60;
const record = (key: string, instance = INSTANCE, timestamp = future()) =>
  `#Timestamp=${timestamp}\n#Instance=${instance}\n#Caller=arn:aws:sts::111122223333:assumed-role/access-broker/x\n#Request=r-1\n${key}\n`;

const input = {
  port: 2222,
  hostKeyPath: "/var/lib/access/ssh_host_ed25519_key",
  pidFile: "/var/lib/access/sshd.pid",
  metadataUrl: "http://127.0.0.1:4566",
  instanceIds: [INSTANCE, OTHER],
  osUsers: ["ec2-user"],
  nodePath: "/usr/bin/node",
  scriptPath: "/opt/access broker/local/demo-instance/authorized-keys.mjs",
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("sshdConfig", () => {
  it("takes keys only from the metadata endpoint, as nobody, and closes every other way in", () => {
    const config = sshdConfig(input);
    const lines = config.split("\n");
    expect(lines).toContain("Port 2222");
    expect(lines).toContain("ListenAddress 127.0.0.1");
    expect(lines).toContain("HostKey /var/lib/access/ssh_host_ed25519_key");
    expect(lines).toContain("PidFile /var/lib/access/sshd.pid");
    expect(lines).toContain("AuthorizedKeysFile none");
    expect(lines).toContain(
      `AuthorizedKeysCommand /usr/bin/node "/opt/access broker/local/demo-instance/authorized-keys.mjs" --metadata http://127.0.0.1:4566/ --instance ${INSTANCE} --instance ${OTHER} %u %f`,
    );
    expect(lines).toContain("AuthorizedKeysCommandUser nobody");
    for (const line of [
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin no",
      "LogLevel VERBOSE",
      "AllowUsers ec2-user",
    ]) {
      expect(lines).toContain(line);
    }
  });

  it("doubles % in the metadata URL, since sshd percent-expands the command", () => {
    const config = sshdConfig({ ...input, metadataUrl: "http://127.0.0.1:4566/base%2Fpath" });
    expect(config).toContain("--metadata http://127.0.0.1:4566/base%%2Fpath ");
  });

  it("refuses input that would make a broken or unsafe config", () => {
    expect(() => sshdConfig({ ...input, instanceIds: [] })).toThrow(DemoInstanceError);
    expect(() => sshdConfig({ ...input, instanceIds: ["i-nothex"] })).toThrow(/not an instance id/);
    expect(() => sshdConfig({ ...input, osUsers: ["root user"] })).toThrow(/not a valid OS user/);
    expect(() => sshdConfig({ ...input, scriptPath: '/tmp/a"b.mjs' })).toThrow(/cannot be used/);
    expect(() => sshdConfig({ ...input, metadataUrl: "file:///etc/passwd" })).toThrow(/must be http/);
  });

  it("is accepted by sshd -t", () => {
    if (!isSshdAvailable().ok) throw new Error(isSshdAvailable().ok ? "" : "install openssh-server");
    const hostKey = join(dir, "hostkey");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    const path = join(dir, "sshd_config");
    writeFileSync(
      path,
      sshdConfig({
        ...input,
        hostKeyPath: hostKey,
        pidFile: join(dir, "pid"),
        scriptPath: AUTHORIZED_KEYS_SCRIPT,
      }),
    );
    const result = spawnSync("/usr/sbin/sshd", ["-t", "-f", path], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});

describe("path checks", () => {
  it("finds a group/world-writable directory above a file, and passes the installed key script", () => {
    const open = mkdtempSync(join(dir, "open-"));
    chmodSync(open, 0o777);
    writeFileSync(join(open, "script.mjs"), "");
    expect(writableByOthers(join(open, "script.mjs"))).toBe(open);
    // The checkout may live under /tmp; sshd runs the copy installed in a root-owned directory.
    const installed = installKeyScript();
    expect(writableByOthers(installed)).toBeUndefined();
    expect(readFileSync(installed, "utf8")).toBe(readFileSync(AUTHORIZED_KEYS_SCRIPT, "utf8"));
  });

  it("requires the AuthorizedKeysCommand (node) to be root-owned all the way up, as sshd does", () => {
    expect(unsafeCommandPath(process.execPath)).toBeUndefined();
    const mine = mkdtempSync(join(dir, "bin-"));
    chmodSync(mine, 0o775);
    expect(unsafeCommandPath(mine)).toBe(mine);
  });
});

describe("keyFingerprint", () => {
  it("matches ssh-keygen -lf", () => {
    const listed = spawnSync("ssh-keygen", ["-l", "-f", join(dir, "a.pub")], { encoding: "utf8" }).stdout;
    expect(listed.split(" ")[1]).toBe(keyFingerprint(keyA));
    expect(fingerprint(keyA)).toBe(keyFingerprint(keyA));
  });
});

describe("selectKeys (the metadata blob parser)", () => {
  const options = { instanceId: INSTANCE, fingerprint: undefined as string | undefined };

  it("keeps live keys for this instance and skips #-lines and signature lines", () => {
    const text = `${record(keyA)}c2lnbmF0dXJl\nbW9yZQ==\n\n${record(keyB)}`;
    expect(selectKeys(text, options)).toEqual([keyA, keyB]);
  });

  it("drops keys whose #Timestamp expiry has passed, or that name another instance", () => {
    const past = Math.floor(Date.now() / 1000) - 1;
    expect(selectKeys(`${record(keyA, INSTANCE, past)}\n${record(keyB, OTHER)}`, options)).toEqual([]);
  });

  it("returns only the key with sshd's %f fingerprint", () => {
    const text = `${record(keyA)}\n${record(keyB)}`;
    expect(selectKeys(text, { ...options, fingerprint: keyFingerprint(keyB) })).toEqual([keyB]);
    expect(selectKeys(text, { ...options, fingerprint: "SHA256:nope" })).toEqual([]);
  });

  it("ignores garbage", () => {
    expect(selectKeys("<html>\nssh-ed25519 not base64!\n\u0000", options)).toEqual([]);
  });
});

describe("authorized-keys.mjs as sshd runs it", () => {
  let server: Server;
  let base: string;
  const asked: string[] = [];
  let answer: (request: IncomingMessage, response: ServerResponse) => void = () => {};

  beforeAll(async () => {
    server = createServer((request, response) => {
      asked.push(request.url ?? "");
      answer(request, response);
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });

  /** argv as sshd builds it from `AuthorizedKeysCommand … %u %f`. */
  function script(user: string, fp: string | undefined, instances = [INSTANCE, OTHER]) {
    const args = [
      AUTHORIZED_KEYS_SCRIPT,
      "--metadata",
      base,
      ...instances.flatMap((id) => ["--instance", id]),
    ];
    args.push(user);
    if (fp !== undefined) args.push(fp);
    return new Promise<{ code: number; stdout: string; stderr: string; ms: number }>((done) => {
      const started = Date.now();
      execFile(process.execPath, args, { env: { PATH: "/usr/bin:/bin" } }, (error, stdout, stderr) =>
        done({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr, ms: Date.now() - started }),
      );
    });
  }

  it("asks each instance id for the user with the fingerprint, and prints the matching key", async () => {
    asked.length = 0;
    answer = (request, response) => {
      const url = new URL(request.url ?? "", base);
      if (url.pathname !== `/metadata/${INSTANCE}/managed-ssh-keys/active-keys/ec2-user/`) {
        response.statusCode = 404;
        return response.end();
      }
      response.end(`${record(keyA)}\n${record(keyB)}`);
    };
    const result = await script("ec2-user", keyFingerprint(keyA));
    expect(result).toMatchObject({ code: 0, stdout: `${keyA}\n`, stderr: "" });
    expect(asked.sort()).toEqual(
      [INSTANCE, OTHER]
        .map(
          (id) =>
            `/metadata/${id}/managed-ssh-keys/active-keys/ec2-user/?fingerprint=${encodeURIComponent(keyFingerprint(keyA))}`,
        )
        .sort(),
    );
  });

  it("prints nothing for another user (404)", async () => {
    const result = await script("root", keyFingerprint(keyA));
    expect(result).toMatchObject({ code: 0, stdout: "", stderr: "" });
  });

  it.each([
    [
      "a 500",
      (_request: IncomingMessage, response: ServerResponse) => {
        response.statusCode = 500;
        response.end(record(keyA));
      },
    ],
    [
      "garbage",
      (_request: IncomingMessage, response: ServerResponse) => response.end("\u0000\u0001<html>oops"),
    ],
    [
      "a redirect",
      (_request: IncomingMessage, response: ServerResponse) => {
        response.writeHead(302, { location: "http://169.254.169.254/" });
        response.end();
      },
    ],
  ])("exits 0 with no output on %s", async (_name, handler) => {
    answer = handler;
    expect(await script("ec2-user", keyFingerprint(keyA))).toMatchObject({ code: 0, stdout: "", stderr: "" });
  });

  it("gives up after about 1 s when the endpoint hangs, exit 0, no output", async () => {
    answer = () => {};
    const result = await script("ec2-user", keyFingerprint(keyA));
    expect(result).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(result.ms).toBeGreaterThanOrEqual(900);
    expect(result.ms).toBeLessThan(3_000);
  });

  it("exits 0 with no output when nothing listens, or when called with bad arguments", async () => {
    const closed = await new Promise<{ code: number; stdout: string }>((done) =>
      execFile(
        process.execPath,
        [AUTHORIZED_KEYS_SCRIPT, "--metadata", "http://127.0.0.1:1", "--instance", INSTANCE, "ec2-user"],
        (error, stdout) => done({ code: error ? 1 : 0, stdout }),
      ),
    );
    expect(closed).toEqual({ code: 0, stdout: "" });
    for (const argv of [["--bogus"], ["--metadata", base, "--instance", INSTANCE, "-rf"], []]) {
      const result = spawnSync(process.execPath, [AUTHORIZED_KEYS_SCRIPT, ...argv], { encoding: "utf8" });
      expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({
        status: 0,
        stdout: "",
        stderr: "",
      });
    }
  });
});
