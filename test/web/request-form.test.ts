import { join } from "node:path";
import * as esbuild from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as Identity from "../../core/identity/index.ts";
import * as PolicyView from "../../core/policy/view.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import { launchChromium, screenshot } from "../helpers/browser.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import { ROOT } from "../helpers/runtime.ts";

// Component tests of the request form in real Chromium: the form alone (web/test/form-harness.tsx), fed the
// demo policy as GET /policy gives it to alice, with the API replaced by a recorder.

const ORIGIN = "http://localhost:9";
const config = parseConfig(DEMO_CONFIG_TEXT);
const alice = Identity.fromDirectory("alice@example.com", config);
if (!alice) throw new Error("alice is not in the demo directory");
const view = PolicyView.view(config, alice);

let browser: Browser;
let bundle: string;
let css: string;
let page: Page;

beforeAll(async () => {
  const built = await esbuild.build({
    entryPoints: [join(ROOT, "web/test/form-harness.tsx")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    mainFields: ["module", "main"],
    jsx: "automatic",
    jsxImportSource: "preact",
    outdir: "out",
    define: { __WEB_CONFIG__: JSON.stringify({ apiUrl: "", auth: { kind: "dev" } }) },
  });
  bundle = built.outputFiles.find((file) => file.path.endsWith(".js"))?.text ?? "";
  css = built.outputFiles.find((file) => file.path.endsWith(".css"))?.text ?? "";
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 800, height: 1000 } });
  // Served by the test itself, on a localhost origin (a secure context, as the app's own).
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === "/form.js") return route.fulfill({ contentType: "text/javascript", body: bundle });
    if (path === "/form.css") return route.fulfill({ contentType: "text/css", body: css });
    return route.fulfill({
      contentType: "text/html",
      body: '<!doctype html><html lang="en"><head><link rel="stylesheet" href="/form.css"></head><body><div id="app"></div><script type="module" src="/form.js"></script></body></html>',
    });
  });
  await page.addInitScript((policy) => {
    (globalThis as unknown as { harness: unknown }).harness = { view: policy };
  }, view);
  await page.goto(`${ORIGIN}/`);
  await page.getByRole("button", { name: "Request access" }).waitFor();
  return () => page.close();
});

const submitted = () => page.evaluate(() => (globalThis as any).harness.submitted);
const errorOf = async (label: string) => {
  const field = page.getByLabel(label, { exact: true });
  const described = (await field.getAttribute("aria-describedby")) ?? "";
  const id = described.split(" ").find((part) => part.endsWith("-error"));
  return {
    invalid: await field.getAttribute("aria-invalid"),
    message: id ? await page.locator(`[id="${id}"]`).textContent() : undefined,
  };
};

const OTHER_STAGING = "Other instance in staging-web… (tagged env=staging, app=web)";
const activeId = () => page.evaluate(() => (globalThis as any).document.activeElement.id);

describe("request form", () => {
  it("offers the instances and methods of alice's rules, with the rule's only OS user filled in", async () => {
    const options = await page.getByLabel("Instance").locator("option").allTextContents();
    expect(options.map((option) => option.split(" ")[0])).toEqual([
      "i-0a1b2c3d4e5f60718",
      "i-0c0ffee0c0ffee0ee",
      "i-0fedcba9876543210",
      "Other",
    ]);
    expect(options[3]).toBe(OTHER_STAGING);
    // Nothing to type until the tag target is chosen.
    expect(await page.getByLabel("Instance id").count()).toBe(0);
    const methods = await page
      .getByRole("radio")
      .evaluateAll((inputs) => inputs.map((input: any) => input.value));
    expect(methods).toEqual(["ssh", "tunnel"]);
    expect(await page.getByLabel("OS user").inputValue()).toBe("ec2-user");
    expect(await page.getByTestId("rule-summary").textContent()).toContain("1 approval from group:sre-leads");
    // No break-glass for a requester whom no rule lets break glass.
    expect(await page.getByRole("checkbox").count()).toBe(0);
  });

  it("sends nothing when a required field is empty, and moves focus to it with its message", async () => {
    await page.getByRole("button", { name: "Request access" }).click();
    expect(await submitted()).toEqual([]);
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.id)).toBe("reason");
    expect(await errorOf("Reason")).toEqual({ invalid: "true", message: "Say why you need access" });
    await screenshot(page, "component-request-form-errors");
  });

  it("checks the duration as typed: its syntax, then the rule's maximum", async () => {
    const duration = page.getByLabel("Duration");
    await duration.fill("forever");
    await duration.blur();
    expect(await errorOf("Duration")).toEqual({
      invalid: "true",
      message: "Give a duration like 30m, 1h or 1h30m",
    });
    await duration.fill("2h");
    expect((await errorOf("Duration")).message).toBe("At most 1h under rule dev-demo");
    await duration.fill("45m");
    expect(await errorOf("Duration")).toEqual({ invalid: null, message: undefined });
  });

  it("applies the API's own body schema: a ticket with spaces fails with CreateInput's message", async () => {
    const ticket = page.getByLabel("Ticket (optional)");
    await ticket.fill("INC 42");
    await ticket.blur();
    expect((await errorOf("Ticket (optional)")).message).toBe("letters, digits and . : # / - _ only");
  });

  it("follows the rule of the chosen instance: staging wants a ticket of its pattern and offers two OS users", async () => {
    await page.getByLabel("Instance").selectOption("i-0fedcba9876543210");
    const users = await page.getByLabel("OS user").locator("option").allTextContents();
    expect(users).toEqual(["ec2-user", "ubuntu"]);
    await page.getByLabel("Reason").fill("certs");
    await page.getByRole("button", { name: "Request access" }).click();
    expect((await errorOf("Ticket")).message).toBe("Rule staging-two-person needs a ticket");
    await page.getByLabel("Ticket").fill("JIRA-9");
    expect((await errorOf("Ticket")).message).toBe("Must match ^(INC|CHG)-\\d+$");
    await page.getByLabel("Ticket").fill("CHG-9");
    await page.getByLabel("OS user").selectOption("ubuntu");
    await page.getByRole("button", { name: "Request access" }).click();
    const [sent] = await submitted();
    expect(sent.input).toEqual({
      instanceId: "i-0fedcba9876543210",
      method: "ssh",
      osUser: "ubuntu",
      durationSeconds: 1800,
      reason: "certs",
      ticket: "CHG-9",
      breakGlass: false,
    });
  });

  it("sends a tunnel with its port and no OS user, with an idempotency key", async () => {
    await page.getByRole("radio", { name: /TCP tunnel/ }).check();
    expect(await page.getByLabel("OS user").count()).toBe(0);
    expect(await page.getByLabel("Remote port").inputValue()).toBe("22");
    await page.getByLabel("Duration").fill("1h");
    await page.getByLabel("Reason").fill("db migration");
    await page.getByLabel("Reason").press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    const [sent] = await submitted();
    expect(sent.input).toEqual({
      instanceId: "i-0a1b2c3d4e5f60718",
      method: "tunnel",
      port: 22,
      durationSeconds: 3600,
      reason: "db migration",
      breakGlass: false,
    });
    expect(sent.key).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("shows the API's refusal on the field it names, and retries with the same idempotency key", async () => {
    await page.evaluate(() => {
      (globalThis as any).harness.refuse = {
        status: 400,
        code: "request.violates_rule",
        message: 'The request does not fit rule "dev-demo": reason must match /^INC-\\d+/',
        details: [{ path: "reason", message: "reason must match /^INC-\\d+/" }],
      };
    });
    await page.getByLabel("Reason").fill("logs");
    await page.getByRole("button", { name: "Request access" }).click();
    await page.getByText("reason must match /^INC-\\d+/").waitFor();
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.id)).toBe("reason");
    expect((await errorOf("Reason")).invalid).toBe("true");
    await page.getByLabel("Reason").fill("INC-1 logs");
    expect((await errorOf("Reason")).message).toBeUndefined();
    await page.getByRole("button", { name: "Request access" }).click();
    const attempts = await submitted();
    expect(attempts).toHaveLength(2);
    expect(attempts[1].key).toBe(attempts[0].key);
    expect(await page.evaluate(() => (globalThis as any).harness.created?.id)).toBe("req_harness");
  });

  describe("an instance typed for a tag-selector target", () => {
    beforeEach(async () => {
      await page.getByLabel("Instance", { exact: true }).selectOption({ label: OTHER_STAGING });
    });

    it("is reached by keyboard, says which tags, account and region it must have, and complains only once typed", async () => {
      const typed = page.getByLabel("Instance id");
      const hint = await page
        .locator(`[id="${(await typed.getAttribute("aria-describedby")) ?? ""}"]`)
        .textContent();
      expect(hint).toContain("staging-web: tagged env=staging, app=web, in account 444455556666, eu-west-1");
      await page.getByLabel("Instance", { exact: true }).focus();
      await page.keyboard.press("Tab");
      expect(await activeId()).toBe("typedInstanceId");
      await page.keyboard.press("Tab");
      expect(await errorOf("Instance id")).toEqual({ invalid: null, message: undefined });
      await typed.fill("i-0123");
      await typed.blur();
      expect(await errorOf("Instance id")).toEqual({
        invalid: "true",
        message: "must look like i-0123456789abcdef0",
      });
    });

    it("sends the typed id with the limits of the tag target's rule (its OS users, ticket, 2h maximum)", async () => {
      // Pasted with the whitespace a copy from a console or a terminal brings along; the id is what is sent.
      await page.getByLabel("Instance id").fill(" i-0123456789abcdef0\n");
      expect(await page.getByLabel("OS user").locator("option").allTextContents()).toEqual([
        "ec2-user",
        "ubuntu",
      ]);
      expect(await page.getByTestId("rule-summary").textContent()).toContain("staging-two-person");
      await page.getByLabel("OS user").selectOption("ubuntu");
      // Over dev-demo's 1h, within staging-two-person's 2h.
      await page.getByLabel("Duration").fill("2h");
      await page.getByLabel("Reason").fill("new web node");
      await page.getByLabel("Ticket").fill("CHG-7");
      await page.getByRole("button", { name: "Request access" }).click();
      const [sent] = await submitted();
      expect(sent.input).toEqual({
        instanceId: "i-0123456789abcdef0",
        method: "ssh",
        osUser: "ubuntu",
        durationSeconds: 7200,
        reason: "new web node",
        ticket: "CHG-7",
        breakGlass: false,
      });
    });

    it("refuses a malformed or missing id inline, with focus on the field, and sends nothing", async () => {
      await page.getByLabel("Reason").fill("new web node");
      await page.getByLabel("Ticket").fill("CHG-7");
      await page.getByRole("button", { name: "Request access" }).click();
      expect(await activeId()).toBe("typedInstanceId");
      expect(await errorOf("Instance id")).toEqual({ invalid: "true", message: "Type an instance id" });
      await page.getByLabel("Instance id").fill("i-0123456789ABCDEF0");
      await page.getByLabel("Reason").focus();
      await page.getByRole("button", { name: "Request access" }).click();
      expect(await submitted()).toEqual([]);
      expect(await activeId()).toBe("typedInstanceId");
      expect(await errorOf("Instance id")).toEqual({
        invalid: "true",
        message: "must look like i-0123456789abcdef0",
      });
      await screenshot(page, "component-request-form-typed-instance");
    });

    it("shows the API's refusal of the instance (its tags do not match) on the field", async () => {
      const message = "i-0123456789abcdef0 is not part of any target in the policy";
      await page.evaluate((text) => {
        (globalThis as any).harness.refuse = { status: 403, code: "policy.unknown_target", message: text };
      }, message);
      await page.getByLabel("Instance id").fill("i-0123456789abcdef0");
      await page.getByLabel("Reason").fill("new web node");
      await page.getByLabel("Ticket").fill("CHG-7");
      await page.getByRole("button", { name: "Request access" }).click();
      await page.getByText(message).waitFor();
      expect(await errorOf("Instance id")).toEqual({ invalid: "true", message });
      expect(await activeId()).toBe("typedInstanceId");
      expect(await page.getByRole("alert").count()).toBe(0);
      // Another id is another question for the API: the refusal goes with the edit.
      await page.getByLabel("Instance id").fill("i-0123456789abcdef1");
      expect((await errorOf("Instance id")).message).toBeUndefined();
    });
  });
});
