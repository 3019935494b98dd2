// Pieces every page uses: a refusal or failure said in the service's words,
// dialogs, statuses, times, and a hook for calls.
import { cloneElement, type ComponentChildren, type JSX, type VNode } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import { ApiFailure } from "./api";

/** A failure as the service said it; an IAM refusal names who, what and which resource. */
export function Failure({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiFailure) {
    return (
      <div class={error.denied ? "failure denied" : "failure"} role="alert">
        <strong>{error.denied ? "Not allowed" : error.code}</strong>
        <span>{error.message}</span>
        {error.errors.length > 0 && (
          <ul>
            {error.errors.map((e) => (
              <li key={`${e.path}:${e.rule}`}>
                <code>{e.path || "(document)"}</code>: {e.message} <small>({e.rule})</small>
              </li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  return (
    <div class="failure" role="alert">
      <strong>Error</strong> <span>{error instanceof Error ? error.message : String(error)}</span>
    </div>
  );
}

/** A modal dialog (the platform's own, so focus and Escape work). */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} aria-label={props.title} onClose={props.onClose} onCancel={props.onClose}>
      <h2>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

const STATUS_CLASS: Record<string, string> = {
  Succeeded: "ok",
  InProgress: "running",
  Stopping: "running",
  Failed: "bad",
  Stopped: "muted",
  Cancelled: "muted",
  Abandoned: "muted",
  Superseded: "muted",
};

export function StatusBadge({ status }: { status?: string | null | undefined }) {
  if (!status) return <span class="status none">Didn't run</span>;
  return <span class={`status ${STATUS_CLASS[status] ?? ""}`}>{status === "InProgress" ? "In progress" : status}</span>;
}

export function When({ at }: { at?: string | null | undefined }) {
  if (!at) return null;
  const date = new Date(at);
  return (
    <time dateTime={at} title={date.toISOString()}>
      {ago(date)}
    </time>
  );
}

export function ago(date: Date): string {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleString();
}

export function duration(from: string, to: string): string {
  const seconds = Math.max(0, Math.round((Date.parse(to) - Date.parse(from)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${seconds % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Only http(s) links leave the console: a tenant's `javascript:` URL is shown as text. */
export function ExternalLink({ href, children }: { href: string; children: ComponentChildren }) {
  let safe = false;
  try {
    safe = ["http:", "https:"].includes(new URL(href).protocol);
  } catch {
    safe = false;
  }
  if (!safe) return <span title={href}>{children}</span>;
  return (
    <a href={href} target="_blank" rel="noopener noreferrer">
      {children}
    </a>
  );
}

/** Runs a call for a button: busy while it runs, its failure kept for display. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (call: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await call();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

/** A labelled control; its hint is the control's description, not part of its name. */
export function Field(props: { label: string; children: VNode; hint?: string | undefined }) {
  const id = useId();
  const control = props.hint ? cloneElement(props.children, { "aria-describedby": id }) : props.children;
  return (
    <div class="field">
      <label>
        <span>{props.label}</span>
        {control}
      </label>
      {props.hint && <small id={id}>{props.hint}</small>}
    </div>
  );
}

export type Input = JSX.TargetedEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, Event>;
export const value = (e: Input) => e.currentTarget.value;

/**
 * A button for a call the caller may not be allowed to make: it says so
 * (marked, and IAM's words as its description) and still works, so that
 * the refusal itself is shown when it is tried.
 */
export function Guarded(
  props: { permission?: { allowed: boolean; message?: string | null | undefined } | undefined } & JSX.ButtonHTMLAttributes<HTMLButtonElement>,
) {
  const { permission, children, class: className, ...rest } = props;
  const id = useId();
  const refused = permission && !permission.allowed;
  return (
    <>
      <button
        type="button"
        {...rest}
        class={`${typeof className === "string" ? className : ""}${refused ? " not-allowed" : ""}`}
        aria-describedby={refused ? id : undefined}
        title={refused ? (permission.message ?? "Not allowed") : undefined}
      >
        {children}
        {refused && <span class="refused-mark" aria-hidden="true"> · not allowed</span>}
      </button>
      {refused && (
        <span id={id} class="visually-hidden">
          Not allowed: {permission.message}
        </span>
      )}
    </>
  );
}

/**
 * Reads `call` once, again when `deps` change (showing nothing meanwhile)
 * and when the returned function asks (keeping what it shows until the
 * answer); the failure is kept to show.
 */
export function useRead<T>(call: () => Promise<T>, deps: unknown[]): [T | null, unknown, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reads, setReads] = useState(0);
  const shown = useRef<string>("");
  useEffect(() => {
    let gone = false;
    const key = JSON.stringify(deps);
    if (key !== shown.current) setData(null);
    shown.current = key;
    setError(null);
    call().then(
      (found) => !gone && setData(found),
      (e) => !gone && setError(e),
    );
    return () => {
      gone = true;
    };
  }, [...deps, reads]);
  return [data, error, () => setReads((n) => n + 1)];
}

/** A list's pages: the tokens of the pages before this one, to go back. */
export function usePages() {
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  return {
    token: tokens[tokens.length - 1],
    number: tokens.length,
    back: () => setTokens((t) => t.slice(0, -1)),
    forward: (next: string) => setTokens((t) => [...t, next]),
    reset: () => setTokens([undefined]),
  };
}

export function Pager({ pages, next }: { pages: ReturnType<typeof usePages>; next: string | null | undefined }) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={pages.number < 2} onClick={pages.back}>
        Previous page
      </button>
      <span>Page {pages.number}</span>
      <button type="button" disabled={!next} onClick={() => next && pages.forward(next)}>
        Next page
      </button>
    </nav>
  );
}

/** A dialog's Cancel and its one action. */
export function DialogButtons(props: { onCancel: () => void; busy: boolean; label: string }) {
  return (
    <div class="buttons">
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
      <button type="submit" class="primary" disabled={props.busy}>
        {props.label}
      </button>
    </div>
  );
}
