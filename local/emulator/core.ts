/**
 * The emulator's core: the clock, the IAM directory and credential store, SigV4 authentication, the trail,
 * S3's objects and fault injection, behind the `EmulatorCore` contract the services program against.
 */

import { TrailStore } from "./cloudtrail.ts";
import type {
  Authenticated,
  Caller,
  ConditionContext,
  Decision,
  EmulatorCore,
  TrailInput,
} from "./contract.ts";
import { type FaultConfig, FaultInjector } from "./faults.ts";
import { IamDirectory } from "./iam.ts";
import type { EmulatorInventory } from "./inventory.ts";
import { S3Store } from "./s3.ts";
import { authFailure, errorStyleFor, verifySigV4 } from "./sigv4.ts";

/** Emulator time: a base clock (real time unless given) plus an offset tests can move. */
export class Clock {
  private offsetMs = 0;
  constructor(private readonly base: () => Date = () => new Date()) {}
  now(): Date {
    return new Date(this.base().getTime() + this.offsetMs);
  }
  get offsetSeconds(): number {
    return this.offsetMs / 1000;
  }
  /** Sets the offset from the base clock. */
  setOffset(seconds: number): void {
    this.offsetMs = Math.round(seconds * 1000);
  }
  /** Moves emulator time forward (or back, if negative). */
  advance(seconds: number): void {
    this.offsetMs += Math.round(seconds * 1000);
  }
}

export interface CoreOptions {
  inventory: EmulatorInventory;
  upstreams?: Record<string, { host: string; port: number }>;
  faults?: FaultConfig;
  /** Base time source (default: the system clock); `/_emulator/clock` offsets apply on top. */
  clock?: () => Date;
  /** EventBridge-shaped target for EC2 Instance Connect trail events. */
  trailTarget?: string;
}

/** `EmulatorCore` plus what the server and built-in services reach for. */
export interface EmulatorState extends EmulatorCore {
  inventory: EmulatorInventory;
  clock: Clock;
  iam: IamDirectory;
  trail: TrailStore;
  faults: FaultInjector;
  /** The objects of the inventory's S3 buckets. */
  s3: S3Store;
  /**
   * Back to the start: drops sessions, policy changes, the trail and S3 objects; restores the initial faults
   * and clock.
   */
  reset(): void;
}

export function createCore(options: CoreOptions): EmulatorState {
  const clock = new Clock(options.clock);
  const now = () => clock.now();
  const iam = new IamDirectory(options.inventory, now);
  const trail = new TrailStore({
    now,
    ...(options.trailTarget === undefined ? {} : { target: options.trailTarget }),
  });
  const faults = new FaultInjector(options.faults);
  const s3 = new S3Store(options.inventory.buckets, now);
  const upstreams = { ...options.upstreams };

  return {
    inventory: options.inventory,
    clock,
    iam,
    trail,
    faults,
    s3,
    now,
    authenticate(request): Authenticated {
      const verified = verifySigV4(
        {
          method: request.method,
          host: request.host,
          path: request.path,
          query: request.query,
          headers: request.headers,
          body: request.body,
          presigned: request.presigned,
          ...(request.maxExpiresSeconds === undefined
            ? {}
            : { maxExpiresSeconds: request.maxExpiresSeconds }),
        },
        { now: clock.now(), lookup: (accessKeyId) => iam.signingKey(accessKeyId) },
      );
      const caller: Caller | undefined = iam.caller(verified.accessKeyId);
      if (caller === undefined) {
        // The key vanished between verification and lookup (a reset): answer as for an unknown key.
        throw authFailure(errorStyleFor(verified.service), "unknown-key");
      }
      return { caller, region: verified.region, service: verified.service };
    },
    authorize(caller: Caller, action: string, resourceArn: string, context: ConditionContext): Decision {
      return iam.authorize(caller, action, resourceArn, context);
    },
    recordTrail(event: TrailInput): void {
      trail.record(event);
    },
    upstream(name: string) {
      return Object.hasOwn(upstreams, name) ? upstreams[name] : undefined;
    },
    reset() {
      clock.setOffset(0);
      iam.reset();
      trail.reset();
      s3.reset();
      faults.configure(options.faults ?? {});
    },
  };
}
