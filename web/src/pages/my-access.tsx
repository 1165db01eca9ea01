import { useState } from "preact/hooks";
import { connectCommand } from "../../../core/request/connect.ts";
import { parseDuration } from "../../../core/util/duration-text.ts";
import { ApiError, api, type RequestInfo } from "../api.ts";
import { useApp } from "../app-context.ts";
import {
  accessText,
  CopyCommand,
  DataTable,
  ErrorNote,
  formatDuration,
  Section,
  Status,
  Time,
  timeLeft,
  useNow,
  usePoll,
} from "../components/ui.tsx";

function Extend({ item, onDone }: { item: RequestInfo; onDone: () => void }) {
  const [open, setOpen] = useState(false);
  const [duration, setDuration] = useState("30m");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>();
  const id = `extend-${item.id}`;
  if (item.pendingExtension)
    return (
      <p class="hint">
        Extension by {formatDuration(item.pendingExtension.durationSeconds)} waits for approval.
      </p>
    );
  if (!open)
    return (
      <button type="button" class="secondary" onClick={() => setOpen(true)}>
        Extend
      </button>
    );
  const submit = async (event: Event) => {
    event.preventDefault();
    const seconds = parseDuration(duration);
    if (!seconds) return setError(new Error("Give a duration like 30m or 1h"));
    if (!reason.trim()) return setError(new Error("Say why you need longer"));
    try {
      await api.extend(item.grantId, seconds, reason.trim());
      setOpen(false);
      onDone();
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <form class="inline-form" onSubmit={submit} aria-label={`Extend ${item.grantId}`}>
      <label for={`${id}-duration`}>Extend by</label>
      <input
        id={`${id}-duration`}
        value={duration}
        onInput={(e) => setDuration((e.target as HTMLInputElement).value)}
      />
      <label for={`${id}-reason`}>Why</label>
      <input
        id={`${id}-reason`}
        value={reason}
        onInput={(e) => setReason((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Ask to extend</button>
      <button type="button" class="link" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

function ActiveCard({ item, now, reload }: { item: RequestInfo; now: number; reload: () => void }) {
  const [error, setError] = useState<unknown>();
  const [confirming, setConfirming] = useState(false);
  const end = async () => {
    try {
      await api.revoke(item.grantId, "ended early by the requester");
      reload();
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <article class="card" aria-labelledby={`t-${item.id}`} data-grant-id={item.grantId}>
      <h3 id={`t-${item.id}`}>
        {accessText(item)} on <code>{item.instanceId}</code> <Status status={item.status} />
      </h3>
      {item.status === "active" ? (
        <>
          <p>
            <strong data-testid="time-left">{timeLeft(item.endsAt, now)}</strong> left (until{" "}
            <Time at={item.endsAt} />)
          </p>
          <CopyCommand command={connectCommand(item)} />
        </>
      ) : (
        <p>
          Approved; starts <Time at={item.startsAt ?? item.startAt} />.
        </p>
      )}
      <div class="actions">
        {item.status === "active" ? <Extend item={item} onDone={reload} /> : null}
        {confirming ? (
          <>
            <span role="alert">End access now? You would have to ask again.</span>
            <button type="button" class="danger" onClick={end}>
              Yes, end now
            </button>
            <button type="button" class="link" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </>
        ) : (
          <button type="button" class="danger" onClick={() => setConfirming(true)}>
            End now
          </button>
        )}
      </div>
      <ErrorNote error={error} />
      <p>
        <a href={`/requests/${item.id}`}>Details</a>
      </p>
    </article>
  );
}

function PendingRow({ item, reload }: { item: RequestInfo; reload: () => void }) {
  const [error, setError] = useState<unknown>();
  const cancel = async () => {
    try {
      await api.decide(item.id, "cancel");
      reload();
    } catch (caught) {
      setError(caught instanceof ApiError ? caught : new Error(String(caught)));
    }
  };
  return (
    <li class="card" data-request-id={item.id}>
      <p>
        {accessText(item)} on <code>{item.instanceId}</code> for {formatDuration(item.durationSeconds)} —{" "}
        {item.approvals.length} of {item.approvalsRequired} approvals from {item.approvalsFrom.join(", ")} ·
        times out <Time at={item.pendingUntil} />
      </p>
      <div class="actions">
        <a href={`/requests/${item.id}`}>Details</a>
        <button type="button" class="secondary" onClick={cancel}>
          Cancel request
        </button>
      </div>
      <ErrorNote error={error} />
    </li>
  );
}

export function MyAccess() {
  const { requester } = useApp();
  const [items, setItems] = useState<RequestInfo[]>();
  const [error, setError] = useState<unknown>();
  const now = useNow(1000);
  const load = async () => {
    try {
      setItems((await api.requests({ mine: true, limit: 100 })).items);
      setError(undefined);
    } catch (caught) {
      setError(caught);
    }
  };
  usePoll(load, 3000);
  const reload = () => void load();
  const pending = items?.filter((item) => item.status === "pending") ?? [];
  const live = items?.filter((item) => item.status === "active" || item.status === "approved") ?? [];
  const past = items?.filter((item) => !["pending", "active", "approved"].includes(item.status)) ?? [];
  return (
    <>
      <h1>My access</h1>
      <ErrorNote error={error} />
      {items === undefined ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <>
          <Section title="Active" count={live.length}>
            {live.length === 0 ? (
              <p>
                No access right now.
                {requester ? (
                  <>
                    {" "}
                    <a href="/request">Request access</a>.
                  </>
                ) : null}
              </p>
            ) : (
              live.map((item) => <ActiveCard key={item.id} item={item} now={now} reload={reload} />)
            )}
          </Section>
          <Section title="Pending" count={pending.length}>
            {pending.length === 0 ? (
              <p>Nothing waits for approval.</p>
            ) : (
              <ul class="plain">
                {pending.map((item) => (
                  <PendingRow key={item.id} item={item} reload={reload} />
                ))}
              </ul>
            )}
          </Section>
          <Section title="Past" count={past.length}>
            {past.length === 0 ? (
              <p>Nothing yet.</p>
            ) : (
              <DataTable
                caption="Past requests and grants"
                columns={["Asked", "Access", "Instance", "Status", "Ended"]}
              >
                {past.map((item) => (
                  <tr key={item.id} data-request-id={item.id}>
                    <td>
                      <a href={`/requests/${item.id}`}>
                        <Time at={item.createdAt} />
                      </a>
                    </td>
                    <td>
                      {accessText(item)} for {formatDuration(item.durationSeconds)}
                    </td>
                    <td>
                      <code>{item.instanceId}</code>
                    </td>
                    <td>
                      <Status status={item.status} />
                    </td>
                    <td>
                      <Time at={item.endedAt ?? item.decision?.at} />
                    </td>
                  </tr>
                ))}
              </DataTable>
            )}
          </Section>
        </>
      )}
    </>
  );
}
