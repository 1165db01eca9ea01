import { useEffect, useRef, useState } from "preact/hooks";
import {
  type AnchoredVerification,
  ApiError,
  type AuditRecord,
  api,
  type Classification,
  type Observation,
} from "../api.ts";
import { DataTable, ErrorNote, Time } from "../components/ui.tsx";

// Every classification the API knows, checked at compile time (the schema's values are not imported, to keep
// zod out of the bundle): a new one in core/trail/schema.ts fails the typecheck here until it is listed.
const CLASSIFICATIONS = Object.keys({
  brokered: true,
  "outside-window": true,
  "constraint-mismatch": true,
  "denied-attempt": true,
  unbrokered: true,
  unparsed: true,
} satisfies Record<Classification, true>) as Classification[];

/**
 * Pages read per "load" until WANTED rows are found: a filtered page (trail or audit log) may come back short
 * when the API spent its read budget.
 */
const MAX_SCAN_PAGES = 10;
const WANTED = 50;

interface Filters {
  classification: string;
  user: string;
  instance: string;
  from: string;
  to: string;
}

function ChainStatus() {
  const [result, setResult] = useState<AnchoredVerification>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    api.verify().then(setResult, setError);
  }, []);
  if (error) return <ErrorNote error={error} />;
  if (!result)
    return (
      <p class="banner" data-testid="chain-status" aria-busy="true">
        Verifying the audit chain…
      </p>
    );
  const anchor = result.anchor;
  return (
    <p
      class={`banner ${result.ok && anchor?.ok !== false ? "ok" : "bad"}`}
      data-testid="chain-status"
      role="status"
    >
      {result.ok
        ? `Audit chain intact: ${result.records} records, head #${result.head.seq}.`
        : `Audit chain BROKEN at record #${result.brokenAt.seq}: ${result.brokenAt.reason}.`}{" "}
      {anchor
        ? anchor.ok
          ? `Matches its anchor #${anchor.seq} (${anchor.location}).`
          : `Does NOT match its anchor #${anchor.seq} (${anchor.location}).`
        : "No external anchor configured."}
    </p>
  );
}

/** A refused filter says which one and why (the API lists them), not just "Invalid input". */
function FilterError({ error }: { error: unknown }) {
  const fields = error instanceof ApiError ? Object.entries(error.fieldErrors()) : [];
  if (!(error instanceof ApiError) || fields.length === 0) return <ErrorNote error={error} />;
  const why = fields.map(([field, message]) => `${field}: ${message}`).join("; ");
  return <ErrorNote error={new Error(`${error.message}: ${why}`)} />;
}

function principalOf(observation: Observation): string {
  const identity = "identity" in observation.event ? observation.event.identity : undefined;
  return identity?.sourceIdentity ?? identity?.arn ?? identity?.principalArn ?? identity?.type ?? "—";
}

function targetOf(observation: Observation): string {
  const event = observation.event;
  if (event.kind === "key-push") return `${event.instanceId}${event.osUser ? ` as ${event.osUser}` : ""}`;
  if (event.kind === "serial-push") return `${event.instanceId} (serial console)`;
  if (event.kind === "tunnel")
    return `${event.endpointId} → ${event.privateIp ?? "?"}:${event.remotePort ?? "?"}`;
  return "—";
}

function RequestLinks({ requestId, grantId }: { requestId?: string; grantId?: string }) {
  if (!requestId) return <span>—</span>;
  return (
    <>
      <a href={`/requests/${requestId}`}>{requestId}</a>
      {grantId ? (
        <>
          {" "}
          · <a href={`/requests/${requestId}#grant`}>{grantId}</a>
        </>
      ) : null}
    </>
  );
}

/** Loads pages from `fetchPage` until `WANTED` rows came, the pages run out, or `MAX_SCAN_PAGES` were read. */
function useScan<T>(fetchPage: (cursor?: string) => Promise<{ items: T[]; nextCursor?: string }>) {
  const [rows, setRows] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string>();
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const [scanned, setScanned] = useState(0);
  const [error, setError] = useState<unknown>();
  const generation = useRef(0);
  const load = async (reset: boolean) => {
    const mine = reset ? ++generation.current : generation.current;
    setBusy(true);
    setError(undefined);
    let next = reset ? undefined : cursor;
    const found: T[] = [];
    let read = 0;
    try {
      for (let page = 0; page < MAX_SCAN_PAGES; page++) {
        const result = await fetchPage(next);
        read += result.items.length;
        found.push(...result.items);
        next = result.nextCursor;
        if (!next || found.length >= WANTED) break;
      }
      if (mine !== generation.current) return;
      setRows((current) => (reset ? found : [...current, ...found]));
      setScanned((count) => (reset ? read : count + read));
      setCursor(next);
      setDone(!next);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return { rows, load, done, busy, scanned, error };
}

const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);

/** Person, instance and time as both tabs send them: the API filters (exact values; a 400 says why not). */
function serverFilters(filters: Filters) {
  return {
    user: filters.user.trim() || undefined,
    instance: filters.instance.trim() || undefined,
    from: iso(filters.from),
    to: iso(filters.to),
  };
}

function TrailTab({ filters }: { filters: Filters }) {
  const scan = useScan<Observation>((cursor) =>
    api.trail({
      classification: (filters.classification || undefined) as Classification | undefined,
      ...serverFilters(filters),
      limit: 100,
      cursor,
    }),
  );
  useEffect(() => {
    void scan.load(true);
  }, [filters]);
  return (
    <>
      <FilterError error={scan.error} />
      <DataTable
        caption="CloudTrail events of EC2 Instance Connect"
        columns={["Time", "Event", "Classification", "Principal", "Target", "Request · grant", "Why"]}
      >
        {scan.rows.map((row) => (
          <tr key={row.eventId} data-event-id={row.eventId}>
            <td>
              <Time at={row.event.eventTime} />
            </td>
            <td>{row.event.eventName ?? "—"}</td>
            <td>
              <span
                class={`status status-${row.verdict.classification === "brokered" ? "active" : "denied"}`}
              >
                {row.verdict.classification}
              </span>
            </td>
            <td>{principalOf(row)}</td>
            <td>
              <code>{targetOf(row)}</code>
            </td>
            <td>
              <RequestLinks requestId={row.verdict.requestId} grantId={row.verdict.grantId} />
            </td>
            <td>{row.verdict.reasons.join("; ") || "—"}</td>
          </tr>
        ))}
      </DataTable>
      <Footer scan={scan} onMore={() => scan.load(false)} />
    </>
  );
}

function Footer({
  scan,
  onMore,
}: {
  scan: { rows: unknown[]; done: boolean; busy: boolean; scanned: number };
  onMore: () => void;
}) {
  return (
    <p class="actions" aria-live="polite">
      <span>
        {scan.busy
          ? "Loading…"
          : `${scan.rows.length} shown of ${scan.scanned} read${scan.done ? " (all)" : ""}.`}
      </span>
      {!scan.done ? (
        <button type="button" class="secondary" disabled={scan.busy} onClick={onMore}>
          Load more
        </button>
      ) : null}
    </p>
  );
}

function AuditTab({ filters }: { filters: Filters }) {
  const scan = useScan<AuditRecord>((cursor) =>
    api.auditEvents({
      ...serverFilters(filters),
      limit: 200,
      cursor,
    }),
  );
  useEffect(() => {
    void scan.load(true);
  }, [filters]);
  return (
    <>
      <FilterError error={scan.error} />
      <DataTable caption="Audit records" columns={["#", "Time", "Type", "Actor", "Request", "Details"]}>
        {scan.rows.map((row) => (
          <tr key={row.seq}>
            <td>{row.seq}</td>
            <td>
              <Time at={row.at} />
            </td>
            <td>{row.type}</td>
            <td>{row.actor}</td>
            <td>
              {row.subject.startsWith("req_") ? (
                <a href={`/requests/${row.subject}`}>{row.subject}</a>
              ) : (
                row.subject
              )}
            </td>
            <td>
              <code>{summary(row)}</code>
            </td>
          </tr>
        ))}
      </DataTable>
      <Footer scan={scan} onMore={() => scan.load(false)} />
    </>
  );
}

function summary(record: AuditRecord): string {
  const data = record.data;
  const parts = ["instanceId", "method", "osUser", "classification", "comment", "reason", "fingerprint"]
    .filter((key) => data[key] !== undefined && data[key] !== "")
    .map((key) => `${key}=${String(data[key])}`);
  return parts.join(" ").slice(0, 160) || "—";
}

const TABS = [
  { id: "trail", label: "CloudTrail events" },
  { id: "log", label: "Audit log" },
] as const;

export function Audit() {
  const [tab, setTab] = useState<(typeof TABS)[number]["id"]>("trail");
  const [draft, setDraft] = useState<Filters>({
    classification: "",
    user: "",
    instance: "",
    from: "",
    to: "",
  });
  const [filters, setFilters] = useState<Filters>(draft);
  const set = (key: keyof Filters) => (event: Event) =>
    setDraft((current) => ({ ...current, [key]: (event.target as HTMLInputElement).value }));
  const onKey = (event: KeyboardEvent) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const index = TABS.findIndex((entry) => entry.id === tab);
    const next = TABS[(index + (event.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
    if (!next) return;
    setTab(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  };
  return (
    <>
      <h1>Audit</h1>
      <ChainStatus />
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
          setFilters({ ...draft });
        }}
      >
        {tab === "trail" ? (
          <div class="field">
            <label for="f-classification">Classification</label>
            <select id="f-classification" value={draft.classification} onChange={set("classification")}>
              <option value="">any</option>
              {CLASSIFICATIONS.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div class="field">
          <label for="f-user">User</label>
          <input
            id="f-user"
            type="text"
            value={draft.user}
            placeholder={tab === "trail" ? "alice@example.com or arn:aws:iam::…" : "alice@example.com"}
            onInput={set("user")}
          />
        </div>
        <div class="field">
          <label for="f-instance">Instance</label>
          <input
            id="f-instance"
            type="text"
            value={draft.instance}
            placeholder="i-…"
            onInput={set("instance")}
          />
        </div>
        <div class="field">
          <label for="f-from">From</label>
          <input id="f-from" type="datetime-local" value={draft.from} onInput={set("from")} />
        </div>
        <div class="field">
          <label for="f-to">To</label>
          <input id="f-to" type="datetime-local" value={draft.to} onInput={set("to")} />
        </div>
        <button type="submit">Apply</button>
      </form>
      <div role="tablist" aria-label="What to explore" class="actions">
        {TABS.map((entry) => (
          <button
            key={entry.id}
            id={`tab-${entry.id}`}
            type="button"
            role="tab"
            class={tab === entry.id ? "" : "secondary"}
            aria-selected={tab === entry.id}
            aria-controls={`panel-${entry.id}`}
            tabIndex={tab === entry.id ? 0 : -1}
            onClick={() => setTab(entry.id)}
            onKeyDown={onKey}
          >
            {entry.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === "trail" ? <TrailTab filters={filters} /> : <AuditTab filters={filters} />}
      </div>
    </>
  );
}
