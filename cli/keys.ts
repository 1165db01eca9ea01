/**
 * SSH key pairs for one connection. The broker only ever sees the public half (design §4, §10): the
 * private key is made here by `ssh-keygen`, lives in a 0700 temp directory as a 0600 file for as long as
 * `ssh` needs it, and is removed on every way out we can catch (normal exit, an exception, SIGINT,
 * SIGTERM, SIGHUP). A SIGKILL can leave it behind in that private directory; by then the pushed public
 * key has left instance metadata (60 s), so the private key opens nothing.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CliError } from "./context.ts";

export interface KeyPair {
  /** Path for `ssh -i`. */
  privateKeyPath: string;
  /** The public key line to push (`ssh-ed25519 AAAA… comment`). */
  publicKey: string;
  /** Present for generated keys: the private directory holding both files. */
  dir?: string;
  /** Removes a generated key (no-op for an existing identity file). Safe to call twice. */
  dispose(): void;
}

const live = new Set<string>();
let hooked = false;

function removeAll(): void {
  for (const dir of live) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort on the way out
    }
    live.delete(dir);
  }
}

/**
 * Removes every live key directory on exit and on the usual signals. When nobody else handles a signal,
 * it is re-raised after the cleanup so the process still dies of it (exit status 128+n, as the shell expects).
 * When a command handles it (e.g. `access ssh` lets ssh decide while it runs), cleanup waits for `exit`.
 */
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once("exit", removeAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return;
      removeAll();
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function sshKeygen(args: string[], input?: string): { stdout: string; stderr: string } {
  const result = spawnSync("ssh-keygen", args, {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "inherit" : "pipe", "pipe", "pipe"],
  });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    throw new CliError("ssh-keygen not found: install OpenSSH's client", {
      hint: "Debian/Ubuntu: apt-get install -y openssh-client",
    });
  }
  if (result.error || result.status !== 0) {
    throw new CliError(
      `ssh-keygen failed: ${(result.error?.message ?? result.stderr).trim() || `exit ${result.status}`}`,
    );
  }
  return { stdout: result.stdout, stderr: result.stderr };
}

/** A fresh ED25519 key pair in a private temp directory, removed by `dispose()` or when the process ends. */
export function generateKeyPair(comment: string, options: { tmpRoot?: string } = {}): KeyPair {
  hook();
  const dir = mkdtempSync(join(options.tmpRoot ?? tmpdir(), "access-ssh-"));
  live.add(dir);
  const dispose = () => {
    rmSync(dir, { recursive: true, force: true });
    live.delete(dir);
  };
  try {
    chmodSync(dir, 0o700);
    const privateKeyPath = join(dir, "id_ed25519");
    sshKeygen(
      ["-t", "ed25519", "-N", "", "-q", "-C", comment.replace(/[^\w@.:-]/g, "_"), "-f", privateKeyPath],
      "",
    );
    chmodSync(privateKeyPath, 0o600);
    chmodSync(`${privateKeyPath}.pub`, 0o600);
    const publicKey = readFileSync(`${privateKeyPath}.pub`, "utf8").trim();
    return { privateKeyPath, publicKey, dir, dispose };
  } catch (error) {
    dispose();
    throw error;
  }
}

const PUSHABLE = /^(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/]+={0,3}( .*)?$/;

/**
 * An existing identity (`--identity-file`): its public half from `<file>.pub`, or derived with
 * `ssh-keygen -y` (which may ask for the passphrase on the terminal). EC2 Instance Connect takes ED25519
 * and RSA keys only.
 */
export function existingKeyPair(path: string): KeyPair {
  if (!existsSync(path)) throw new CliError(`identity file ${path} does not exist`);
  const publicKey = existsSync(`${path}.pub`)
    ? readFileSync(`${path}.pub`, "utf8").trim()
    : sshKeygen(["-y", "-f", path]).stdout.trim();
  if (!PUSHABLE.test(publicKey)) {
    throw new CliError(`${path} is not an ED25519 or RSA key; EC2 Instance Connect accepts only those`);
  }
  return { privateKeyPath: path, publicKey, dispose: () => {} };
}
