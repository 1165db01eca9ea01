import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestBroker, type TestBroker } from "../helpers/broker.ts";
import { cliAs } from "../helpers/trail.ts";
import { eicRecord, otherRecord, rng, uuid, writeCorpus } from "../helpers/trail-corpus.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const FIXTURES = join(ROOT, "test/fixtures/cloudtrail");
const CAROL = "carol@example.com";

let dir: string;
let broker: TestBroker;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "trail-import-"));
  broker = await createTestBroker();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (argv: string[], user = CAROL) => cliAs(broker, user, argv);

const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name), "utf8"));

/** A compact CloudTrail file: `n` other records with EC2 Instance Connect ones (unique ids) among them. */
function logFile(seed: number, n: number, eic: Record<string, unknown>[]): string {
  const random = rng(seed);
  const records = Array.from({ length: n }, () => otherRecord(random, "2024-05-01T10:00:00Z"));
  for (const [index, record] of eic.entries())
    records.splice(((index + 1) * n) / (eic.length + 1), 0, JSON.stringify(record));
  return `{"Records":[${records.join(",")}]}`;
}

const withId = (name: string, id: string) => ({ ...fixture(name), eventID: id });

describe("access audit import", () => {
  it("imports gzip and plain files of a directory, reports broken files and keeps the good records", async () => {
    const logs = join(dir, "logs");
    mkdirSync(join(logs, "2024/05/01"), { recursive: true });
    writeFileSync(
      join(logs, "2024/05/01/a.json.gz"),
      gzipSync(
        logFile(1, 3_000, [withId("push-unbrokered.json", "imp-a1"), withId("push-denied.json", "imp-a2")]),
      ),
    );
    copyFileSync(join(FIXTURES, "log-file-pretty.json"), join(logs, "b.json"));
    // Cut in the middle: the records before the cut are still imported.
    const whole = gzipSync(
      logFile(
        2,
        20_000,
        Array.from({ length: 10 }, (_, n) => withId("push-unbrokered.json", `imp-c${n}`)),
      ),
    );
    writeFileSync(join(logs, "c-truncated.json.gz"), whole.subarray(0, Math.floor(whole.length * 0.55)));
    // One EC2 Instance Connect record with broken JSON; the file's other records are fine.
    const broken = logFile(3, 500, [
      withId("tunnel-no-duration-federated.json", "imp-d1"),
      withId("serial-console-root.json", "imp-d2"),
    ]).replace('"eventID":"imp-d1"', '"eventID":imp-d1');
    writeFileSync(join(logs, "d-invalid.json"), broken);
    writeFileSync(join(logs, "notes.txt"), "not a log file");

    const { code, stdout, stderr } = await cli(["audit", "import", logs, "--progress"]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/\[#+\.*\] +\d+% [\d.]+\/[\d.]+ MB/);
    expect(stderr).toMatch(/ok {5}.*a\.json\.gz: 3,002 records, 2 new EC2 Instance Connect events/);
    expect(stderr).toMatch(/ok {5}.*b\.json: 6 records, 3 new/);
    expect(stderr).toMatch(/error .*c-truncated\.json\.gz: truncated gzip: the compressed data ends early/);
    expect(stderr).toMatch(
      /error .*d-invalid\.json: 1 record is not valid JSON: invalid JSON in the record at byte \d+/,
    );
    expect(stderr).not.toContain("notes.txt");
    expect(stdout).toMatch(/^imported 2 of 4 files in/);
    expect(stdout).toMatch(/newly recorded: +\d+ \(/);
    expect(stdout).toMatch(/files that could not be read: +2/);

    const listed = await broker.call(CAROL, "GET", "/audit/trail", { query: { limit: "200" } });
    const ids = listed.body.items.map((item: any) => item.eventId) as string[];
    expect(ids).toEqual(
      expect.arrayContaining(["imp-a1", "imp-a2", "imp-d2", "5b1c7a7e-0f1a-4a6e-9a43-1d2e3f4a5b01"]),
    );
    const truncated = ids.filter((id) => id.startsWith("imp-c"));
    expect(truncated.length).toBeGreaterThan(0);
    expect(truncated.length).toBeLessThan(10);
    expect(ids).not.toContain("imp-d1");

    // Again: everything is already known.
    const again = await cli(["audit", "import", join(logs, "2024"), "--no-progress", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).result).toMatchObject({ recorded: 0, duplicates: 2 });

    expect((await cli(["audit", "import", join(dir, "missing")])).stderr).toMatch(/cannot read/);
    expect((await cli(["audit", "import", logs], "alice@example.com")).code).toBe(1);
  });

  it("imports a 100 MB gzip file within bounded memory", async () => {
    const big = join(dir, "big");
    mkdirSync(big);
    let eic = 0;
    const corpus = await writeCorpus({
      dir: big,
      records: 640_000,
      recordsPerFile: 640_000,
      eicRatio: 0.002,
      gzipLevel: 6,
      eic: (n, random, time) => {
        eic++;
        return eicRecord({
          eventId: uuid(random),
          time,
          account: "111122223333",
          region: "us-east-1",
          identity: fixture("push-unbrokered.json").userIdentity,
          kind: "push",
          instanceId: "i-0a1b2c3d4e5f60718",
          osUser: "ec2-user",
          publicKey: fixture("push-unbrokered.json").requestParameters.sSHPublicKey,
          ...(n % 2 === 0 ? { errorCode: "AccessDenied" } : {}),
        });
      },
    });
    const size = statSync(corpus.files[0] as string).size;
    expect(size).toBeGreaterThan(100e6);
    const child = await new Promise<string>((done, fail) =>
      execFile(
        process.execPath,
        [
          "--import",
          "tsx",
          "test/helpers/import-child.ts",
          "--store",
          "dynamo",
          "--endpoint",
          inject("dynamoEndpoint"),
          "--table",
          broker.table,
          ...corpus.files,
        ],
        { cwd: ROOT, maxBuffer: 1 << 20, env: { ...process.env, LOG_LEVEL: "error" } },
        (error, stdout) => (error ? fail(error) : done(stdout)),
      ),
    );
    const figures = JSON.parse(child.trim().split("\n").at(-1) ?? "{}");
    expect(figures).toMatchObject({ records: 640_000, failedFiles: 0, result: { recorded: eic } });
    expect(figures.bytes).toBeGreaterThan(700e6);
    // The file is ~8x larger uncompressed than compressed; memory stays at a few chunks of it.
    expect(figures.peakRssMB - figures.baselineRssMB).toBeLessThan(200);
  }, 600_000);
});
