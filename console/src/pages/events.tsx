// "Event history", as CloudTrail's: the account's audit log searched with
// LookupEvents' filters, an event's whole record, export and verification.
import { useState } from "preact/hooks";
import { api, failure, must, type Schemas } from "../api";
import { Dialog, Failure, Field, Pager, When, useAction, usePages, useRead, value } from "../ui";
import { save } from "./executions";

type Event = Schemas["AuditEvent"];
interface Filters {
  startTime: string;
  endTime: string;
  eventName: string;
  userName: string;
  resourceArn: string;
  readOnly: "" | "true" | "false";
  errorCode: string;
}
const EMPTY: Filters = { startTime: "", endTime: "", eventName: "", userName: "", resourceArn: "", readOnly: "", errorCode: "" };

/** A datetime-local value (local time) as RFC 3339. */
const instant = (local: string) => (local ? new Date(local).toISOString() : undefined);

function query(f: Filters) {
  const q: Record<string, string | boolean> = {};
  const start = instant(f.startTime);
  const end = instant(f.endTime);
  if (start) q.startTime = start;
  if (end) q.endTime = end;
  for (const key of ["eventName", "userName", "resourceArn", "errorCode"] as const) {
    if (f[key].trim()) q[key] = f[key].trim();
  }
  if (f.readOnly) q.readOnly = f.readOnly === "true";
  return q;
}

export function EventsPage() {
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const pages = usePages();
  const [page, error] = useRead(
    () =>
      must(
        api.GET("/v1/audit/events", {
          params: { query: { ...query(filters), maxResults: 50, ...(pages.token ? { nextToken: pages.token } : {}) } },
        }),
      ),
    [filters, pages.token],
  );
  const [shown, setShown] = useState<Event | null>(null);
  const [verified, setVerified] = useState<Schemas["VerifyResponse"] | null>(null);
  const tools = useAction();

  const set = (key: keyof Filters) => (e: Parameters<typeof value>[0]) => setDraft({ ...draft, [key]: value(e) });
  const range = () => {
    const q = query(filters);
    return {
      ...(typeof q.startTime === "string" ? { startTime: q.startTime } : {}),
      ...(typeof q.endTime === "string" ? { endTime: q.endTime } : {}),
    };
  };
  const exportEvents = () =>
    void tools.run(async () => {
      const { data, error: refused, response } = await api.GET("/v1/audit/export", {
        params: { query: range() },
        parseAs: "blob",
      });
      if (!data) throw failure(response, refused);
      save(data as unknown as Blob, `pipewright-events-${new Date().toISOString().slice(0, 19)}.ndjson`);
    });
  const verify = () =>
    void tools.run(async () => setVerified(await must(api.GET("/v1/audit/verify", { params: { query: range() } }))));

  return (
    <section aria-labelledby="events">
      <div class="title">
        <h1 id="events">Event history</h1>
        <div class="buttons">
          <button type="button" onClick={exportEvents} disabled={tools.busy}>
            Export events
          </button>
          <button type="button" onClick={verify} disabled={tools.busy}>
            Verify the log
          </button>
        </div>
      </div>
      <p class="muted">Every call to this account's API, newest first. Export and verification cover the time range.</p>
      <Failure error={tools.error} />
      {verified && (
        <p role="status" class={verified.valid ? "verified ok" : "verified bad"}>
          {verified.valid
            ? `Valid: ${verified.eventsChecked} events and ${verified.digestsChecked} digests verified.`
            : `Not valid: ${verified.firstInvalid?.reason ?? "the chain is broken"}${verified.firstInvalid?.eventId ? ` (event ${verified.firstInvalid.eventId})` : ""}.`}
        </p>
      )}
      <form
        class="filters"
        role="search"
        aria-label="Filter events"
        onSubmit={(e) => {
          e.preventDefault();
          pages.reset();
          setFilters(draft);
        }}
      >
        <Field label="From">
          <input type="datetime-local" name="startTime" value={draft.startTime} onInput={set("startTime")} />
        </Field>
        <Field label="To">
          <input type="datetime-local" name="endTime" value={draft.endTime} onInput={set("endTime")} />
        </Field>
        <Field label="Event name">
          <input name="eventName" placeholder="PutApprovalResult" value={draft.eventName} onInput={set("eventName")} />
        </Field>
        <Field label="User name">
          <input name="userName" value={draft.userName} onInput={set("userName")} />
        </Field>
        <Field label="Resource ARN">
          <input name="resourceArn" value={draft.resourceArn} onInput={set("resourceArn")} />
        </Field>
        <Field label="Error code">
          <input name="errorCode" placeholder="AccessDeniedException" value={draft.errorCode} onInput={set("errorCode")} />
        </Field>
        <Field label="Read-only">
          <select name="readOnly" value={draft.readOnly} onChange={set("readOnly")}>
            <option value="">Any</option>
            <option value="true">Read-only calls</option>
            <option value="false">Changes</option>
          </select>
        </Field>
        <div class="buttons">
          <button
            type="button"
            onClick={() => {
              setDraft(EMPTY);
              pages.reset();
              setFilters(EMPTY);
            }}
          >
            Clear filters
          </button>
          <button type="submit" class="primary">
            Search
          </button>
        </div>
      </form>
      <Failure error={error} />
      {!page && !error && <p aria-busy="true">Loading…</p>}
      {page && page.events.length === 0 && <p>No events match.</p>}
      {page && page.events.length > 0 && (
        <table class="list" aria-label="Events">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Event name</th>
              <th scope="col">User</th>
              <th scope="col">Resources</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {page.events.map((event) => (
              <tr key={event.eventId}>
                <td>
                  <When at={event.eventTime} />
                </td>
                <td>
                  <button type="button" class="link" onClick={() => setShown(event)} aria-label={`View ${event.eventName} event ${event.eventId}`}>
                    {event.eventName}
                  </button>
                  <div class="muted small">{event.eventSource}</div>
                </td>
                <td class="wrap">{who(event)}</td>
                <td class="wrap">
                  {event.resources.map((r) => (
                    <div key={r.arn} class="small">
                      {r.arn}
                    </div>
                  ))}
                </td>
                <td>{event.errorCode ? <span class="status bad">{event.errorCode}</span> : <span class="status ok">{event.httpStatus}</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} next={page?.nextToken} />
      {shown && (
        <Dialog title={`Event ${shown.eventName}`} onClose={() => setShown(null)}>
          <pre class="json" tabIndex={0} aria-label="The event's record">
            {JSON.stringify(shown, null, 2)}
          </pre>
          <div class="buttons">
            <button type="button" onClick={() => setShown(null)}>
              Close
            </button>
          </div>
        </Dialog>
      )}
    </section>
  );
}

function who(event: Event): string {
  const id = event.userIdentity;
  const context = id.sessionContext?.sessionIssuer?.userName;
  if (id.type === "AssumedRole" && context) return `${context} (role) · ${id.arn ?? ""}`;
  return id.userName ?? id.arn ?? id.type;
}
