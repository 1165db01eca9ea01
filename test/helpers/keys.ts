import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestKey {
  /** The OpenSSH public line (`ssh-ed25519 AAAA… comment`). */
  publicKey: string;
  /** `SHA256:…` as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** For tests that must prove private key material is refused; removed by cleanup(). */
  privateKeyPath: string;
  cleanup(): void;
}

/** An ed25519 key pair made with ssh-keygen at test time (never committed); removed by cleanup(). */
export function makeKey(comment: string): TestKey {
  const dir = mkdtempSync(join(tmpdir(), "test-key-"));
  const path = join(dir, "id");
  execFileSync("ssh-keygen", ["-q", "-N", "", "-t", "ed25519", "-C", comment, "-f", path]);
  const fingerprint = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${path}.pub`], {
    encoding: "utf8",
  }).split(" ")[1] as string;
  return {
    publicKey: readFileSync(`${path}.pub`, "utf8").trim(),
    fingerprint,
    privateKeyPath: path,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
