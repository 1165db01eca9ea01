/**
 * Fault injection: make chosen operations throttle, fail with a 5xx, or slow down, at a given rate.
 *
 * Config (`POST /_emulator/faults`, or `startEmulator({ faults })`):
 *   { "seed": 42, "operations": { "AssumeRole": { "rate": 1, "kind": "throttle" },
 *                                 "*": [{ "rate": 0.1, "kind": "latency", "latencyMs": 200 }] } }
 * Keys are operation names (`DescribeInstances`), optionally service-qualified (`sts:AssumeRole`), or `*`
 * for every operation without a more specific entry. A `seed` makes the dice reproducible.
 *
 * Who applies it: the server, before running any operation of the built-in services (STS, IAM, EC2,
 * CloudTrail); services mounted through `startEmulator({ services })` (EIC, EICE) call
 * `core.faults.inject(operation)` themselves at the point where the real service would fail.
 */
import * as z from "zod";
import type { Faults } from "./contract.ts";

export const FaultRule = z.strictObject({
  /** Probability per call, 0..1. */
  rate: z.number().min(0).max(1),
  kind: z.enum(["throttle", "5xx", "latency"]),
  /** For `latency`: the delay, real milliseconds (default 1000). */
  latencyMs: z.number().int().min(0).max(120_000).optional(),
});
export type FaultRule = z.infer<typeof FaultRule>;

export const FaultConfig = z.strictObject({
  seed: z.number().int().optional(),
  operations: z.record(z.string().min(1), z.union([FaultRule, z.array(FaultRule)])).default({}),
});
export type FaultConfig = z.input<typeof FaultConfig>;

export interface InjectedFault {
  status: number;
  code: string;
  message: string;
}

/** mulberry32: tiny, fast, good enough to make test runs repeatable. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const THROTTLE_FAULT: InjectedFault = {
  status: 400,
  code: "ThrottlingException",
  message: "Rate exceeded",
};
export const SERVER_FAULT: InjectedFault = {
  status: 500,
  code: "InternalFailure",
  message: "The request processing has failed because of an unknown error, exception or failure.",
};

export class FaultInjector implements Faults {
  private rules: Record<string, FaultRule[]> = {};
  private random: () => number = Math.random;

  constructor(config?: FaultConfig) {
    if (config !== undefined) this.configure(config);
  }

  /** Replaces the whole configuration (validated; throws ZodError on bad input). */
  configure(config: unknown): void {
    const parsed = FaultConfig.parse(config ?? {});
    this.rules = Object.fromEntries(
      Object.entries(parsed.operations).map(([operation, rules]) => [operation, [rules].flat()]),
    );
    this.random = parsed.seed === undefined ? Math.random : seeded(parsed.seed);
  }

  reset(): void {
    this.configure({});
  }

  /** The rules for `operation` of `service`, most specific key first. */
  private rulesFor(operation: string, service?: string): FaultRule[] {
    const qualified = service === undefined ? undefined : this.rules[`${service}:${operation}`];
    return qualified ?? this.rules[operation] ?? this.rules["*"] ?? [];
  }

  async inject(operation: string, service?: string): Promise<InjectedFault | undefined> {
    for (const rule of this.rulesFor(operation, service)) {
      if (rule.rate <= 0 || this.random() >= rule.rate) continue;
      if (rule.kind === "latency") await sleep(rule.latencyMs ?? 1000);
      else if (rule.kind === "throttle") return { ...THROTTLE_FAULT };
      else return { ...SERVER_FAULT };
    }
    return undefined;
  }
}
