import { useRef, useState } from "preact/hooks";
import { ApiError, api, type RequestInfo } from "../api.ts";
import { useApp } from "../app-context.ts";
import { accessText, ErrorNote, formatDuration, Status, Time, usePoll } from "../components/ui.tsx";

/** How often the inbox asks for changes: a colleague's decision shows within this (API Gateway has no push). */
export const INBOX_POLL_MS = 2000;

function outcome(item: RequestInfo): string {
  if (item.status === "denied") return `denied by ${item.decision?.by ?? "?"}`;
  if (item.status === "cancelled") return "cancelled by the requester";
  if (item.status === "timed-out") return "timed out";
  const by = [...new Set(item.approvals.map((approval) => approval.by))].join(", ");
  return `${item.status}${by ? `, approved by ${by}` : ""}`;
}

function History({ requester, current }: { requester: string; current: string }) {
  const [items, setItems] = useState<RequestInfo[]>();
  usePoll(
    async () => {
      setItems((await api.requests({ requester, limit: 6 })).items);
    },
    60_000,
    [requester],
  );
  const earlier = items?.filter((item) => item.id !== current).slice(0, 5);
  return (
    <div class="history">
      <h4>Recent requests by {requester}</h4>
      {earlier === undefined ? (
        <p aria-busy="true">Loading…</p>
      ) : earlier.length === 0 ? (
        <p class="hint">None before this one.</p>
      ) : (
        <ul class="history-list">
          {earlier.map((item) => (
            <li key={item.id}>
              <Time at={item.createdAt} /> {accessText(item)} on {item.instanceId} for{" "}
              {formatDuration(item.durationSeconds)} — <a href={`/requests/${item.id}`}>{outcome(item)}</a>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function PendingCard({ item, onDecided }: { item: RequestInfo; onDecided: (item: RequestInfo) => void }) {
  const { policy } = useApp();
  const rule = policy.rules.find((candidate) => candidate.id === item.ruleId);
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const titleId = `title-${item.id}`;
  const decide = async (verb: "approve" | "deny") => {
    setBusy(true);
    setError(undefined);
    try {
      onDecided(await api.decide(item.id, verb, comment.trim() || undefined));
    } catch (caught) {
      // Someone else got there first: the next poll shows the outcome.
      setError(caught instanceof ApiError && caught.status === 409 ? new Error(caught.message) : caught);
      setBusy(false);
    }
  };
  const approvers = item.approvals.map((approval) => approval.by);
  return (
    <article class="card" aria-labelledby={titleId} data-request-id={item.id}>
      <h3 id={titleId}>
        {item.requester} asks for {accessText(item)} on <code>{item.instanceId}</code>
        {item.breakGlass ? <span class="badge danger">break-glass</span> : null}
      </h3>
      <dl class="facts">
        <dt>Why</dt>
        <dd class="reason">{item.reason || "—"}</dd>
        <dt>Ticket</dt>
        <dd>{item.ticket ?? "—"}</dd>
        <dt>For</dt>
        <dd>
          {formatDuration(item.durationSeconds)}
          {item.startAt ? (
            <>
              {" "}
              from <Time at={item.startAt} />
            </>
          ) : null}
        </dd>
        <dt>Target</dt>
        <dd>
          {item.target} · {item.account} · {item.region}
        </dd>
        <dt>Rule</dt>
        <dd>
          <code>{item.ruleId}</code>
          {rule?.description ? ` — ${rule.description}` : ""}{" "}
          {rule ? <span class={`badge risk-${rule.risk}`}>{rule.risk} risk</span> : null}
        </dd>
        <dt>Approvals</dt>
        <dd data-testid="quorum">
          {item.approvals.length} of {item.approvalsRequired}
          {approvers.length ? `: ${approvers.join(", ")}` : ""}
        </dd>
        <dt>Asked</dt>
        <dd>
          <Time at={item.createdAt} />, times out <Time at={item.pendingUntil} />
        </dd>
      </dl>
      <History requester={item.requester} current={item.id} />
      <div class="decide">
        <label for={`comment-${item.id}`}>Comment (optional)</label>
        <textarea
          id={`comment-${item.id}`}
          rows={2}
          maxLength={1000}
          value={comment}
          onInput={(event) => setComment((event.target as HTMLTextAreaElement).value)}
        />
        <div class="actions">
          <button type="button" disabled={busy} onClick={() => decide("approve")}>
            Approve
          </button>
          <button type="button" class="danger" disabled={busy} onClick={() => decide("deny")}>
            Deny
          </button>
        </div>
        <ErrorNote error={error} />
      </div>
    </article>
  );
}

export function Inbox() {
  const { approver, profile } = useApp();
  const [pending, setPending] = useState<RequestInfo[]>();
  const [decided, setDecided] = useState<Array<{ item: RequestInfo; byMe: boolean }>>([]);
  const [error, setError] = useState<unknown>();
  const mine = useRef(new Set<string>());
  const shown = useRef(new Map<string, RequestInfo>());

  const note = (item: RequestInfo, byMe: boolean) =>
    setDecided((list) => [{ item, byMe }, ...list.filter((entry) => entry.item.id !== item.id)].slice(0, 10));

  usePoll(
    async () => {
      if (!approver) return;
      try {
        const page = await api.requests({ pendingForMe: true, limit: 50 });
        setError(undefined);
        const now = new Map(page.items.map((item) => [item.id, item]));
        // Requests that left the inbox without this person deciding: a colleague decided, or it ended.
        for (const [id] of shown.current)
          if (!now.has(id) && !mine.current.has(id))
            api
              .request(id)
              .then((item) => note(item, false))
              .catch(() => {});
        shown.current = now;
        setPending(page.items);
      } catch (caught) {
        setError(caught);
      }
    },
    INBOX_POLL_MS,
    [approver],
  );

  if (!approver)
    return (
      <>
        <h1>Inbox</h1>
        <p data-testid="not-approver">
          {profile.email} approves no requests: no rule of the policy names you as an approver.
        </p>
      </>
    );

  const onDecided = (item: RequestInfo) => {
    mine.current.add(item.id);
    if (item.status !== "pending") {
      shown.current.delete(item.id);
      setPending((list) => list?.filter((entry) => entry.id !== item.id));
    } else setPending((list) => list?.map((entry) => (entry.id === item.id ? item : entry)));
    note(item, true);
  };

  return (
    <>
      <h1>Inbox</h1>
      <p class="hint">Requests waiting for your decision. This page updates by itself.</p>
      <ErrorNote error={error} />
      <div aria-live="polite" class="decided" data-testid="decided">
        {decided.map(({ item, byMe }) => (
          <p key={`${item.id}-${item.version}`} class={byMe ? "notice" : "notice other"}>
            {byMe ? "You decided" : "Decided elsewhere"}: {item.requester}'s {accessText(item)} on{" "}
            {item.instanceId} is now <Status status={item.status} />
            {!byMe ? ` (${outcome(item)})` : ""}. <a href={`/requests/${item.id}`}>Details</a>
          </p>
        ))}
      </div>
      <section aria-labelledby="pending-heading">
        <h2 id="pending-heading">
          Waiting for you {pending ? <span class="count">({pending.length})</span> : null}
        </h2>
        {pending === undefined ? (
          <p aria-busy="true">Loading…</p>
        ) : pending.length === 0 ? (
          <p data-testid="inbox-empty">Nothing waits for your decision.</p>
        ) : (
          pending.map((item) => <PendingCard key={item.id} item={item} onDecided={onDecided} />)
        )}
      </section>
    </>
  );
}
