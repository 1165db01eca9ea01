import { type AnchorStore, anchorHead } from "../audit/anchor.ts";
import type { AuditStore } from "../audit/store.ts";
import { log } from "../util/log.ts";
import { type AlertDeps, type DispatchResult, dispatchAlerts } from "./alerts.ts";
import { type RecorrelateResult, recorrelate } from "./ingest.ts";

export interface MaintainDeps extends AlertDeps {
  audit: Pick<AuditStore, "head">;
  anchors?: AnchorStore;
}

export interface MaintainResult {
  recorrelated: RecorrelateResult;
  alerts: DispatchResult;
  anchored?: number;
}

/**
 * The trail's share of the sweeper's minute: re-correlate events whose push or grant record came late, send
 * the alerts that are due, and anchor the audit chain head outside the table. Each step runs even when an
 * earlier one failed; failures are logged and retried on the next run.
 */
export async function maintain(deps: MaintainDeps): Promise<MaintainResult> {
  const result: MaintainResult = {
    recorrelated: { checked: 0, reclassified: 0 },
    alerts: { sent: 0, events: 0, deferred: 0 },
  };
  try {
    result.recorrelated = await recorrelate(deps);
  } catch (error) {
    log.error("trail re-correlation failed", { error });
  }
  try {
    result.alerts = await dispatchAlerts(deps);
  } catch (error) {
    log.error("trail alerts failed", { error });
  }
  if (deps.anchors) {
    try {
      result.anchored = (
        await anchorHead({ audit: deps.audit, anchors: deps.anchors, clock: deps.clock })
      )?.seq;
    } catch (error) {
      log.error("audit anchoring failed", { error, location: deps.anchors.location });
    }
  }
  return result;
}
