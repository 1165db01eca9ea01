/**
 * The one error base of the product. Core code throws subclasses of it; the HTTP edge
 * (functions/middleware/errors.ts) is the only place that turns `kind` into a status code.
 */
export type ErrorKind =
  | "input" // the caller sent something malformed or out of bounds
  | "auth" // not authenticated
  | "forbidden" // authenticated, but not allowed
  | "not_found"
  | "conflict" // the resource is not in a state that allows this
  | "too_large"
  | "unsupported_media_type"
  | "throttled"; // contention we could not resolve in time; safe to retry

export class AppError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: unknown;

  constructor(
    kind: ErrorKind,
    code: string,
    message: string,
    options?: ErrorOptions & { details?: unknown },
  ) {
    super(message, options);
    this.name = "AppError";
    this.kind = kind;
    this.code = code;
    this.details = options?.details;
  }
}

export class InputError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super("input", code, message, { details });
    this.name = "InputError";
  }
}

export class AuthError extends AppError {
  constructor(message = "Missing or invalid credentials") {
    super("auth", "auth.unauthorized", message);
    this.name = "AuthError";
  }
}

export class ForbiddenError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super("forbidden", code, message, { details });
    this.name = "ForbiddenError";
  }
}

export class NotFoundError extends AppError {
  constructor(code: string, message: string) {
    super("not_found", code, message);
    this.name = "NotFoundError";
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super("conflict", code, message, { details });
    this.name = "ConflictError";
  }
}

/** Issue-path style list (`rules.0.maxDuration: …`) shared by config and input validation errors. */
export interface Issue {
  path: string;
  message: string;
}
