import type * as z from "zod";
import type { Issue } from "../error.ts";

/** Flattens zod issues to `{path, message}` with dotted paths, the shape every validation error uses. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): Issue[] {
  return issues.map((issue) => ({
    path: issue.path.length ? issue.path.map(String).join(".") : "(root)",
    message: issue.message,
  }));
}
