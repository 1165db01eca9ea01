import { useMemo, useRef, useState } from "preact/hooks";
import type { View } from "../../../core/policy/view.ts";
import { connectCommand } from "../../../core/request/connect.ts";
import { ApiError, api, type CreateInput, type RequestInfo } from "../api.ts";
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
import {
  type Draft,
  type Errors,
  type Field,
  instanceOptions,
  rulesFor,
  tagTargetOptions,
  validateDraft,
  withDefaults,
} from "../validate.ts";

const METHOD_LABELS = {
  ssh: "SSH login",
  tunnel: "TCP tunnel (EICE)",
  rdp: "RDP (EICE tunnel to 3389)",
} as const;
const ORDER: Field[] = ["instanceId", "method", "osUser", "port", "duration", "reason", "ticket"];
/** Picker values that stand for "type an instance id of this tag target" (instance ids never start so). */
const TAGGED = "tags:";
const TYPED_ID = "typedInstanceId";
const tagText = (tags: Record<string, string>) =>
  Object.entries(tags)
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");

function FieldError({ id, error }: { id: string; error?: string }) {
  return error ? (
    <p class="field-error" id={`${id}-error`}>
      {error}
    </p>
  ) : null;
}

const described = (id: string, error?: string, hint?: boolean) =>
  [hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;

export interface RequestFormProps {
  view: View;
  /** Sends the request (the API, or a stand-in in component tests); rejects with ApiError on refusal. */
  submit: (input: CreateInput, idempotencyKey: string) => Promise<RequestInfo>;
  onCreated: (item: RequestInfo) => void;
}

/** The request form: instance, method, OS user or port, duration, reason, ticket; validated as typed. */
export function RequestForm({ view, submit, onCreated }: RequestFormProps) {
  const instances = useMemo(() => instanceOptions(view), [view]);
  const tagTargets = useMemo(() => tagTargetOptions(view), [view]);
  const first = instances[0]?.instanceId ?? "";
  const firstTarget = first ? "" : (tagTargets[0]?.target ?? "");
  const [draft, setDraft] = useState<Draft>(() =>
    withDefaults(view, {
      instanceId: first,
      target: firstTarget,
      method: rulesFor(view, first, false, firstTarget).flatMap((rule) => Object.keys(rule.methods))[0] ?? "",
      osUser: "",
      port: "",
      duration: "30m",
      reason: "",
      ticket: "",
      breakGlass: false,
    }),
  );
  const [touched, setTouched] = useState<Set<Field>>(new Set());
  const [submitted, setSubmitted] = useState(false);
  const [serverErrors, setServerErrors] = useState<Errors>({});
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const key = useRef(crypto.randomUUID());
  const focusField = (field: Field | undefined) =>
    field &&
    document
      .querySelector<HTMLElement>(
        `form.request-form [name="${field === "instanceId" && draft.target ? TYPED_ID : field}"]`,
      )
      ?.focus();

  const { errors: localErrors, rule } = validateDraft(view, draft);
  const errors: Errors = { ...localErrors, ...serverErrors };
  const shown = (field: Field) => (submitted || touched.has(field) ? errors[field] : undefined);

  const candidates = rulesFor(view, draft.instanceId, draft.breakGlass, draft.target);
  const methods = (["ssh", "tunnel", "rdp"] as const).filter((method) =>
    candidates.some((candidate) => candidate.methods[method]),
  );
  const mayBreakGlass = rulesFor(view, draft.instanceId, true, draft.target).length > 0;
  const tagTarget = tagTargets.find((option) => option.target === draft.target);

  const update = (patch: Partial<Draft>, field: Field) => {
    edited.current.add(field);
    setDraft((current) => withDefaults(view, { ...current, ...patch }));
    setServerErrors(({ [field]: _dropped, ...rest }) => rest);
    // A new instance or method is a new request: a retry of the old body must not replay it.
    if (field === "instanceId" || field === "method") key.current = crypto.randomUUID();
  };
  // A field shows its problem once it was changed and left (or on submit): merely passing through an empty
  // field says nothing yet, and no message appears under the pointer on its way to a button.
  const edited = useRef(new Set<Field>());
  const blur = (field: Field) => {
    if (edited.current.has(field)) setTouched((set) => new Set(set).add(field));
  };
  const value = (event: Event) => (event.target as HTMLInputElement).value;
  const choose = (choice: string) => {
    const target = choice.startsWith(TAGGED) ? choice.slice(TAGGED.length) : "";
    update(target ? { instanceId: "", target } : { instanceId: choice, target: "" }, "instanceId");
    if (target) {
      // The id field it reveals starts empty: it has nothing to complain about until something is typed.
      edited.current.delete("instanceId");
      setTouched((set) => {
        const next = new Set(set);
        next.delete("instanceId");
        return next;
      });
    }
  };

  const onSubmit = async (event: Event) => {
    event.preventDefault();
    setSubmitted(true);
    setError(undefined);
    const { errors: found, input } = validateDraft(view, draft);
    if (!input) {
      focusField(ORDER.find((field) => found[field]));
      return;
    }
    setBusy(true);
    try {
      onCreated(await submit(input, key.current));
      key.current = crypto.randomUUID();
    } catch (caught) {
      if (caught instanceof ApiError) {
        const fields = caught.fieldErrors();
        const mapped: Errors = {};
        for (const [path, message] of Object.entries(fields))
          mapped[(path === "durationSeconds" ? "duration" : path) as Field] = message;
        // Whether a typed instance carries the target's tags only EC2 knows: the API's refusal belongs there.
        const typedRefused =
          draft.target && caught.status >= 400 && caught.status < 500 && caught.status !== 401;
        if (typedRefused && !ORDER.some((field) => mapped[field])) mapped.instanceId = caught.message;
        setServerErrors(mapped);
        const firstBad = ORDER.find((field) => mapped[field]);
        if (firstBad) focusField(firstBad);
        else setError(caught);
      } else setError(caught);
    } finally {
      setBusy(false);
    }
  };

  if (instances.length === 0 && tagTargets.length === 0)
    return <p>No rule of the policy lets you ask for access to an instance.</p>;

  return (
    <form onSubmit={onSubmit} noValidate class="request-form" aria-label="Request access">
      <div class="field">
        <label for="instanceId">Instance</label>
        <select
          id="instanceId"
          name="instanceId"
          value={draft.target ? `${TAGGED}${draft.target}` : draft.instanceId}
          aria-invalid={!draft.target && shown("instanceId") ? "true" : undefined}
          aria-describedby={described("instanceId", draft.target ? undefined : shown("instanceId"))}
          onChange={(event) => choose(value(event))}
          onBlur={() => blur("instanceId")}
        >
          {instances.map((option) => (
            <option key={option.instanceId} value={option.instanceId}>
              {option.instanceId} — {option.target} ({option.account}, {option.region})
            </option>
          ))}
          {tagTargets.map((option) => (
            <option key={option.target} value={`${TAGGED}${option.target}`}>
              Other instance in {option.target}… (tagged {tagText(option.tags)})
            </option>
          ))}
        </select>
        {draft.target ? null : <FieldError id="instanceId" error={shown("instanceId")} />}
      </div>

      {tagTarget ? (
        <div class="field">
          <label for={TYPED_ID}>Instance id</label>
          <input
            id={TYPED_ID}
            name={TYPED_ID}
            type="text"
            autoComplete="off"
            spellcheck={false}
            placeholder="i-0123456789abcdef0"
            value={draft.instanceId}
            aria-invalid={shown("instanceId") ? "true" : undefined}
            aria-describedby={described(TYPED_ID, shown("instanceId"), true)}
            onInput={(event) => update({ instanceId: value(event) }, "instanceId")}
            onBlur={() => blur("instanceId")}
          />
          <p class="hint" id={`${TYPED_ID}-hint`}>
            An instance of target <code>{tagTarget.target}</code>: tagged {tagText(tagTarget.tags)}, in
            account {tagTarget.account}, {tagTarget.region}. The broker checks its tags with EC2 when you send
            the request.
          </p>
          <FieldError id={TYPED_ID} error={shown("instanceId")} />
        </div>
      ) : null}

      <fieldset class="field" aria-describedby={described("method", shown("method"))}>
        <legend>Method</legend>
        {methods.map((method) => (
          <label class="choice" key={method}>
            <input
              type="radio"
              name="method"
              value={method}
              checked={draft.method === method}
              onChange={() => update({ method }, "method")}
            />
            {METHOD_LABELS[method]}
          </label>
        ))}
        {methods.length === 0 ? <p class="hint">No method is open to you on this instance.</p> : null}
        <FieldError id="method" error={shown("method")} />
      </fieldset>

      {draft.method === "ssh" ? (
        <div class="field">
          <label for="osUser">OS user</label>
          <select
            id="osUser"
            name="osUser"
            value={draft.osUser}
            aria-invalid={shown("osUser") ? "true" : undefined}
            aria-describedby={described("osUser", shown("osUser"))}
            onChange={(event) => update({ osUser: value(event) }, "osUser")}
            onBlur={() => blur("osUser")}
          >
            {(rule?.methods.ssh?.osUsers ?? []).map((user) => (
              <option key={user} value={user}>
                {user}
              </option>
            ))}
          </select>
          <FieldError id="osUser" error={shown("osUser")} />
        </div>
      ) : null}

      {draft.method === "tunnel" ? (
        <div class="field">
          <label for="port">Remote port</label>
          <select
            id="port"
            name="port"
            value={draft.port}
            aria-invalid={shown("port") ? "true" : undefined}
            aria-describedby={described("port", shown("port"))}
            onChange={(event) => update({ port: value(event) }, "port")}
            onBlur={() => blur("port")}
          >
            {(rule?.methods.tunnel?.ports ?? []).map((port) => (
              <option key={port} value={String(port)}>
                {port}
              </option>
            ))}
          </select>
          <FieldError id="port" error={shown("port")} />
        </div>
      ) : null}

      <div class="field">
        <label for="duration">Duration</label>
        <input
          id="duration"
          name="duration"
          type="text"
          inputMode="text"
          autoComplete="off"
          value={draft.duration}
          aria-invalid={shown("duration") ? "true" : undefined}
          aria-describedby={described("duration", shown("duration"), true)}
          onInput={(event) => update({ duration: value(event) }, "duration")}
          onBlur={() => blur("duration")}
        />
        <p class="hint" id="duration-hint">
          Like 30m, 1h or 1h30m{rule ? `; at most ${formatDuration(rule.maxDurationSeconds)}` : ""}. The clock
          starts when access is approved.
        </p>
        <FieldError id="duration" error={shown("duration")} />
      </div>

      <div class="field">
        <label for="reason">Reason{rule?.reason.required ? "" : " (optional)"}</label>
        <textarea
          id="reason"
          name="reason"
          rows={3}
          maxLength={1000}
          value={draft.reason}
          aria-invalid={shown("reason") ? "true" : undefined}
          aria-describedby={described("reason", shown("reason"))}
          onInput={(event) => update({ reason: value(event) }, "reason")}
          onBlur={() => blur("reason")}
        />
        <FieldError id="reason" error={shown("reason")} />
      </div>

      <div class="field">
        <label for="ticket">Ticket{rule?.ticket.required ? "" : " (optional)"}</label>
        <input
          id="ticket"
          name="ticket"
          type="text"
          autoComplete="off"
          placeholder="INC-42"
          value={draft.ticket}
          aria-invalid={shown("ticket") ? "true" : undefined}
          aria-describedby={described("ticket", shown("ticket"))}
          onInput={(event) => update({ ticket: value(event) }, "ticket")}
          onBlur={() => blur("ticket")}
        />
        <FieldError id="ticket" error={shown("ticket")} />
      </div>

      {mayBreakGlass ? (
        <div class="field">
          <label class="choice">
            <input
              type="checkbox"
              name="breakGlass"
              checked={draft.breakGlass}
              onChange={(event) =>
                update({ breakGlass: (event.target as HTMLInputElement).checked }, "breakGlass")
              }
            />
            Break glass: active at once without approval; security is alerted and it is reviewed afterwards
          </label>
        </div>
      ) : null}

      {rule ? (
        <p class="hint" data-testid="rule-summary">
          Rule <code>{rule.id}</code>:{" "}
          {draft.breakGlass
            ? "break-glass, active at once"
            : rule.approvals.count === 0
              ? "approved automatically"
              : `${rule.approvals.count} approval${rule.approvals.count > 1 ? "s" : ""} from ${rule.approvals.from.join(", ")}`}
          .
        </p>
      ) : null}
      <ErrorNote error={error} />
      <button type="submit" disabled={busy}>
        {busy ? "Sending…" : "Request access"}
      </button>
    </form>
  );
}

/** What became of a request just made: waits for the decision, then shows the command to connect. */
export function RequestOutcome({ initial }: { initial: RequestInfo }) {
  const [item, setItem] = useState(initial);
  usePoll(
    async () => {
      if (item.status === "pending" || item.status === "approved") setItem(await api.request(item.id));
    },
    2000,
    [item.status],
  );
  return (
    <section class="card" aria-labelledby="outcome-heading" aria-live="polite">
      <h2 id="outcome-heading">
        {accessText(item)} on <code>{item.instanceId}</code>: <Status status={item.status} />
      </h2>
      {item.status === "pending" ? (
        <p>
          Waiting for {item.approvalsRequired - item.approvals.length} more approval
          {item.approvalsRequired - item.approvals.length === 1 ? "" : "s"} from{" "}
          {item.approvalsFrom.join(", ")} (asked until <Time at={item.pendingUntil} />
          ). This page updates when someone decides.
        </p>
      ) : null}
      {item.status === "approved" ? (
        <p>
          Approved; access starts <Time at={item.startsAt ?? item.startAt} />.
        </p>
      ) : null}
      {item.status === "active" ? (
        <>
          <p>
            Active until <Time at={item.endsAt} />.
          </p>
          <CopyCommand command={connectCommand(item)} />
        </>
      ) : null}
      {item.status === "denied" ? (
        <p>
          Denied by {item.decision?.by}
          {item.decision?.reason ? `: ${item.decision.reason}` : ""}.
        </p>
      ) : null}
      <p>
        <a href={`/requests/${item.id}`}>Request details and history</a> · <a href="/access">My access</a>
      </p>
    </section>
  );
}

export function RequestPage() {
  const { policy } = useApp();
  const [created, setCreated] = useState<RequestInfo>();
  return (
    <>
      <h1>Request access</h1>
      {created ? (
        <>
          <RequestOutcome initial={created} />
          <p>
            <button type="button" class="secondary" onClick={() => setCreated(undefined)}>
              Ask for something else
            </button>
          </p>
        </>
      ) : (
        <RequestForm view={policy} submit={api.create} onCreated={setCreated} />
      )}
    </>
  );
}
