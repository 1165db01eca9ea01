import { describe, expect, it } from "vitest";
import type { Push } from "../../core/access/schema.ts";
import { parseConfig } from "../../core/policy/yaml.ts";
import type { Info } from "../../core/request/schema.ts";
import * as Trail from "../../core/trail/index.ts";
import { MemoryTrailStore } from "../../core/trail/memory.ts";
import { DEMO_CONFIG_TEXT } from "../helpers/config.ts";
import { eicRecord, rng, uuid } from "../helpers/trail-corpus.ts";
import { ACCOUNT, eventFor, world } from "../helpers/trail-world.ts";

const config = parseConfig(DEMO_CONFIG_TEXT);

/** The store with a count of every call, by method name, and the arguments of each. */
function counted(store: MemoryTrailStore): {
  store: Trail.TrailStore;
  calls: Map<string, number>;
  args: Map<string, unknown[][]>;
} {
  const calls = new Map<string, number>();
  const args = new Map<string, unknown[][]>();
  const proxy = new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== "function") return value;
      return (...callArgs: unknown[]) => {
        calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
        args.set(String(name), [...(args.get(String(name)) ?? []), callArgs]);
        return value.apply(target, callArgs);
      };
    },
  });
  return { store: proxy, calls, args };
}

const at = (time: string, ms: number) => new Date(Date.parse(time) + ms).toISOString();
const seconds = (iso: string) => iso.replace(/\.\d{3}Z$/, "Z");

/**
 * 40 grants with their pushes, the events of their use, and the cases a window read could get wrong: a key
 * pushed twice close together (the nearer push wins), a push whose AWS call took 12 minutes, a failed push,
 * and a key the broker pushed used again two hours later (only the full fingerprint list knows it).
 */
function bulkWorld() {
  const bench = world(40);
  const extra: Push[] = [];
  const replaced = new Map<string, Push>();
  const random = rng(3);
  const records = Array.from({ length: 200 }, (_, n) => eventFor(bench, n, random));
  const brokerPush = (index: number, time: string) => {
    const request = bench.requests[index] as Info;
    return eicRecord({
      eventId: uuid(random),
      time: seconds(time),
      account: ACCOUNT,
      region: "us-east-1",
      identity: JSON.parse(eventFor(bench, 0, random)).userIdentity,
      kind: "push",
      instanceId: request.instanceId,
      osUser: "ec2-user",
      publicKey: bench.keys[index] as string,
    });
  };
  const first = bench.pushes[0] as Push;
  const firstTime = first.pushedAt ?? first.createdAt;
  // Pushed again 90 s later for the same grant: an event 80 s after the second push matches the second.
  extra.push({
    ...first,
    id: "push_01hzx000000000000000000002",
    createdAt: at(firstTime, 90_000),
    pushedAt: at(firstTime, 90_000),
  });
  records.push(brokerPush(0, at(firstTime, 170_000)));
  // Grant 2's push took 12 minutes from intent to AWS; the same key was pushed again 4 minutes after it. The
  // slow push is the nearer one, although it was created long before the window around the event.
  const slow = bench.pushes[1] as Push;
  const slowAt = slow.pushedAt ?? slow.createdAt;
  replaced.set(slow.id, { ...slow, createdAt: at(slowAt, -720_000) });
  extra.push({
    ...slow,
    id: "push_01hzx000000000000000000003",
    createdAt: at(slowAt, 240_000),
    pushedAt: at(slowAt, 240_000),
  });
  // Grant 4's key: pushed, then a push of it that failed 30 s later; an event 60 s after the first push
  // is nearest the failed one.
  const failed = bench.pushes[2] as Push;
  extra.push({
    ...failed,
    id: "push_01hzx000000000000000000004",
    status: "failed",
    pushedAt: undefined,
    createdAt: at(failed.pushedAt ?? failed.createdAt, 30_000),
  });
  records.push(brokerPush(4, at(failed.pushedAt ?? failed.createdAt, 60_000)));
  // Grant 6's key, used two hours after the push.
  records.push(brokerPush(6, at((bench.pushes[3] as Push).createdAt, 7_200_000)));
  /** A store of its own holding the world, for each way of looking things up. */
  const store = () => {
    const memory = new MemoryTrailStore();
    for (const request of bench.requests) memory.putRequest(request);
    for (const push of [...bench.pushes.map((push) => replaced.get(push.id) ?? push), ...extra])
      memory.putPush(push);
    return memory;
  };
  return { bench, store, records, slowId: slow.id };
}

describe("bulk correlation reads", () => {
  it("gives the verdicts of one-by-one lookups with a few bulk reads instead of one per event", async () => {
    const { store, records, slowId } = bulkWorld();
    const one = counted(store());
    const bulk = counted(store());
    const events = records.map((record) => Trail.normalize(JSON.parse(record)));

    const oneLookup = new Trail.LookupCache().wrap(one.store);
    const expected = [];
    for (const event of events) expected.push(await Trail.correlate({ config, lookup: oneLookup }, event));

    const cache = new Trail.LookupCache();
    await cache.prime(bulk.store, events);
    const bulkLookup = cache.wrap(bulk.store);
    const actual = [];
    for (const event of events) actual.push(await Trail.correlate({ config, lookup: bulkLookup }, event));

    expect(actual).toEqual(expected);
    // The cases above came out as they should, both ways.
    const tail = actual.slice(200);
    expect(tail[0]).toMatchObject({ classification: "brokered", pushId: "push_01hzx000000000000000000002" });
    expect(tail[1]).toMatchObject({ classification: "brokered", pushId: "push_01hzx000000000000000000004" });
    expect(tail[2]).toMatchObject({ classification: "outside-window", matchedBy: "push" });
    // Grant 2's events: its slow push, not the later one the window alone would have shown.
    const grant2 = actual.filter((_, index) => index < 200 && index % 40 === 2);
    expect(grant2.map((verdict) => verdict.pushId)).toEqual(grant2.map(() => slowId));
    expect(new Set(actual.map((verdict) => verdict.classification))).toEqual(
      new Set(["brokered", "unbrokered", "denied-attempt", "outside-window"]),
    );
    // One by one (memoized): a fingerprint list per key and a read per grant. Bulk: a window read per
    // stretch of time, one batch of requests, and fingerprint lists only for keys without a push nearby.
    expect(one.calls.get("request")).toBeGreaterThanOrEqual(30);
    expect(bulk.calls.get("request") ?? 0).toBeLessThanOrEqual(2);
    expect(bulk.calls.get("requests")).toBe(1);
    // Two windows: the batch's hour, and the reuse two hours later.
    expect(bulk.calls.get("pushesCreatedBetween")).toBe(2);
    // The 20 broker keys were found near their events; the others' lists are still read, once each.
    expect(bulk.calls.get("pushesByFingerprint")).toBeLessThanOrEqual(
      (one.calls.get("pushesByFingerprint") ?? 0) - 15,
    );
  });

  it("reads a lone event's fingerprint directly: a window read would cost more", async () => {
    const { store, records } = bulkWorld();
    const bulk = counted(store());
    const event = Trail.normalize(JSON.parse(records[0] as string));
    const cache = new Trail.LookupCache();
    await cache.prime(bulk.store, [event]);
    expect(bulk.calls.get("pushesCreatedBetween")).toBeUndefined();
    const verdict = await Trail.correlate({ config, lookup: cache.wrap(bulk.store) }, event);
    expect(verdict).toMatchObject({ classification: "brokered", matchedBy: "push" });
    expect(bulk.calls.get("pushesByFingerprint")).toBe(1);
  });

  it("reads each stretch of pushes once across batches whose windows overlap, and again once evicted", async () => {
    const bench = world(200);
    const random = rng(5);
    const records = Array.from({ length: 200 }, (_, n) => eventFor(bench, n, random));
    const events = records.map((record) => Trail.normalize(JSON.parse(record)));
    const memory = new MemoryTrailStore();
    for (const request of bench.requests) memory.putRequest(request);
    for (const push of bench.pushes) memory.putPush(push);
    const one = new Trail.LookupCache().wrap(memory);
    const expected = [];
    for (const event of events) expected.push(await Trail.correlate({ config, lookup: one }, event));

    // Events 8 s apart in batches of 50 (under 7 minutes each): each batch's push windows reach into the
    // previous batch's time, which must not be read again.
    const verdicts = async (cache: Trail.LookupCache, bulk: ReturnType<typeof counted>) => {
      const actual = [];
      for (let start = 0; start < events.length; start += 50) {
        const batch = events.slice(start, start + 50);
        await cache.prime(bulk.store, batch);
        for (const event of batch)
          actual.push(await Trail.correlate({ config, lookup: cache.wrap(bulk.store) }, event));
      }
      return actual;
    };
    const bulk = counted(memory);
    expect(await verdicts(new Trail.LookupCache(), bulk)).toEqual(expected);
    const ranges = (bulk.args.get("pushesCreatedBetween") ?? []) as [string, string][];
    expect(ranges.length).toBeGreaterThanOrEqual(2);
    for (const [index, [from, to]] of ranges.entries()) {
      expect(from < to).toBe(true);
      const previous = ranges[index - 1];
      if (previous) expect(from > previous[1]).toBe(true);
    }
    // Fingerprints of keys the broker pushed are all answered from the slots; only foreign keys are read.
    const foreign = events.filter((_, n) => n % 10 === 8 || n % 10 === 9).length;
    expect(bulk.calls.get("pushesByFingerprint")).toBe(foreign);

    // With room for a single slot's pushes, a batch whose windows span several slots re-reads what it needs.
    const tight = counted(memory);
    expect(await verdicts(new Trail.LookupCache({ maxSlotPushes: 1 }), tight)).toEqual(expected);
    expect(tight.calls.get("pushesCreatedBetween") ?? 0).toBeGreaterThan(ranges.length);
    // The same with room for two slots, whatever they hold.
    const few = counted(memory);
    expect(await verdicts(new Trail.LookupCache({ maxSlots: 2 }), few)).toEqual(expected);
    expect(few.calls.get("pushesCreatedBetween") ?? 0).toBeGreaterThan(ranges.length);
  });

  it("counts a slot once when two batches in flight read it together, so nothing is evicted early", async () => {
    const bench = world(200);
    const random = rng(9);
    const events = Array.from({ length: 200 }, (_, n) =>
      Trail.normalize(JSON.parse(eventFor(bench, n, random))),
    );
    const memory = new MemoryTrailStore();
    for (const request of bench.requests) memory.putRequest(request);
    for (const push of bench.pushes) memory.putPush(push);
    const bulk = counted(memory);
    // Room for exactly the world's pushes.
    const cache = new Trail.LookupCache({ maxSlotPushes: bench.pushes.length });
    await Promise.all([cache.prime(bulk.store, events), cache.prime(bulk.store, events)]);
    const read = bulk.calls.get("pushesCreatedBetween") ?? 0;
    expect(read).toBeGreaterThan(0);
    await cache.prime(bulk.store, events);
    expect(bulk.calls.get("pushesCreatedBetween")).toBe(read);
  });
});
