import { useState } from "preact/hooks";
import { connectCommand } from "../../../core/request/connect.ts";
import { type AuditRecord, api, type RequestInfo } from "../api.ts";
import { useApp } from "../app-context.ts";
import {
  accessText,
  CopyCommand,
  ErrorNote,
  formatDuration,
  Status,
  Time,
  usePoll,
} from "../components/ui.tsx";

function describe(record: AuditRecord): string {
  const data = record.data as Record<string, unknown>;
  const comment = typeof data.comment === "string" && data.comment ? ` — “${data.comment}”` : "";
  const reason =
    typeof data.reason === "string" && data.reason && record.type !== "request.created"
      ? ` — ${data.reason}`
      : "";
  const classification = typeof data.classification === "string" ? ` (${data.classification})` : "";
  return `${record.type}${classification}${comment}${reason}`;
}

/** One request and its grant: the facts, the command to connect, and its audit history in chain order. */
export function RequestDetail({ id }: { id: string }) {
  const { profile } = useApp();
  const [item, setItem] = useState<RequestInfo>();
  const [history, setHistory] = useState<AuditRecord[]>();
  const [error, setError] = useState<unknown>();
  usePoll(
    async () => {
      try {
        const [request, events] = await Promise.all([
          api.request(id),
          api.auditEvents({ requestId: id, order: "asc", limit: 200 }),
        ]);
        setItem(request);
        setHistory(events.items);
        setError(undefined);
      } catch (caught) {
        setError(caught);
      }
    },
    5000,
    [id],
  );
  if (error && !item) return <ErrorNote error={error} />;
  if (!item) return <p aria-busy="true">Loading…</p>;
  return (
    <>
      <h1>
        Request <code>{item.id}</code> <Status status={item.status} />
      </h1>
      <dl class="facts">
        <dt>Requester</dt>
        <dd>{item.requester}</dd>
        <dt>Access</dt>
        <dd>
          {accessText(item)} on <code>{item.instanceId}</code> ({item.target} · {item.account} · {item.region}
          ) for {formatDuration(item.durationSeconds + item.extendedSeconds)}
        </dd>
        <dt>Why</dt>
        <dd>{item.reason || "—"}</dd>
        <dt>Ticket</dt>
        <dd>{item.ticket ?? "—"}</dd>
        <dt>Rule</dt>
        <dd>
          <code>{item.ruleId}</code>
        </dd>
        <dt id="grant">Grant</dt>
        <dd>
          <code>{item.grantId}</code>
          {item.startsAt ? (
            <>
              {" "}
              from <Time at={item.startsAt} /> until <Time at={item.endedAt ?? item.endsAt} />
            </>
          ) : null}
        </dd>
        <dt>Approvals</dt>
        <dd>
          {item.approvals.length} of {item.approvalsRequired}
          {item.approvals.length ? `: ${item.approvals.map((approval) => approval.by).join(", ")}` : ""}
          {item.decision ? ` · decided by ${item.decision.by}` : ""}
        </dd>
        {item.breakGlass ? (
          <>
            <dt>Break-glass</dt>
            <dd>
              review {item.review?.status ?? "pending"}
              {item.review?.by ? ` by ${item.review.by}` : ""}
            </dd>
          </>
        ) : null}
      </dl>
      {item.status === "active" && item.requester === profile.email ? (
        <CopyCommand command={connectCommand(item)} />
      ) : null}
      <section aria-labelledby="history-heading">
        <h2 id="history-heading">History</h2>
        <ErrorNote error={error} />
        {history === undefined ? (
          <p aria-busy="true">Loading…</p>
        ) : (
          <ol class="timeline">
            {history.map((record) => (
              <li key={record.seq}>
                <Time at={record.at} /> · <strong>{record.actor}</strong> · {describe(record)}{" "}
                <span class="hint">#{record.seq}</span>
              </li>
            ))}
          </ol>
        )}
      </section>
    </>
  );
}
