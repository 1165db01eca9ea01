/**
 * cli/bin.js runs the compiled CLI (dist/cli) only while every source that went into it is unchanged,
 * else the sources through tsx. Tested on a copy of the repository's sources, so nothing here touches the
 * checkout the other tests run from.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = join(import.meta.dirname, "../..");
let copy: string;

const run = (env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [join(copy, "cli/bin.js"), "--version"], {
    encoding: "utf8",
    env: { ...process.env, ACCESS_CLI_FROM_SOURCE: "", ...env },
  });

beforeAll(() => {
  copy = mkdtempSync(join(tmpdir(), "access-bin-"));
  for (const entry of ["cli", "core", "scripts", "tsconfig.json", "package.json"])
    cpSync(join(repo, entry), join(copy, entry), { recursive: true });
  symlinkSync(join(repo, "node_modules"), join(copy, "node_modules"));
  execFileSync(process.execPath, [join(copy, "scripts/build-cli.mjs")], { stdio: "ignore" });
  // A marker only the compiled entry prints, so the test can see which one ran.
  appendFileSync(join(copy, "dist/cli/main.mjs"), '\nprocess.stderr.write("[compiled]");\n');
  const later = new Date(Date.now() + 5_000);
  utimesSync(join(copy, "dist/cli/inputs.json"), later, later);
}, 60_000);

afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

describe("the access launcher", () => {
  it("runs the compiled CLI while its sources are unchanged", () => {
    const result = run();
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(result.stderr).toContain("[compiled]");
  });

  it("runs the sources when asked to, or when one of them changed after the build", () => {
    const forced = run({ ACCESS_CLI_FROM_SOURCE: "1" });
    expect(forced.status).toBe(0);
    expect(forced.stderr).not.toContain("[compiled]");

    const edited = new Date(Date.now() + 10_000);
    utimesSync(join(copy, "core/util/duration-text.ts"), edited, edited);
    const result = run();
    expect(result.status).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(result.stderr).not.toContain("[compiled]");
  });

  it("runs the sources when the build is missing or incomplete", () => {
    rmSync(join(copy, "dist/cli/inputs.json"));
    const result = run();
    expect(result.status).toBe(0);
    expect(result.stderr).not.toContain("[compiled]");
  });
});
