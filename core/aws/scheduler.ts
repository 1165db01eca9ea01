import {
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import type { Grant } from "../grant/index.ts";

export { SchedulerClient };

import { errorName } from "./errors.ts";

export interface EventBridgeSchedulerOptions {
  /** The function that settles a grant (functions/expire.ts). */
  targetArn: string;
  /** The role EventBridge Scheduler assumes to invoke it. */
  roleArn: string;
  group: string;
}

/** One schedule per grant, named after it (1–64 of `[0-9a-zA-Z-_.]`), so revoke can find it. */
export function scheduleName(grantId: string): string {
  return `grant-${grantId}`;
}

/**
 * `at(yyyy-mm-ddThh:mm:ss)` in UTC, rounded up to the second: the schedule never fires before the end.
 * (Scheduler fires within the following minute: protocols.md §6.2.)
 */
export function atExpression(at: Date): string {
  const seconds = Math.ceil(at.getTime() / 1000) * 1000;
  return `at(${new Date(seconds).toISOString().slice(0, 19)})`;
}

/**
 * Grant.Scheduler on EventBridge Scheduler: a one-time schedule per grant at its end, invoking the expire
 * function with `{"grantId"}`, deleted by Scheduler after it ran. Moved on extension, deleted on revoke.
 */
export class EventBridgeScheduler implements Grant.Scheduler {
  constructor(
    private readonly client: SchedulerClient,
    private readonly options: EventBridgeSchedulerOptions,
  ) {}

  private definition(grantId: string, at: Date): CreateScheduleCommandInput {
    return {
      Name: scheduleName(grantId),
      GroupName: this.options.group,
      ScheduleExpression: atExpression(at),
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      State: "ENABLED",
      Description: `access-broker: settle grant ${grantId} at its end`,
      Target: {
        Arn: this.options.targetArn,
        RoleArn: this.options.roleArn,
        Input: JSON.stringify({ grantId }),
        // The handler is idempotent; keep trying for an hour (the sweeper is the backstop after that).
        RetryPolicy: { MaximumEventAgeInSeconds: 3_600, MaximumRetryAttempts: 20 },
      },
    };
  }

  async upsert(grantId: string, at: Date): Promise<void> {
    const definition = this.definition(grantId, at);
    try {
      await this.client.send(new CreateScheduleCommand(definition));
    } catch (error) {
      if (errorName(error) !== "ConflictException") throw error;
      // It exists (an extension, or a retry): move it.
      await this.client.send(new UpdateScheduleCommand(definition));
    }
  }

  async remove(grantId: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteScheduleCommand({ Name: scheduleName(grantId), GroupName: this.options.group }),
      );
    } catch (error) {
      if (errorName(error) !== "ResourceNotFoundException") throw error;
    }
  }
}
