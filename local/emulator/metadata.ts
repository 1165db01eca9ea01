/**
 * The instance-metadata side of EC2 Instance Connect, for the demo instance's sshd `AuthorizedKeysCommand`:
 *
 *   GET|HEAD /metadata/<instance-id>/managed-ssh-keys/active-keys/<os-user>/[?fingerprint=SHA256:…]
 *
 * 200 `text/plain` with one record per live key, shaped like the real blob (protocols.md §2.4: `#Timestamp=`
 * expiry, `#Instance=`, `#Caller=`, `#Request=`, then the key line; signature lines omitted), records
 * separated by a blank line; 404 when there is none (the real script treats any non-200 as "no keys").
 * Unauthenticated, like IMDS, but it answers only loopback clients.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { EmulatorCore, EmulatorService } from "./contract.ts";
import type { KeyStore, PushedKey } from "./eic.ts";

const PATH = /^\/metadata\/([^/]+)\/managed-ssh-keys\/active-keys\/([^/]+)\/?$/;

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const unwrapped = address.toLowerCase().startsWith("::ffff:") ? address.slice(7) : address;
  if (isIP(unwrapped) === 4) return unwrapped.startsWith("127.");
  return unwrapped === "::1" || unwrapped === "0:0:0:0:0:0:0:1";
}

/** One key as the instance's AuthorizedKeysCommand sees it. `#` lines are comments to sshd. */
export function formatKeyRecord(key: PushedKey): string {
  return [
    `#Timestamp=${Math.floor(key.expiresAt.getTime() / 1000)}`,
    `#Instance=${key.instanceId}`,
    `#Caller=${key.callerArn}`,
    `#Request=${key.requestId}`,
    key.key.line,
  ].join("\n");
}

/** The metadata endpoint; `eic` is the service whose pushed keys it serves. */
export function metadataService(_core: EmulatorCore, eic: { keys: KeyStore }): EmulatorService {
  return {
    async handle(request: IncomingMessage, _body: Buffer, response: ServerResponse): Promise<boolean> {
      const url = new URL(request.url ?? "/", "http://metadata");
      const match = PATH.exec(url.pathname);
      if (match === null) return false;
      const head = request.method === "HEAD";
      const send = (status: number, text: string) => {
        response.writeHead(status, {
          "Content-Type": "text/plain; charset=utf-8",
          "Content-Length": Buffer.byteLength(text),
          "Cache-Control": "no-store",
        });
        response.end(head ? undefined : text);
      };
      if (!isLoopback(request.socket.remoteAddress)) {
        send(403, "The metadata endpoint answers loopback clients only\n");
        return true;
      }
      if (request.method !== "GET" && !head) {
        response.setHeader("Allow", "GET, HEAD");
        send(405, "Method not allowed\n");
        return true;
      }
      let instanceId: string;
      let osUser: string;
      try {
        instanceId = decodeURIComponent(match[1] as string);
        osUser = decodeURIComponent(match[2] as string);
      } catch {
        send(400, "Malformed path\n");
        return true;
      }
      // sshd's %f is `SHA256:<base64>`; a caller that forgets to percent-encode '+' gets it back as ' '.
      const fingerprint = url.searchParams.get("fingerprint")?.replaceAll(" ", "+");
      const keys = eic.keys
        .active(instanceId, osUser)
        .filter(
          (key) => fingerprint === undefined || fingerprint === "" || key.key.fingerprint === fingerprint,
        );
      if (keys.length === 0) {
        send(404, "Not Found\n");
        return true;
      }
      send(200, `${keys.map(formatKeyRecord).join("\n\n")}\n`);
      return true;
    },
  };
}
