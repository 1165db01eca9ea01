import { createHash } from "node:crypto";
import { InputError } from "../error.ts";

/** A validated OpenSSH public key line, ready for SendSSHPublicKey. */
export interface PublicKey {
  type: "ssh-ed25519" | "ssh-rsa";
  /** 256 for Ed25519, the modulus size for RSA (what `ssh-keygen -l` prints). */
  bits: number;
  /** `SHA256:<unpadded base64>` of the key blob, identical to `ssh-keygen -l -E sha256`. */
  fingerprint: string;
  /** `<type> <base64>[ <comment>]`, whitespace normalised. */
  line: string;
}

/** SendSSHPublicKey's limits on `SSHPublicKey` (protocols.md §2.1). */
export const MIN_KEY_CHARS = 80;
export const MAX_KEY_CHARS = 4_096;
const RSA_BITS = new Set([2048, 4096]);
const ED25519_KEY_BYTES = 32;

// Every message below is fixed text: a rejected key is never echoed back (it may be a private key).
const invalid = (code: string, message: string) => new InputError(`key.${code}`, message);

/**
 * What private key material looks like in any common encoding: PEM/OpenSSH armour ("-----BEGIN … PRIVATE
 * KEY-----"), an OpenSSH private key body without its armour (base64 of "openssh-key-v1"), or PuTTY's format.
 */
function looksPrivate(text: string): boolean {
  return (
    /PRIVATE KEY/i.test(text) ||
    /-----BEGIN/.test(text) ||
    text.includes("b3BlbnNzaC1rZXktdjE") ||
    /PuTTY-User-Key-File/i.test(text)
  );
}

class Wire {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}
  string(): Buffer {
    if (this.buffer.length - this.offset < 4) throw invalid("malformed", "The public key blob is truncated");
    const length = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    if (length > this.buffer.length - this.offset)
      throw invalid("malformed", "The public key blob is truncated");
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  /** A positive mpint's magnitude, without leading zero bytes. */
  positive(): Buffer {
    const value = this.string();
    if (value.length === 0 || ((value[0] as number) & 0x80) !== 0)
      throw invalid("malformed", "The RSA key has an invalid number in it");
    let start = 0;
    while (start < value.length && value[start] === 0) start++;
    if (start === value.length) throw invalid("malformed", "The RSA key has an invalid number in it");
    return value.subarray(start);
  }
  end(): void {
    if (this.offset !== this.buffer.length)
      throw invalid("malformed", "The public key blob has trailing data");
  }
}

function bitLength(magnitude: Buffer): number {
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0] as number));
}

/**
 * Validates one OpenSSH public key line as EC2 Instance Connect accepts it: `ssh-ed25519` (32-byte key) or
 * `ssh-rsa` with a 2048- or 4096-bit modulus, 80–4096 characters, one line, no authorized_keys options.
 * Anything that looks like private key material is refused first, with a message that never repeats it.
 */
export function parsePublicKey(text: string): PublicKey {
  if (looksPrivate(text))
    throw invalid(
      "private_key",
      "This is private key material. Send only the public key (the .pub file): the broker never accepts private keys. Treat this key as exposed and generate a new one.",
    );
  const trimmed = text.trim();
  // A line break would smuggle a second authorized_keys line (with options) into instance metadata.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(trimmed))
    throw invalid("not_one_line", "The public key must be a single line");
  if (trimmed.length < MIN_KEY_CHARS || trimmed.length > MAX_KEY_CHARS)
    throw invalid(
      "invalid_length",
      `The public key line must be ${MIN_KEY_CHARS}-${MAX_KEY_CHARS} characters (do not strip the key's comment)`,
    );
  const [type, base64, ...rest] = trimmed.split(/[ \t]+/);
  if (type !== "ssh-ed25519" && type !== "ssh-rsa")
    throw invalid(
      "unsupported_type",
      "Only OpenSSH 'ssh-ed25519' and 'ssh-rsa' (2048 or 4096 bits) public keys are accepted, as '<type> <base64> [comment]'",
    );
  if (!base64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0)
    throw invalid("malformed", "The public key is not valid base64");
  const blob = Buffer.from(base64, "base64");
  if (blob.toString("base64") !== base64) throw invalid("malformed", "The public key is not valid base64");
  const comment = rest.join(" ");
  if (!/^[\x20-\x7e]*$/.test(comment))
    throw invalid("invalid_comment", "The key comment may hold printable ASCII characters only");

  const wire = new Wire(blob);
  if (wire.string().toString("latin1") !== type)
    throw invalid("malformed", "The key type does not match the key blob");
  let bits: number;
  if (type === "ssh-ed25519") {
    const key = wire.string();
    wire.end();
    if (key.length !== ED25519_KEY_BYTES) throw invalid("malformed", "An ed25519 key must be 32 bytes");
    bits = 256;
  } else {
    const exponent = wire.positive();
    const modulus = wire.positive();
    wire.end();
    if (((exponent[exponent.length - 1] as number) & 1) === 0 || (exponent.length === 1 && exponent[0] === 1))
      throw invalid("malformed", "The RSA key has an invalid public exponent");
    bits = bitLength(modulus);
    if (!RSA_BITS.has(bits))
      throw invalid("unsupported_size", `RSA keys must be 2048 or 4096 bits; this one has ${bits}`);
  }
  const line = comment ? `${type} ${base64} ${comment}` : `${type} ${base64}`;
  if (line.length < MIN_KEY_CHARS)
    throw invalid(
      "invalid_length",
      `The public key line must be ${MIN_KEY_CHARS}-${MAX_KEY_CHARS} characters (do not strip the key's comment)`,
    );
  const fingerprint = `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
  return { type, bits, fingerprint, line };
}
