import * as z from "zod";

const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Parses `90s`, `30m`, `1h30m`, `2d` to seconds; undefined when the text is not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match || text.trim() === "") return undefined;
  const [, d, h, m, s] = match;
  const seconds =
    Number(d ?? 0) * UNIT_SECONDS.d +
    Number(h ?? 0) * UNIT_SECONDS.h +
    Number(m ?? 0) * UNIT_SECONDS.m +
    Number(s ?? 0) * UNIT_SECONDS.s;
  return seconds > 0 ? seconds : undefined;
}

/** Renders seconds the way people write them: 5400 → `1h30m`. */
export function formatDuration(totalSeconds: number): string {
  let rest = Math.max(0, Math.round(totalSeconds));
  let out = "";
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const count = Math.floor(rest / size);
    if (count > 0) {
      out += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return out || "0s";
}

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
