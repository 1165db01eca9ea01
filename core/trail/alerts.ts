import { log } from "../util/log.ts";
import { type Deps, now } from "./ingest.ts";
import type { Classification, Observation } from "./schema.ts";

/** One message to the security channel: every pending event of one classification, grouped. */
export interface Alert {
  classification: Classification;
  count: number;
  /** The first few events, oldest first. */
  events: AlertEvent[];
  /** How many more there are beyond `events`. */
  more: number;
  /** A plain-text summary (log line, Slack fallback text). */
  text: string;
}

export interface AlertEvent {
  eventId: string;
  eventTime?: string;
  eventName?: string;
  account?: string;
  region?: string;
  who?: string;
  requestId?: string;
  grantId?: string;
  reasons: string[];
}

/** Port: where alerts go (Slack's security channel in a deployment; the log otherwise). */
export interface AlertSink {
  send(alert: Alert): Promise<void>;
}

/** Without Slack, alerts are warnings in the log (CloudWatch alarms can match on `trail alert`). */
export const logSink: AlertSink = {
  async send(alert) {
    log.warn("trail alert", {
      classification: alert.classification,
      count: alert.count,
      events: alert.events.map((event) => ({ eventId: event.eventId, reasons: event.reasons })),
    });
  },
};

export interface AlertDeps extends Deps {
  alerts: AlertSink;
}

const SHOWN = 10;
const TITLES: Record<Classification, string> = {
  brokered: "brokered",
  "outside-window": "used outside their grant's window",
  "constraint-mismatch": "outside their grant's constraints",
  "denied-attempt": "refused by AWS (attempts)",
  unbrokered: "not brokered: no grant allowed them",
  unparsed: "not understood (kept raw)",
};

function alertEvent(observation: Observation): AlertEvent {
  const event = observation.event;
  return {
    eventId: observation.eventId,
    eventTime: event.eventTime,
    eventName: event.eventName,
    account: event.account,
    region: event.region,
    who: event.kind === "unparsed" ? undefined : (event.identity.arn ?? event.identity.type),
    requestId: observation.verdict.requestId,
    grantId: observation.verdict.grantId,
    reasons: observation.verdict.reasons,
  };
}

export function alertOf(classification: Classification, observations: readonly Observation[]): Alert {
  const events = observations.slice(0, SHOWN).map(alertEvent);
  const more = observations.length - events.length;
  const lines = events.map(
    (event) =>
      `${event.eventTime ?? "?"} ${event.eventName ?? "?"} ${event.account ?? ""}/${event.region ?? ""}: ${event.reasons.join("; ")}`,
  );
  const title = `${observations.length} EC2 Instance Connect event${observations.length === 1 ? "" : "s"} ${TITLES[classification]}`;
  return {
    classification,
    count: observations.length,
    events,
    more,
    text: [title, ...lines, ...(more > 0 ? [`…and ${more} more`] : [])].join("\n"),
  };
}

export interface DispatchResult {
  /** Messages sent. */
  sent: number;
  /** Events covered by them. */
  events: number;
  /** Pending events held back: in their grace period, or their classification's slot already used. */
  deferred: number;
}

/**
 * Sends pending alerts (run by the sweeper): rate-limited to one message per classification per
 * `settings.alerts.every`, each grouping every pending event of that classification; unbrokered events
 * wait `settings.alerts.grace` first, in case their push or grant record arrives late. A slot is claimed
 * with a conditional write, so concurrent sweepers never send the same message twice.
 */
export async function dispatchAlerts(deps: AlertDeps, limit = 1_000): Promise<DispatchResult> {
  const settings = deps.config.settings.alerts;
  const at = now(deps);
  const result: DispatchResult = { sent: 0, events: 0, deferred: 0 };
  const pending = await deps.trail.pendingAlerts(limit);
  const groups = new Map<Classification, Observation[]>();
  for (const observation of pending) {
    const classification = observation.verdict.classification;
    if (!(settings.on as readonly string[]).includes(classification)) {
      await deps.trail.replace(
        { ...observation, alert: "none", version: observation.version + 1 },
        observation.version,
        [],
      );
      continue;
    }
    if (
      classification === "unbrokered" &&
      Date.parse(observation.observedAt) + settings.grace * 1000 > at.getTime()
    ) {
      result.deferred++;
      continue;
    }
    groups.set(classification, [...(groups.get(classification) ?? []), observation]);
  }
  for (const [classification, observations] of groups) {
    const slot = Math.floor(at.getTime() / (settings.every * 1000));
    if (!(await deps.trail.claim(`alert#${classification}#${slot}`, settings.every * 2 + 3_600))) {
      result.deferred += observations.length;
      continue;
    }
    const alert = alertOf(classification, observations);
    try {
      await deps.alerts.send(alert);
    } catch (error) {
      log.error("trail alert could not be sent; retried in the next slot", { classification, error });
      result.deferred += observations.length;
      continue;
    }
    result.sent++;
    result.events += observations.length;
    await deps.trail.appendAudit([
      {
        type: "trail.alert_sent",
        at: at.toISOString(),
        actor: "system",
        subject: `alerts:${classification}`,
        data: {
          classification,
          count: observations.length,
          eventIds: observations.slice(0, 100).map((observation) => observation.eventId),
        },
      },
    ]);
    for (const observation of observations) {
      const sent: Observation = {
        ...observation,
        alert: "sent",
        alertedAt: at.toISOString(),
        version: observation.version + 1,
      };
      await deps.trail.replace(sent, observation.version, []);
    }
  }
  return result;
}
