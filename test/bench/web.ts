import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildWeb } from "../../web/build.ts";
import { isolatedContext, launchChromium } from "../helpers/browser.ts";
import { startRuntime } from "../helpers/runtime.ts";

export interface WebBenchResult {
  buildMs: number;
  initialJsGzipKB: number;
  totalJsGzipKB: number;
  cssGzipKB: number;
  files: Array<{ path: string; kb: number; gzipKB: number; initial: boolean }>;
  /** Navigation start → the inbox's first Approve button rendered and enabled, per run (cold cache). */
  interactiveMs: number[];
  medianMs: number;
  pending: number;
}

const RUNS = 5;
const PENDING = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function login(url: string, user: string): Promise<string> {
  const response = await fetch(`${url}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  return ((await response.json()) as { token: string }).token;
}

/**
 * The web app's production build size, and how fast the approvals inbox becomes usable in headless
 * Chromium on the local runtime: each run is a fresh browser context (empty cache) signed in as bob, with
 * alice's pending requests waiting.
 */
export async function benchWeb(): Promise<WebBenchResult> {
  const outDir = mkdtempSync(join(tmpdir(), "access-broker-web-bench-"));
  const started = performance.now();
  const build = await buildWeb({ outDir: join(outDir, "web") });
  const buildMs = performance.now() - started;
  rmSync(outDir, { recursive: true, force: true });
  const kb = (bytes: number) => bytes / 1024;
  const js = build.files.filter((file) => file.path.endsWith(".js"));
  const css = build.files.filter((file) => file.path.endsWith(".css"));

  const runtime = await startRuntime();
  const browser = await launchChromium();
  const interactiveMs: number[] = [];
  try {
    const alice = await login(runtime.url, "alice@example.com");
    for (let i = 0; i < PENDING; i++) {
      await fetch(`${runtime.url}/requests`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice}`, "content-type": "application/json" },
        body: JSON.stringify({
          instanceId: "i-0a1b2c3d4e5f60718",
          method: "ssh",
          durationSeconds: 1800,
          reason: `bench ${i}`,
        }),
      });
    }
    const bob = await login(runtime.url, "bob@example.com");
    const [, payload = ""] = bob.split(".");
    const { exp } = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp: number };
    const stored = JSON.stringify({ token: bob, email: "bob@example.com", expiresAt: exp });
    // One warm-up load so the runtime's first-request costs (JIT, DynamoDB Local) are not in run 1.
    for (let run = 0; run <= RUNS; run++) {
      const { context, external } = await isolatedContext(browser, runtime.url);
      await context.addInitScript((session) => {
        const page = globalThis as any;
        page.sessionStorage.setItem("access-broker.session", session);
        // Records when the first Approve button is on screen and enabled: the inbox can be acted on.
        new page.MutationObserver((_: unknown, observer: { disconnect(): void }) => {
          const button = [...page.document.querySelectorAll("article button")].find(
            (element: any) => element.textContent === "Approve" && !element.disabled,
          );
          if (button) {
            page.__interactive = page.performance.now();
            observer.disconnect();
          }
        }).observe(page.document, { childList: true, subtree: true });
      }, stored);
      const page = await context.newPage();
      await page.goto(`${runtime.url}/inbox`);
      await page.waitForFunction(() => (globalThis as any).__interactive !== undefined, undefined, {
        timeout: 30_000,
      });
      const at = await page.evaluate(() => (globalThis as any).__interactive as number);
      if (external.length > 0) throw new Error(`the inbox requested ${external.join(", ")}`);
      if (run > 0) interactiveMs.push(at);
      await context.close();
    }
  } finally {
    await browser.close();
    await runtime.stop();
    rmSync(runtime.dataDir, { recursive: true, force: true });
  }
  return {
    buildMs,
    initialJsGzipKB: kb(js.filter((file) => file.initial).reduce((sum, file) => sum + file.gzipBytes, 0)),
    totalJsGzipKB: kb(js.reduce((sum, file) => sum + file.gzipBytes, 0)),
    cssGzipKB: kb(css.reduce((sum, file) => sum + file.gzipBytes, 0)),
    files: build.files.map((file) => ({
      path: file.path,
      kb: kb(file.bytes),
      gzipKB: kb(file.gzipBytes),
      initial: file.initial,
    })),
    interactiveMs,
    medianMs: median(interactiveMs),
    pending: PENDING,
  };
}
