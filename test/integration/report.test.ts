import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csvCell } from "../../core/report/render.ts";
import * as Trail from "../../core/trail/index.ts";
import { createTestBroker, DEMO_CONFIG_TEXT, requestBody, type TestBroker } from "../helpers/broker.ts";
import { parseCsv } from "../helpers/csv.ts";
import {
  cliAs,
  DEMO_INSTANCE,
  eventually,
  MALLORY_KEYS,
  makeKey,
  sendKey,
  startTrailEmulator,
  type TrailEmulator,
} from "../helpers/trail.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
// SRE leads may ask under the demo rule too, so that bob can break glass there.
const CONFIG = DEMO_CONFIG_TEXT.replace(
  "    targets: [demo]\n    requesters: [group:dev]",
  "    targets: [demo]\n    requesters: [group:dev, group:sre-leads]",
);

let emulator: TrailEmulator;
let broker: TestBroker;
const keys: { publicKey: string; cleanup: () => void }[] = [];
const dir = mkdtempSync(join(tmpdir(), "report-"));
let used: { id: string; grantId: string };
let unused: { id: string; grantId: string };
let glass: { id: string; grantId: string; status?: string };
let from: string;
let to: string;

beforeAll(async () => {
  emulator = await startTrailEmulator();
  broker = await createTestBroker(CONFIG, { aws: emulator.aws });
  keys.push(makeKey("alice@laptop"), makeKey("mallory@evil"));
  from = new Date(broker.clock.now.getTime() - 3_600_000).toISOString();

  const ask = async (user: string, body: Record<string, unknown>) => {
    const created = await broker.call(user, "POST", "/requests", { body: requestBody(body) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    return created.body as { id: string; grantId: string; status: string };
  };
  used = await ask(ALICE, {
    reason:
      '=HYPERLINK("http://evil.example","click"), then "quotes"\nand a new line <script>alert(1)</script>',
    ticket: "-INC-7",
  });
  // Both clocks move together: CloudTrail's event times are the emulator's.
  const advance = async (seconds: number) => {
    broker.clock.advance(seconds);
    await emulator.advance(seconds);
  };
  await advance(42);
  await broker.call(BOB, "POST", `/requests/${used.id}/approve`);
  const pushed = await broker.call(ALICE, "POST", `/grants/${used.grantId}/ssh-key`, {
    body: { publicKey: keys[0]?.publicKey },
  });
  expect(pushed.status).toBe(200);
  unused = await ask(ALICE, { method: "tunnel", osUser: undefined, port: 22, reason: "never used" });
  await advance(200);
  await broker.call(BOB, "POST", `/requests/${unused.id}/approve`);
  glass = await ask(BOB, { breakGlass: true, reason: "prod is down" });
  expect(glass.status).toBe("active");
  await sendKey(emulator, MALLORY_KEYS, {
    instanceId: DEMO_INSTANCE,
    osUser: "root",
    publicKey: keys[1]?.publicKey ?? "",
  });
  const envelopes = await eventually(
    () => emulator.delivered,
    (list) => list.length >= 2,
  );
  for (const envelope of envelopes) await Trail.receive(broker.deps as Trail.Deps, envelope);
  to = new Date(broker.clock.now.getTime() + 3_600_000).toISOString();
});

afterAll(async () => {
  await emulator?.close();
  for (const key of keys) key.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const report = (query: Record<string, string>, user = CAROL) =>
  broker.call(user, "GET", "/reports/access", { query });

describe("GET /reports/access", () => {
  it("lists every grant with who, why, what, the window asked for and used, and its trail events", async () => {
    const response = await report({ from, to });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const body = response.body;
    const row = body.grants.find((grant: any) => grant.grantId === used.grantId);
    expect(row).toMatchObject({
      requester: ALICE,
      approvers: [BOB],
      rule: "dev-demo",
      ticket: "-INC-7",
      target: "demo",
      instanceId: DEMO_INSTANCE,
      method: "ssh",
      osUser: "ec2-user",
      requestedSeconds: 1800,
      approvalLatencySeconds: 42,
      events: { brokered: 1 },
      unused: false,
    });
    expect(row.firstUse).toBe(row.lastUse);
    expect(body.unusedGrants).toEqual(expect.arrayContaining([unused.grantId, glass.grantId]));
    expect(body.unusedGrants).not.toContain(used.grantId);
    expect(body.nonBrokeredEvents).toEqual([
      expect.objectContaining({ classification: "unbrokered", target: `root@${DEMO_INSTANCE}` }),
    ]);
    expect(body.breakGlass).toEqual([
      expect.objectContaining({ grantId: glass.grantId, requester: BOB, review: { status: "pending" } }),
    ]);
    expect(body.summary).toMatchObject({
      grants: 3,
      used: 1,
      unused: 2,
      breakGlass: 1,
      breakGlassAwaitingReview: 1,
      events: { brokered: 1, unbrokered: 1 },
      approvalLatencySeconds: { count: 2, max: 200 },
    });
    const status = Object.fromEntries(body.controls.map((control: any) => [control.control, control.status]));
    expect(status).toEqual({
      "access approved": "attention",
      "least privilege": "pass",
      "time-boxed": "pass",
      logged: "fail",
    });
    expect(body.chain).toMatchObject({ ok: true });
  });

  it("marks break-glass reviewed once an auditor reviewed it", async () => {
    expect(
      (await broker.call(CAROL, "POST", `/requests/${glass.id}/review`, { body: { comment: "ok" } })).status,
    ).toBe(200);
    const body = (await report({ from, to })).body;
    expect(body.breakGlass[0].review).toMatchObject({ status: "done", by: CAROL });
    expect(body.controls.find((control: any) => control.control === "access approved").status).toBe("pass");
  });

  it("writes CSV that a spreadsheet opens as it is: BOM, CRLF, quoting, no formulas", async () => {
    const response = await report({ from, to, format: "csv" });
    expect(response.headers["content-type"]).toBe("text/csv; charset=utf-8; header=present");
    expect(response.headers["content-disposition"]).toMatch(
      /^attachment; filename="access-report_.*_grants\.csv"$/,
    );
    const text = response.body as string;
    expect(text.startsWith("\uFEFF")).toBe(true);
    expect(text.endsWith("\r\n")).toBe(true);
    const rows = parseCsv(text.slice(1));
    const header = rows[0] as string[];
    expect(header.slice(0, 4)).toEqual(["grant_id", "request_id", "status", "requester"]);
    const line = rows.find((cells) => cells[0] === used.grantId) as string[];
    const cell = (name: string) => line[header.indexOf(name)];
    expect(cell("reason")).toBe(
      `'=HYPERLINK("http://evil.example","click"), then "quotes"\nand a new line <script>alert(1)</script>`,
    );
    expect(cell("ticket")).toBe("'-INC-7");
    expect(cell("starts_at")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(cell("brokered_events")).toBe("1");
    expect(rows.every((cells) => cells.length === header.length)).toBe(true);

    const events = parseCsv(
      ((await report({ from, to, format: "csv", section: "events" })).body as string).slice(1),
    );
    expect(events[1]?.[3]).toBe("unbrokered");
    expect(csvCell("+1")).toBe("'+1");
    expect(csvCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvCell(-5)).toBe("-5");
  });

  it("renders a self-contained printable HTML page with everything escaped", async () => {
    const response = await report({ from, to, format: "html" });
    expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(response.headers["content-security-policy"]).toBe("default-src 'none'; style-src 'unsafe-inline'");
    const html = response.body as string;
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)=/i);
    expect(html).toContain("@media print");
    expect(html).toContain(used.grantId);
  });

  it("is for auditors and admins, and checks its period", async () => {
    expect((await report({ from, to }, ALICE)).status).toBe(404);
    expect((await report({ from: to, to: from })).status).toBe(400);
    expect((await report({ from: "2020-01-01T00:00:00Z", to: "2024-01-01T00:00:00Z" })).status).toBe(400);
  });

  it("is what `access report` writes, to stdout or a file", async () => {
    const json = await cliAs(broker, CAROL, ["report", "--from", from, "--to", to]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).summary.grants).toBe(3);
    const file = join(dir, "report.html");
    const html = await cliAs(broker, CAROL, [
      "report",
      "--from",
      from,
      "--to",
      to,
      "--format",
      "html",
      "-o",
      file,
    ]);
    expect(html.code).toBe(0);
    expect(readFileSync(file, "utf8")).toContain("EC2 access report");
    const csv = await cliAs(broker, CAROL, [
      "report",
      "--from",
      from,
      "--to",
      to,
      "--format",
      "csv",
      "--section",
      "controls",
    ]);
    expect(csv.stdout.startsWith("\uFEFFcontrol,status,evidence\r\n")).toBe(true);
    expect((await cliAs(broker, ALICE, ["report", "--from", from, "--to", to, "--format", "csv"])).code).toBe(
      1,
    );
  });
});
