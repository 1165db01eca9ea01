// sshd's AuthorizedKeysCommand for the demo instance: the local counterpart of EC2 Instance Connect's
// `eic_run_authorized_keys %u %f` (aws/aws-ec2-instance-connect-config). Plain JavaScript with no imports
// outside node:, because sshd runs it as `nobody` (AuthorizedKeysCommandUser) with node as argv[0].
//
//   node authorized-keys.mjs --metadata <emulator base URL> --instance <i-…> [--instance …] <user> [<fingerprint>]
//
// For each instance id it asks `GET <metadata>/metadata/<id>/managed-ssh-keys/active-keys/<user>/?fingerprint=`
// (the emulator's stand-in for IMDS `meta-data/managed-ssh-keys/active-keys/<user>/`) and prints the
// matching `ssh-…` key lines. Like `eic_curl_authorized_keys` it fails closed and quietly: any error, a
// non-200 answer, a timeout or garbage means no keys, exit 0, nothing on stdout. sshd reads nothing else.
//
// What the real scripts also check, and what is kept here:
//   - a record's `#Timestamp=<epoch s>` is its expiry: keys whose Timestamp is not in the future are dropped;
//   - a record's `#Instance=<id>` must be the instance asked for;
//   - only the key whose SHA256 fingerprint equals sshd's %f is printed (sshd asks once per offered key).
// What is not: the RSA-PSS signature over each record and the signer certificate chain + OCSP staples
// (the emulator has no Amazon signer; trust comes from asking the local emulator over loopback instead).

import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

/** Per HTTP request, like the real script's `curl -m 1`. */
const REQUEST_TIMEOUT_MS = 1_000;
/** sshd waits for us while the client waits for sshd: never hang, whatever happens (`timeout 5s` upstream). */
const HARD_DEADLINE_MS = 4_000;
/** Same shape rules as the real script (`^i-[0-9a-f]{8,32}$`) and EIC's InstanceOSUser. */
const INSTANCE_ID = /^i-[0-9a-f]{8,32}$/;
const OS_USER = /^[A-Za-z0-9_][A-Za-z0-9@._-]{0,31}$/;
const KEY_LINE =
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+={0,3}( .*)?$/;
const MAX_BODY = 256 * 1024;

/** `SHA256:<base64, unpadded>` of a key line's blob: what `ssh-keygen -lf` and sshd's %f print. */
export function fingerprint(keyLine) {
  const blob = keyLine.split(" ")[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** The base64 blob of a key line starts with its own type name (RFC 4253 §6.6), as sshd checks. */
function wellFormed(keyLine) {
  const [type, blob] = keyLine.split(" ");
  const bytes = Buffer.from(blob ?? "", "base64");
  if (bytes.length < 4) return false;
  const length = bytes.readUInt32BE(0);
  return length === type.length && bytes.subarray(4, 4 + length).toString("latin1") === type;
}

/**
 * Picks the usable key lines out of a metadata answer. Records are separated by blank lines; `#` lines
 * are metadata for the key line that follows them; anything else (signature lines) is ignored.
 */
export function selectKeys(text, { instanceId, fingerprint: wanted, now = Date.now() }) {
  const keys = [];
  let meta = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") {
      meta = {};
      continue;
    }
    if (line.startsWith("#")) {
      const eq = line.indexOf("=");
      if (eq > 1) meta[line.slice(1, eq)] = line.slice(eq + 1);
      continue;
    }
    if (!KEY_LINE.test(line) || !wellFormed(line)) continue;
    const record = meta;
    meta = {};
    if (record.Timestamp !== undefined) {
      const expires = Number(record.Timestamp) * 1000;
      if (!Number.isFinite(expires) || expires <= now) continue;
    }
    if (record.Instance !== undefined && record.Instance !== instanceId) continue;
    if (wanted && fingerprint(line) !== wanted) continue;
    keys.push(line);
  }
  return keys;
}

/**
 * One GET with node:http(s), not fetch: sshd runs this script twice per login (once to ask whether a key
 * would do, once to check its signature), and loading fetch's implementation costs each run ~25 ms.
 * Redirects are not followed (a 3xx is not 200, so: no keys).
 */
function get(url) {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === "https:" ? https : http).get(
      url,
      { timeout: REQUEST_TIMEOUT_MS },
      (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          resolve(undefined);
          return;
        }
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          text += chunk;
          if (text.length > MAX_BODY) request.destroy(new Error("answer too large"));
        });
        response.on("end", () => resolve(text));
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
  });
}

async function fetchKeys(base, instanceId, user, wanted) {
  const url = new URL(
    `metadata/${encodeURIComponent(instanceId)}/managed-ssh-keys/active-keys/${encodeURIComponent(user)}/`,
    base.endsWith("/") ? base : `${base}/`,
  );
  if (wanted) url.searchParams.set("fingerprint", wanted);
  try {
    const text = await get(url);
    if (text === undefined) return [];
    return selectKeys(text, { instanceId, fingerprint: wanted });
  } catch {
    return [];
  }
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      metadata: { type: "string" },
      instance: { type: "string", multiple: true },
      check: { type: "boolean" },
    },
  });
  // `--check`: the demo instance runs this as nobody before starting sshd, to prove nobody can read it.
  if (values.check) {
    process.stdout.write("ok\n");
    return;
  }
  const [user, wanted] = positionals;
  const base = values.metadata;
  if (!base || !user || !OS_USER.test(user)) return;
  if (!/^https?:\/\//.test(base)) return;
  // sshd passes %f as "SHA256:…"; an empty or odd value means "no filter" only if absent altogether.
  if (wanted !== undefined && !/^SHA256:[A-Za-z0-9+/]+$/.test(wanted)) return;
  const instances = (values.instance ?? []).filter((id) => INSTANCE_ID.test(id));
  const results = await Promise.all(instances.map((id) => fetchKeys(base, id, user, wanted)));
  const keys = [...new Set(results.flat())];
  if (keys.length > 0) process.stdout.write(`${keys.join("\n")}\n`);
}

// Imported by tests for selectKeys/fingerprint; run as a script by sshd.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  setTimeout(() => process.exit(0), HARD_DEADLINE_MS).unref();
  main(process.argv.slice(2)).then(
    () => {
      process.exitCode = 0;
    },
    () => {
      process.exitCode = 0;
    },
  );
}
