import { randomUUID } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isolatedContext, launchChromium, screenshot } from "../helpers/browser.ts";
import { parseCsv } from "../helpers/csv.ts";
import { ROOT, type RunningRuntime, startRuntime } from "../helpers/runtime.ts";

// The web app in real Chromium against the real local runtime (`npm start`): sign-in with the dev issuer,
// the approvals inbox, my access, the request form, reports and the audit explorer.

const DEMO = "i-0a1b2c3d4e5f60718";
const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";

let runtime: RunningRuntime;
let browser: Browser;
const contexts: Array<{ context: BrowserContext; external: string[] }> = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  runtime = await startRuntime();
  browser = await launchChromium();
});

afterAll(async () => {
  for (const { context } of contexts) await context.close().catch(() => {});
  await browser?.close();
  await runtime?.stop();
  if (runtime) rmSync(runtime.dataDir, { recursive: true, force: true });
});

async function token(user: string): Promise<string> {
  const response = await fetch(`${runtime.url}/dev/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  return ((await response.json()) as { token: string }).token;
}

async function api(user: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${runtime.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await token(user)}`,
      accept: "application/json",
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, text, body: text.startsWith("{") ? JSON.parse(text) : undefined };
}

async function createRequest(user: string, reason: string) {
  const created = await api(user, "POST", "/requests", {
    instanceId: DEMO,
    method: "ssh",
    durationSeconds: 1800,
    reason,
    ticket: "INC-7",
  });
  expect(created.status).toBe(201);
  return created.body as { id: string; grantId: string };
}

// page.evaluate callbacks run in Chromium, serialized: they reach the DOM through an untyped globalThis
// (this program is type-checked without the DOM library) and can use nothing from this file.

/** A fresh browser (own storage) for one person, signed in through the sign-in page with the keyboard. */
async function signIn(user: string, options: { width?: number; path?: string } = {}): Promise<Page> {
  const isolated = await isolatedContext(browser, runtime.url, { width: options.width });
  contexts.push(isolated);
  const page = await isolated.context.newPage();
  page.on("pageerror", (error) => pageErrors.push(`${user}: ${error.message}`));
  await page.goto(`${runtime.url}${options.path ?? "/"}`);
  await page.waitForURL(/\/signin/);
  const choice = page.getByLabel(new RegExp(user.replace(".", "\\.")));
  await choice.focus();
  await page.keyboard.press("Space");
  await expect.poll(() => choice.isChecked()).toBe(true);
  await page.getByRole("button", { name: "Sign in" }).press("Enter");
  await page.getByTestId("signed-in-as").getByText(user).waitFor();
  return page;
}

describe("web app on the local runtime", () => {
  it("serves the app at / with its assets, and leaves the API to API calls at the same paths", async () => {
    const page = await fetch(`${runtime.url}/requests/req_01abcdefghjkmnpqrstvwxyz00`, {
      headers: { accept: "text/html,application/xhtml+xml" },
    });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const html = await page.text();
    const script = /<script type="module" src="(\/assets\/main-[\w-]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${runtime.url}${script}`);
    expect(asset.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(asset.headers.get("cache-control")).toContain("immutable");
    // The same path as an API call is the API's: no token, no data.
    const call = await fetch(`${runtime.url}/requests/req_01abcdefghjkmnpqrstvwxyz00`, {
      headers: { accept: "application/json" },
    });
    expect(call.status).toBe(401);
    const openapi = await fetch(`${runtime.url}/openapi.json`, { headers: { accept: "text/html" } });
    expect(openapi.headers.get("content-type")).toMatch(/application\/json/);
    // An encoded traversal stays inside the build's assets directory.
    expect((await fetch(`${runtime.url}/assets/..%2f..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${runtime.url}/assets/nope.js`)).status).toBe(404);
  });

  it("bob approves alice's request in the inbox; alice's page shows it active with the command, and she ends it", async () => {
    const request = await createRequest(ALICE, "web e2e: read the app logs");

    const alice = await signIn(ALICE, { path: "/access" });
    await expect.poll(() => alice.locator(`[data-request-id="${request.id}"]`).count()).toBe(1);

    const bob = await signIn(BOB);
    await bob.waitForURL(/\/inbox$/);
    const card = bob.locator(`article[data-request-id="${request.id}"]`);
    await card.waitFor();
    const text = (await card.textContent()) ?? "";
    expect(text).toContain(ALICE);
    expect(text).toContain("web e2e: read the app logs");
    expect(text).toContain("INC-7");
    expect(text).toContain("dev-demo");
    expect(text).toContain("low risk");
    expect(await card.getByTestId("quorum").textContent()).toBe("0 of 1");
    await screenshot(bob, "inbox-1280");

    await card.getByLabel("Comment (optional)").fill("ok, logs only");
    await card.getByRole("button", { name: "Approve" }).press("Enter");
    await bob.getByTestId("decided").getByText("You decided").waitFor();
    expect(await bob.locator(`article[data-request-id="${request.id}"]`).count()).toBe(0);

    // Alice's page updates by itself: active, with the exact command to connect.
    const active = alice.locator(`article[data-grant-id="${request.grantId}"]`);
    await active.waitFor({ timeout: 15_000 });
    expect(await active.getByTestId("connect-command").textContent()).toBe(`access ssh ${request.grantId}`);
    expect(await active.getByTestId("time-left").textContent()).toMatch(/^(29|30)m \d\ds$/);
    await screenshot(alice, "my-access-active-1280");

    // Extend: the rule wants its approvers again, so the extension waits for them.
    await active.getByRole("button", { name: "Extend" }).click();
    await active.getByLabel("Extend by").fill("15m");
    await active.getByLabel("Why").fill("the logs are long");
    await active.getByRole("button", { name: "Ask to extend" }).click();
    await active.getByText("Extension by 15m waits for approval.").waitFor();
    const extension = await api(ALICE, "GET", `/grants/${request.grantId}`);
    expect(extension.body.pendingExtension).toMatchObject({
      durationSeconds: 900,
      reason: "the logs are long",
    });

    await active.getByRole("button", { name: "End now" }).click();
    await active.getByRole("button", { name: "Yes, end now" }).click();
    await alice.locator(`tr[data-request-id="${request.id}"]`).getByText("revoked").waitFor();
    const after = await api(ALICE, "GET", `/requests/${request.id}`);
    expect(after.body.status).toBe("revoked");
    expect(after.body.endedAt).toBeDefined();
  });

  it("updates bob's inbox without a reload when dave decides first", async () => {
    const request = await createRequest(ALICE, "web e2e: a colleague decides");
    const bob = await signIn(BOB);
    const card = bob.locator(`article[data-request-id="${request.id}"]`);
    await card.waitFor();
    const denied = await api(DAVE, "POST", `/requests/${request.id}/deny`, { comment: "not today" });
    expect(denied.status).toBe(200);
    await card.waitFor({ state: "detached", timeout: 10_000 });
    const notice = bob.getByTestId("decided").getByText("Decided elsewhere");
    await notice.waitFor();
    expect(await bob.getByTestId("decided").textContent()).toContain(`denied by ${DAVE}`);
  });

  it("alice asks through the form, validated as she types, and gets the command once bob approves", async () => {
    const alice = await signIn(ALICE, { path: "/request" });
    await alice.getByRole("heading", { name: "Request access" }).waitFor();
    const duration = alice.getByLabel("Duration");
    await duration.fill("3h");
    await duration.press("Tab");
    await alice.getByText("At most 1h under rule dev-demo").waitFor();
    expect(await duration.getAttribute("aria-invalid")).toBe("true");
    await alice.getByRole("button", { name: "Request access" }).click();
    // Nothing was sent: the first field to fix has the focus.
    expect(await alice.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe("duration");
    await duration.fill("45m");
    await alice.getByLabel("Reason").fill("web e2e: via the form");
    await screenshot(alice, "request-form-1280");
    await alice.getByRole("button", { name: "Request access" }).click();
    const outcome = alice.getByRole("heading", { name: /ssh as ec2-user on/ });
    await outcome.getByText("pending").waitFor();

    const pending = await api(BOB, "GET", "/requests?pendingForMe=true");
    const mine = pending.body.items.find(
      (item: { reason: string }) => item.reason === "web e2e: via the form",
    );
    expect(mine).toMatchObject({ durationSeconds: 2700, osUser: "ec2-user", method: "ssh" });
    await api(BOB, "POST", `/requests/${mine.id}/approve`, {});
    await alice
      .getByTestId("connect-command")
      .getByText(`access ssh ${mine.grantId}`)
      .waitFor({ timeout: 10_000 });
    await api(ALICE, "POST", `/grants/${mine.grantId}/revoke`, {});
  });

  it("keeps the inbox from people who approve nothing, even an auditor who can read every request", async () => {
    const request = await createRequest(ALICE, "web e2e: hidden from non-approvers");
    for (const user of [CAROL, ALICE]) {
      const page = await signIn(user);
      expect(
        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Inbox" }).count(),
      ).toBe(0);
      await page.goto(`${runtime.url}/inbox`);
      await page.getByTestId("not-approver").waitFor();
      expect(await page.locator(`[data-request-id="${request.id}"]`).count()).toBe(0);
    }
    await api(ALICE, "POST", `/requests/${request.id}/cancel`, {});
  });

  it("carol opens the report for the period and downloads the CSV, whose rows are the API's JSON", async () => {
    const used = await createRequest(ALICE, 'web e2e: for the report, with a comma, and "quotes"');
    await api(BOB, "POST", `/requests/${used.id}/approve`, {});
    await api(ALICE, "POST", `/grants/${used.grantId}/revoke`, {});
    const carol = await signIn(CAROL, { path: "/reports" });
    await carol.getByRole("heading", { name: "Reports" }).waitFor();
    await carol.getByRole("button", { name: "Show report" }).click();
    await carol.getByRole("table", { name: /Grants/ }).waitFor();
    await screenshot(carol, "reports-1280");
    const from = await carol.getByLabel("From").inputValue();
    const to = await carol.getByLabel("To").inputValue();

    const [download] = await Promise.all([
      carol.waitForEvent("download"),
      carol.getByRole("button", { name: "Download grants CSV" }).click(),
    ]);
    const path = await download.path();
    const csv = readFileSync(path, "utf8").replace(/^\uFEFF/, "");
    const rows = parseCsv(csv);
    const header = rows[0] ?? [];
    const column = (name: string) => header.indexOf(name);

    const range = new URL(`${runtime.url}/reports/access`);
    range.searchParams.set("from", new Date(`${from}T00:00:00`).toISOString());
    range.searchParams.set("to", new Date(new Date(`${to}T00:00:00`).getTime() + 86_400_000).toISOString());
    const json = await api(CAROL, "GET", `${range.pathname}${range.search}`);
    expect(json.status).toBe(200);
    const grants = json.body.grants as Array<{
      grantId: string;
      requester: string;
      status: string;
      reason: string;
    }>;
    expect(grants.map((grant) => grant.grantId)).toContain(used.grantId);
    expect(grants.length).toBeGreaterThanOrEqual(2);
    expect(rows.slice(1).map((row) => row[column("grant_id")])).toEqual(grants.map((grant) => grant.grantId));
    expect(rows.slice(1).map((row) => row[column("status")])).toEqual(grants.map((grant) => grant.status));
    expect(rows.slice(1).map((row) => row[column("requester")])).toEqual(
      grants.map((grant) => grant.requester),
    );
    expect(rows.slice(1).map((row) => row[column("reason")])).toEqual(grants.map((grant) => grant.reason));
  });

  it("shows auditors the audit trail with its chain status and links to each request", async () => {
    const carol = await signIn(CAROL, { path: "/audit" });
    await carol
      .getByTestId("chain-status")
      .getByText(/intact/)
      .waitFor();
    await carol.getByRole("tab", { name: "Audit log" }).click();
    const first = carol
      .getByRole("table", { name: /Audit records/ })
      .getByRole("link", { name: /^req_/ })
      .first();
    await first.waitFor();
    await screenshot(carol, "audit-1280");
    const id = await first.textContent();
    await first.click();
    await carol.waitForURL(new RegExp(`/requests/${id}$`));
    await carol.getByRole("heading", { name: "History" }).waitFor();
    expect(await carol.locator(".timeline li").count()).toBeGreaterThan(0);
    await screenshot(carol, "request-detail-1280");
  });

  it("filters CloudTrail events by classification, user, instance and time", async () => {
    const fixture = (name: string) =>
      JSON.parse(readFileSync(join(ROOT, "test/fixtures/cloudtrail", name), "utf8")) as Record<string, any>;
    const at = new Date(Date.now() - 60_000);
    at.setMilliseconds(0);
    const unbrokered = {
      ...fixture("push-unbrokered.json"),
      eventID: randomUUID(),
      eventTime: at.toISOString().replace(".000", ""),
    };
    const denied = {
      ...fixture("push-denied.json"),
      eventID: randomUUID(),
      eventTime: at.toISOString().replace(".000", ""),
    };
    const imported = await api(CAROL, "POST", "/audit/trail", { records: [unbrokered, denied] });
    expect(imported.body).toMatchObject({ recorded: 2 });

    const carol = await signIn(CAROL, { path: "/audit" });
    const table = carol.getByRole("table", { name: /CloudTrail events/ });
    const rowOf = (eventId: string) => table.locator(`tr[data-event-id="${eventId}"]`);
    await rowOf(unbrokered.eventID).waitFor();
    expect(await rowOf(denied.eventID).count()).toBe(1);
    const apply = async (filters: Record<string, string>) => {
      for (const [label, value] of Object.entries(filters)) {
        const field = carol.getByLabel(label, { exact: true });
        if (label === "Classification") await field.selectOption(value);
        else await field.fill(value);
      }
      await carol.getByRole("button", { name: "Apply" }).click();
      await carol.getByText(/shown of \d+ read/).waitFor();
    };
    await apply({ Classification: "unbrokered" });
    await expect.poll(() => rowOf(denied.eventID).count()).toBe(0);
    expect(await rowOf(unbrokered.eventID).count()).toBe(1);
    expect(await rowOf(unbrokered.eventID).textContent()).toContain("user/mallory");
    // User and instance are filters of the API now: the request carries them, exactly as typed.
    const mallory = "arn:aws:iam::111122223333:user/mallory";
    const trailRequest = (check: (params: URLSearchParams) => boolean) =>
      carol.waitForRequest((request) => {
        const url = new URL(request.url());
        return url.pathname === "/audit/trail" && check(url.searchParams);
      });
    const filtered = trailRequest(
      (params) =>
        params.get("user") === mallory && params.get("instance") === DEMO && !params.has("classification"),
    );
    await apply({ Classification: "", User: mallory, Instance: DEMO });
    await filtered;
    await expect.poll(() => rowOf(denied.eventID).count()).toBe(1);
    expect(await rowOf(unbrokered.eventID).count()).toBe(1);
    const alice = trailRequest((params) => params.get("user") === "alice@example.com");
    await apply({ User: "alice@example.com" });
    await alice;
    await expect.poll(() => rowOf(unbrokered.eventID).count()).toBe(0);
    // A name that is neither an email nor an ARN: the API's 400 is shown, not an empty table.
    await apply({ User: "mallory" });
    await carol.getByText(/must be an email address or an IAM\/STS principal ARN/).waitFor();
    const later = new Date(at.getTime() + 30_000 - at.getTimezoneOffset() * 60_000)
      .toISOString()
      .slice(0, 16);
    await apply({ User: "", Instance: "", From: later });
    await expect.poll(() => rowOf(unbrokered.eventID).count()).toBe(0);
  });

  it("is readable at 390 px: no page scrolls sideways", async () => {
    const pages: Array<[string, string]> = [
      [BOB, "/inbox"],
      [ALICE, "/request"],
      [ALICE, "/access"],
      [CAROL, "/audit"],
      [CAROL, "/reports"],
    ];
    for (const [user, path] of pages) {
      const page = await signIn(user, { width: 390, path });
      await page.waitForURL(new RegExp(`${path}$`));
      await page.locator("main h1").waitFor();
      await page.waitForLoadState("networkidle");
      const overflow = await page.evaluate(() => {
        const { document, innerWidth } = globalThis as any;
        return document.documentElement.scrollWidth - innerWidth;
      });
      expect(overflow, `${path} at 390 px`).toBeLessThanOrEqual(0);
      await screenshot(page, `${path.slice(1)}-390`);
    }
  });

  it("labels every control, shows focus, and made no request outside its own origin", async () => {
    const bob = await signIn(BOB);
    await bob.getByRole("heading", { name: "Inbox" }).waitFor();
    const unlabelled = await bob.evaluate(() =>
      [...(globalThis as any).document.querySelectorAll("input, select, textarea, button")]
        .filter((control: any) => {
          const name =
            control.labels?.length || control.getAttribute("aria-label") || control.textContent?.trim();
          return !name;
        })
        .map((element: any) => element.outerHTML),
    );
    expect(unlabelled).toEqual([]);
    await bob.keyboard.press("Tab");
    const focused = await bob.evaluate(() => {
      const { document, getComputedStyle } = globalThis as any;
      const element = document.activeElement;
      return { text: element.textContent, outline: getComputedStyle(element).outlineStyle };
    });
    expect(focused.text).toBe("Skip to content");
    expect(focused.outline).not.toBe("none");
    expect(contexts.flatMap((entry) => entry.external)).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
