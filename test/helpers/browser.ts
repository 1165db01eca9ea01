import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { ROOT } from "./runtime.ts";

/** Debian's chromium (scripts/ensure-deps.mjs installs it); never a browser download. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** The flags that work on these machines (shared/reference/dependencies.md § Browser tests). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Screenshots and downloads of browser tests (gitignored). */
export const ARTIFACTS = join(ROOT, "test-results", "web");

export function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

/**
 * A context whose pages may only reach `origin`: every other request is aborted and recorded, so a test
 * can assert the app loads nothing from outside (fonts and scripts are bundled).
 */
export async function isolatedContext(
  browser: Browser,
  origin: string,
  options: { width?: number; height?: number } = {},
): Promise<{ context: BrowserContext; external: string[] }> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
    acceptDownloads: true,
  });
  const external: string[] = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    external.push(url);
    return route.abort();
  });
  return { context, external };
}

export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}
