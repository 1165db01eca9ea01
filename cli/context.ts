import type { Client } from "./client.ts";

/**
 * What a command runs against: the process (env, streams, clock, fetch) behind one small interface,
 * so tests can run the whole CLI in-process with a fake fetch and captured output.
 */
export interface Io {
  env: Record<string, string | undefined>;
  fetch: typeof fetch;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Reads all of stdin (for `access login --token -`). */
  stdin: () => Promise<string>;
  now: () => Date;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function processIo(): Io {
  return {
    env: process.env,
    fetch: globalThis.fetch,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    stdin: readStdin,
    now: () => new Date(),
  };
}

/** Exit codes: 0 done, 1 error, 2 a negative answer (policy denies, audit chain broken). */
export const EXIT = { ok: 0, error: 1, negative: 2 } as const;

/** A failure the CLI itself detects (bad flag value, no session); rendered like an API error. */
export class CliError extends Error {
  readonly code: string | undefined;
  readonly hint: string | undefined;
  readonly details: unknown;

  constructor(message: string, options: { code?: string; hint?: string; details?: unknown } = {}) {
    super(message);
    this.name = "CliError";
    this.code = options.code;
    this.hint = options.hint;
    this.details = options.details;
  }
}

/** What every action receives: the process, the output mode and a lazily authenticated API client. */
export interface Ctx {
  io: Io;
  json: boolean;
  now: Date;
  /** An authenticated client for the configured API; throws "not logged in" when there is no token. */
  api(): Client;
  /** Prints `body` as JSON under `--json`, otherwise the human view. */
  emit(body: unknown, human: () => string): void;
}
