import { log } from "../util/log.ts";
import type { SlackJobs } from "./ports.ts";
import type { JobInput } from "./schema.ts";

export interface InProcessJobs extends SlackJobs {
  /** Sets what runs each job (the worker); jobs enqueued before are held until then. */
  start(run: (job: unknown) => Promise<void>): void;
  /** Resolves when no job is running or waiting, including jobs that jobs enqueued. */
  drain(): Promise<void>;
  /** Jobs accepted so far (tests assert that a rejected request enqueued nothing). */
  readonly accepted: number;
}

/**
 * The local stand-in for the async Lambda invoke: the job is serialised like an invoke payload (so the
 * worker validates exactly what it would receive in AWS) and runs after the acknowledgement is sent, each
 * job on its own, concurrently — as separate Lambda invocations would.
 */
export function inProcessJobs(): InProcessJobs {
  let runner: ((job: unknown) => Promise<void>) | undefined;
  const waiting: unknown[] = [];
  const running = new Set<Promise<void>>();
  let accepted = 0;

  const launch = (payload: unknown) => {
    const task = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => runner?.(payload))
      .catch((error: unknown) => log.error("slack job failed", { error }))
      .finally(() => running.delete(task));
    running.add(task);
  };

  return {
    get accepted() {
      return accepted;
    },
    async enqueue(job: JobInput) {
      accepted++;
      const payload: unknown = JSON.parse(JSON.stringify(job));
      if (runner) launch(payload);
      else waiting.push(payload);
    },
    start(run) {
      runner = run;
      for (const payload of waiting.splice(0)) launch(payload);
    },
    async drain() {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}
