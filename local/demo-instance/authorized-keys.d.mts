/** Types for the plain-JS AuthorizedKeysCommand script (plain JS so sshd's `nobody` runs it without tsx). */

/** `SHA256:<base64, unpadded>` of an OpenSSH public key line, as sshd's %f and `ssh-keygen -lf` print it. */
export function fingerprint(keyLine: string): string;

/** The key lines of a metadata answer that are live, for `instanceId`, and match `fingerprint` if given. */
export function selectKeys(
  text: string,
  options: { instanceId: string; fingerprint?: string | undefined; now?: number },
): string[];
