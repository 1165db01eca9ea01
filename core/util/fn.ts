import type * as z from "zod";
import { InputError } from "../error.ts";
import { formatIssues } from "./issues.ts";

/** Validates untrusted input against `schema`; failures become one InputError listing every issue. */
export function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success)
    throw new InputError("input.invalid", "Invalid input", formatIssues(parsed.error.issues));
  return parsed.data;
}

/**
 * Wraps a core function so that its input is validated by `schema` wherever it is called from
 * (handlers, CLI, tests). The schema stays reachable as `.schema` for OpenAPI and CLI parsing.
 */
export function fn<S extends z.ZodType, R>(schema: S, impl: (input: z.output<S>) => R) {
  const wrapped = (input: z.input<S>): R => impl(parse(schema, input));
  wrapped.schema = schema;
  return wrapped;
}
