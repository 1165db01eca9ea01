import { useState } from "preact/hooks";
import { type AccessReport, api } from "../api.ts";
import { BarChart } from "../components/charts.tsx";
import { DataTable, ErrorNote, formatDuration, Status, Time } from "../components/ui.tsx";
import {
  CLASSIFICATION_SERIES,
  dayOf,
  grantsPerDay,
  latencyDistribution,
  METHOD_SERIES,
  nonBrokeredPerDay,
  USAGE_SERIES,
  usedVsGranted,
} from "../report-data.ts";

/** The period as the API takes it: local midnight of `from` to local midnight after `to`. */
export function periodOf(from: string, to: string): { from: string; to: string } {
  const start = new Date(`${from}T00:00:00`);
  const end = new Date(`${to}T00:00:00`);
  end.setDate(end.getDate() + 1);
  return { from: start.toISOString(), to: end.toISOString() };
}

function save(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob);
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = name;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const minutes = (seconds?: number) => (seconds === undefined ? "—" : formatDuration(seconds));

function Summary({ report }: { report: AccessReport }) {
  const latency = report.summary.approvalLatencySeconds;
  const stats: Array<[string, string | number]> = [
    ["Grants", report.summary.grants],
    ["Used", report.summary.used],
    ["Unused", report.summary.unused],
    ["Break-glass", report.summary.breakGlass],
    ["Awaiting review", report.summary.breakGlassAwaitingReview],
    ["Non-brokered events", report.nonBrokeredEvents.length],
    ["Approval latency (median)", minutes(latency.median)],
    ["Approval latency (p95)", minutes(latency.p95)],
  ];
  return (
    <div class="cards">
      {stats.map(([label, value]) => (
        <div class="stat" key={label}>
          <strong>{value}</strong>
          {label}
        </div>
      ))}
    </div>
  );
}

export function Reports() {
  const today = dayOf(new Date().toISOString());
  const weekAgo = new Date();
  weekAgo.setDate(weekAgo.getDate() - 6);
  const [from, setFrom] = useState(dayOf(weekAgo.toISOString()));
  const [to, setTo] = useState(today);
  const [report, setReport] = useState<AccessReport>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const show = async (event?: Event) => {
    event?.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const period = periodOf(from, to);
      setReport(await api.report(period.from, period.to));
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const preset = (daysBack: number) => {
    const start = new Date();
    start.setDate(start.getDate() - (daysBack - 1));
    setFrom(dayOf(start.toISOString()));
    setTo(today);
  };
  const name = `access-report-${from}-to-${to}`;
  const download = async (format: "csv" | "html", section?: string) => {
    try {
      const period = periodOf(from, to);
      save(
        await api.reportFile(period.from, period.to, format, section),
        `${name}${section ? `-${section}` : ""}.${format}`,
      );
    } catch (caught) {
      setError(caught);
    }
  };

  return (
    <>
      <h1>Reports</h1>
      <form class="filters no-print" onSubmit={show} aria-label="Report period">
        <div class="field">
          <label for="report-from">From</label>
          <input
            id="report-from"
            type="date"
            value={from}
            max={to}
            required
            onInput={(e) => setFrom((e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="field">
          <label for="report-to">To</label>
          <input
            id="report-to"
            type="date"
            value={to}
            min={from}
            required
            onInput={(e) => setTo((e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="actions">
          <button type="button" class="secondary" onClick={() => preset(7)}>
            Last 7 days
          </button>
          <button type="button" class="secondary" onClick={() => preset(30)}>
            Last 30 days
          </button>
          <button type="submit" disabled={busy}>
            Show report
          </button>
        </div>
      </form>
      <ErrorNote error={error} />
      {report ? (
        <>
          <p>
            Access report for <Time at={report.period.from} /> to <Time at={report.period.to} />, generated{" "}
            <Time at={report.generatedAt} /> for {report.generatedBy}. Audit chain:{" "}
            {report.chain.ok
              ? `intact (${report.chain.records} records)`
              : `BROKEN at #${report.chain.brokenAt?.seq}`}
            .
          </p>
          <div class="actions no-print">
            <button type="button" class="secondary" onClick={() => download("csv", "grants")}>
              Download grants CSV
            </button>
            <button type="button" class="secondary" onClick={() => download("csv", "events")}>
              Download events CSV
            </button>
            <button type="button" class="secondary" onClick={() => download("csv", "controls")}>
              Download controls CSV
            </button>
            <button
              type="button"
              class="secondary"
              onClick={() =>
                save(
                  new Blob([JSON.stringify(report, null, 2)], { type: "application/json" }),
                  `${name}.json`,
                )
              }
            >
              Download JSON
            </button>
            <button type="button" class="secondary" onClick={() => download("html")}>
              Download HTML
            </button>
            <button type="button" onClick={() => print()}>
              Print
            </button>
          </div>
          <Summary report={report} />
          <h2>Charts</h2>
          <div class="charts">
            <BarChart
              title="Grants per day by method"
              series={METHOD_SERIES}
              buckets={grantsPerDay(report)}
            />
            <BarChart
              title="Approval latency (grants per band)"
              series={[{ label: "grants", color: "#0b5cad" }]}
              buckets={latencyDistribution(report)}
            />
            <BarChart
              title="Non-brokered events per day"
              series={CLASSIFICATION_SERIES}
              buckets={nonBrokeredPerDay(report)}
            />
            <BarChart
              title="Time granted vs time open, per day (hours)"
              series={USAGE_SERIES}
              buckets={usedVsGranted(report)}
              mode="grouped"
            />
          </div>
          <h2>Controls</h2>
          <DataTable caption="Controls" columns={["Control", "Status", "Evidence"]}>
            {report.controls.map((row) => (
              <tr key={row.control}>
                <td>{row.control}</td>
                <td>
                  <span
                    class={`status status-${row.status === "pass" ? "active" : row.status === "fail" ? "denied" : "pending"}`}
                  >
                    {row.status}
                  </span>
                </td>
                <td>{row.evidence}</td>
              </tr>
            ))}
          </DataTable>
          <h2>Grants</h2>
          <DataTable
            caption="Grants in the period"
            columns={[
              "Grant",
              "Requester",
              "Approvers",
              "Access",
              "Reason / ticket",
              "Window",
              "Open",
              "Events",
              "Status",
            ]}
          >
            {report.grants.map((row) => (
              <tr key={row.grantId}>
                <td>
                  <a href={`/requests/${row.requestId}`}>{row.grantId}</a>
                </td>
                <td>{row.requester}</td>
                <td>{row.approvers.join(", ") || (row.breakGlass ? "break-glass" : "—")}</td>
                <td>
                  {row.method} {row.osUser ?? row.port ?? ""} on <code>{row.instanceId}</code>
                </td>
                <td>
                  {row.reason}
                  {row.ticket ? ` (${row.ticket})` : ""}
                </td>
                <td>
                  <Time at={row.startsAt} /> – <Time at={row.endedAt ?? row.endsAt} />
                </td>
                <td>
                  {minutes(row.usedWindowSeconds)} of {minutes(row.requestedSeconds + row.extendedSeconds)}
                </td>
                <td>
                  {Object.entries(row.events)
                    .map(([kind, count]) => `${kind} ${count}`)
                    .join(", ") || (row.unused ? "unused" : "—")}
                </td>
                <td>
                  <Status status={row.status} />
                </td>
              </tr>
            ))}
          </DataTable>
          <h2>Non-brokered events</h2>
          {report.nonBrokeredEvents.length === 0 ? (
            <p>None in this period{report.trail ? "" : " (no trail events are available to this broker)"}.</p>
          ) : (
            <DataTable
              caption="Non-brokered events"
              columns={["Time", "Event", "Classification", "Principal", "Target", "Why"]}
            >
              {report.nonBrokeredEvents.map((row) => (
                <tr key={row.eventId}>
                  <td>
                    <Time at={row.eventTime} />
                  </td>
                  <td>{row.eventName ?? "—"}</td>
                  <td>{row.classification}</td>
                  <td>{row.principal ?? "—"}</td>
                  <td>{row.target ?? "—"}</td>
                  <td>
                    {row.reasons.join("; ")}
                    {row.requestId ? (
                      <>
                        {" "}
                        <a href={`/requests/${row.requestId}`}>{row.grantId ?? row.requestId}</a>
                      </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
        </>
      ) : null}
    </>
  );
}
