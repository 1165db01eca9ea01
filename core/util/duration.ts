import * as z from "zod";
import { parseDuration } from "./duration-text.ts";

export { formatDuration, parseDuration } from "./duration-text.ts";

/** A duration in config: either a string like `1h` or a number of seconds. Output is seconds. */
export const Duration = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === "number") return value;
  const seconds = parseDuration(value);
  if (seconds === undefined) {
    ctx.addIssue({ code: "custom", message: `"${value}" is not a duration like 30m, 1h or 1h30m` });
    return z.NEVER;
  }
  return seconds;
});
