// Regenerates the README's screenshots of the web app: node --import tsx scripts/web-screenshots.ts
// Starts the local runtime in a temporary data directory, makes a few requests as the demo users, and
// captures the inbox (bob), my access (alice) and the report (carol) at 1280 px into docs/screenshots/.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isolatedContext, launchChromium } from "../test/helpers/browser.ts";
import { ROOT, startRuntime } from "../test/helpers/runtime.ts";

const OUT = join(ROOT, "docs", "screenshots");
const runtime = await startRuntime();
const browser = await launchChromium();

async function token(user: string) {
  const response = await fetch(`${runtime.url}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  return ((await response.json()) as { token: string }).token;
}

async function call(user: string, path: string, body: unknown = {}) {
  const response = await fetch(`${runtime.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${await token(user)}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await response.json()) as { id: string; grantId: string };
}

const ask = (reason: string, extra: Record<string, unknown> = {}) =>
  call("alice@example.com", "/requests", {
    instanceId: "i-0a1b2c3d4e5f60718",
    method: "ssh",
    durationSeconds: 1800,
    reason,
    ...extra,
  });

async function shot(user: string, path: string, name: string, ready: string) {
  const { context } = await isolatedContext(browser, runtime.url, { width: 1280, height: 860 });
  const page = await context.newPage();
  await page.goto(`${runtime.url}/signin?next=${encodeURIComponent(path)}`);
  await page.getByLabel(new RegExp(user.replace(".", "\\."))).check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(ready).first().waitFor();
  if (path === "/reports") {
    await page.getByRole("button", { name: "Show report" }).click();
    await page.locator("svg.chart").first().waitFor();
  }
  await page.waitForLoadState("networkidle");
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: path === "/reports" });
  await context.close();
}

try {
  const first = await ask("rotate the nginx logs", { ticket: "INC-101" });
  await call("bob@example.com", `/requests/${first.id}/approve`, { comment: "go ahead" });
  await call("alice@example.com", `/grants/${first.grantId}/revoke`, {});
  const second = await ask("debug the cron job", { method: "tunnel", port: 22, durationSeconds: 3600 });
  await call("dave@example.com", `/requests/${second.id}/deny`, { comment: "use the staging box" });
  const third = await ask("look at the app logs after the deploy", { ticket: "CHG-2024" });
  await call("dave@example.com", `/requests/${third.id}/approve`, {});
  await ask("check disk usage before the release", { ticket: "INC-204", durationSeconds: 2700 });
  await shot("bob@example.com", "/inbox", "inbox", "article[data-request-id]");
  await shot("alice@example.com", "/access", "my-access", "article[data-grant-id]");
  await shot("carol@example.com", "/reports", "reports", "h1");
} finally {
  await browser.close();
  await runtime.stop();
  rmSync(runtime.dataDir, { recursive: true, force: true });
}
