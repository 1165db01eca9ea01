import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { formatDuration } from "../../../core/util/duration-text.ts";
import type { RequestInfo } from "../api.ts";

export { formatDuration };

/** Runs `load` now and every `ms` while the tab is visible (and at once when it becomes visible again). */
export function usePoll(load: () => Promise<void> | void, ms: number, deps: unknown[] = []) {
  const saved = useRef(load);
  saved.current = load;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      if (stopped) return;
      if (document.visibilityState === "visible") {
        try {
          await saved.current();
        } catch {
          // the page shows its own error state; keep polling
        }
      }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    const visible = () => {
      if (document.visibilityState === "visible") {
        clearTimeout(timer);
        void tick();
      }
    };
    void tick();
    document.addEventListener("visibilitychange", visible);
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", visible);
    };
  }, deps);
}

/** A clock that re-renders its user every `ms` (countdowns). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

export function Time({ at }: { at?: string }) {
  if (!at) return <span>—</span>;
  const date = new Date(at);
  return (
    <time dateTime={at} title={date.toISOString()}>
      {date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}
    </time>
  );
}

export function Status({ status }: { status: string }) {
  return <span class={`status status-${status}`}>{status}</span>;
}

export function accessText(item: Pick<RequestInfo, "method" | "osUser" | "port">): string {
  if (item.method === "ssh") return `ssh${item.osUser ? ` as ${item.osUser}` : ""}`;
  if (item.method === "tunnel") return `tunnel to port ${item.port ?? 22}`;
  return "rdp";
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/** A command with a copy button; the text stays selectable for keyboards and old browsers. */
export function CopyCommand({ command, label = "Connect with" }: { command: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(command);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  };
  return (
    <div class="command">
      <span class="command-label">{label}</span>
      <code data-testid="connect-command">{command}</code>
      <button type="button" class="secondary" onClick={copy} aria-label={`Copy: ${command}`}>
        {copied ? "Copied" : "Copy"}
      </button>
      <span class="visually-hidden" aria-live="polite">
        {copied ? "Copied to the clipboard" : ""}
      </span>
    </div>
  );
}

export function Section({
  title,
  children,
  count,
  id,
}: {
  title: string;
  children: ComponentChildren;
  count?: number;
  id?: string;
}) {
  const heading = id ?? title.toLowerCase().replace(/\W+/g, "-");
  return (
    <section aria-labelledby={heading}>
      <h2 id={heading}>
        {title}
        {count !== undefined ? <span class="count"> ({count})</span> : null}
      </h2>
      {children}
    </section>
  );
}

/**
 * A table that scrolls sideways inside its own box on narrow screens, so the page itself never does; the
 * caption is for screen readers (the section heading above says the same to sighted readers).
 */
export function DataTable({
  caption,
  columns,
  children,
}: {
  caption: string;
  columns: string[];
  children: ComponentChildren;
}) {
  return (
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column} scope="col">
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** Seconds left until `end`, as `12m 30s`. */
export function timeLeft(end: string | undefined, now: number): string {
  if (!end) return "—";
  const seconds = Math.max(0, Math.round((Date.parse(end) - now) / 1000));
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, "0")}s`;
}
