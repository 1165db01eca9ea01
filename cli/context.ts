import type { Readable, Writable } from "node:stream";
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
  /** Raw byte streams, for `access proxy` (ssh's ProxyCommand speaks through them). */
  input: Readable;
  output: Writable;
  /**
   * Calls `handler` on Ctrl-C (SIGINT) or SIGTERM instead of dying; returns the unsubscribe function.
   * Commands that run until interrupted (`tunnel`) or wait (`ssh` waiting for approval) use it.
   */
  onInterrupt: (handler: () => void) => () => void;
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
    input: process.stdin,
    output: process.stdout,
    onInterrupt(handler) {
      process.on("SIGINT", handler);
      process.on("SIGTERM", handler);
      return () => {
        process.off("SIGINT", handler);
        process.off("SIGTERM", handler);
      };
    },
  };
}

/** Exit codes: 0 done, 1 error, 2 a negative answer (policy denies, audit chain broken), 130 Ctrl-C. */
export const EXIT = { ok: 0, error: 1, negative: 2, interrupted: 130 } as const;

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
