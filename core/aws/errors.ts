import { AppError } from "../error.ts";

interface SdkError {
  name?: string;
  $fault?: "client" | "server";
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/** The service's error code (the SDK puts it in `name`). */
export function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** Errors the SDK already retried with backoff and that are worth retrying again later. */
export function isTransient(error: unknown): boolean {
  const sdk = error as SdkError | undefined;
  const status = sdk?.$metadata?.httpStatusCode ?? 0;
  return (
    status === 429 ||
    status >= 500 ||
    /Throttl|TooManyRequests|RequestLimitExceeded|ServiceUnavailable/.test(sdk?.name ?? "")
  );
}

/**
 * Turns an AWS failure into the product's errors: throttling and 5xx that outlived the SDK's retries become
 * a retryable `throttled` error (429 with Retry-After); anything else stays an internal error (500, logged,
 * with the SDK error as its cause). AppErrors pass through.
 */
export function rethrowAws(error: unknown, what: string): never {
  if (error instanceof AppError) throw error;
  if (isTransient(error))
    throw new AppError("throttled", "aws.unavailable", `${what}: AWS is busy; retry shortly`, {
      cause: error,
    });
  throw new Error(`${what} failed: ${errorName(error) ?? "unknown error"}`, { cause: error });
}
