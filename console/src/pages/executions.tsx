// A pipeline's execution history, and one execution: every action's
// attempts on a timeline, their output variables and artifacts.
import { useEffect, useState } from "preact/hooks";
import { api, failure, must, type Schemas } from "../api";
import { href } from "../app";
import { Failure, Pager, StatusBadge, When, duration, useAction, usePages, useRead, value } from "../ui";

const STATUSES = ["InProgress", "Stopping", "Stopped", "Succeeded", "Superseded", "Failed", "Cancelled", "Abandoned"] as const;
const PAGE = 25;

export function ExecutionsPage({ name }: { name: string }) {
  const [status, setStatus] = useState("");
  const pages = usePages();
  const [page, error] = useRead(
    () =>
      must(
        api.GET("/v1/pipelines/{name}/executions", {
          params: {
            path: { name },
            query: { maxResults: PAGE, ...(status ? { status } : {}), ...(pages.token ? { nextToken: pages.token } : {}) },
          },
        }),
      ),
    [name, status, pages.token],
  );

  return (
    <section aria-labelledby="history">
      <p class="crumbs">
        <a href={href("pipelines")}>Pipelines</a> › <a href={href("pipelines", name)}>{name}</a>
      </p>
      <h1 id="history">Execution history</h1>
      <label class="inline">
        Status{" "}
        <select
          aria-label="Filter by status"
          value={status}
          onChange={(e) => {
            pages.reset();
            setStatus(value(e));
          }}
        >
          <option value="">Any</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <Failure error={error} />
      {!page && !error && <p aria-busy="true">Loading…</p>}
      {page && page.pipelineExecutionSummaries.length === 0 && <p>No executions{status ? ` with status ${status}` : ""}.</p>}
      {page && page.pipelineExecutionSummaries.length > 0 && (
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Execution</th>
              <th scope="col">Status</th>
              <th scope="col">Trigger</th>
              <th scope="col">Source revisions</th>
              <th scope="col">Started</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {page.pipelineExecutionSummaries.map((e) => (
              <tr key={e.pipelineExecutionId}>
                <td>
                  <a href={href("pipelines", name, "executions", e.pipelineExecutionId)}>
                    <code>{e.pipelineExecutionId.slice(0, 8)}</code>
                  </a>
                </td>
                <td>
                  <StatusBadge status={e.status} />
                  {e.statusSummary && <div class="muted small">{e.statusSummary}</div>}
                </td>
                <td>
                  {e.trigger.triggerType}
                  <div class="muted small">{e.trigger.triggerDetail}</div>
                </td>
                <td>
                  {e.sourceRevisions.map((r) => (
                    <div key={r.actionName} class="revision" title={r.revisionId}>
                      {r.actionName}: {r.revisionSummary || r.revisionId.slice(0, 12)}
                    </div>
                  ))}
                </td>
                <td>
                  <When at={e.startTime} />
                </td>
                <td>{duration(e.startTime, e.lastUpdateTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} next={page?.nextToken} />
    </section>
  );
}

export function ExecutionPage({ name, id }: { name: string; id: string }) {
  const [execution, setExecution] = useState<Schemas["ExecutionBody"] | null>(null);
  const [actions, setActions] = useState<Schemas["ActionExecutionDetail"][]>([]);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let gone = false;
    const read = async () => {
      try {
        const [found, details] = await Promise.all([
          must(api.GET("/v1/pipelines/{name}/executions/{id}", { params: { path: { name, id } } })),
          allActions(name, id),
        ]);
        if (gone) return;
        setExecution(found.pipelineExecution);
        setActions(details);
        setError(null);
      } catch (e) {
        if (!gone) setError(e);
      }
    };
    void read();
    // Read again while it runs.
    const every = setInterval(() => void read(), 3_000);
    return () => {
      gone = true;
      clearInterval(every);
    };
  }, [name, id]);

  if (!execution) {
    return (
      <section>
        <h1>Execution {id.slice(0, 8)}</h1>
        <Failure error={error} />
        {!error && <p aria-busy="true">Loading…</p>}
      </section>
    );
  }
  const start = Math.min(...actions.map((a) => Date.parse(a.startTime)), Date.parse(execution.startTime));
  const end = Math.max(...actions.map((a) => Date.parse(a.endTime ?? a.lastUpdateTime)), Date.parse(execution.lastUpdateTime), start + 1);
  const ordered = [...actions].sort((a, b) => Date.parse(a.startTime) - Date.parse(b.startTime));
  return (
    <section aria-labelledby="execution">
      <p class="crumbs">
        <a href={href("pipelines")}>Pipelines</a> › <a href={href("pipelines", name)}>{name}</a> ›{" "}
        <a href={href("pipelines", name, "executions")}>History</a>
      </p>
      <h1 id="execution">
        Execution <code>{execution.pipelineExecutionId}</code>
      </h1>
      <Failure error={error} />
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <StatusBadge status={execution.status} /> {execution.statusSummary}
        </dd>
        <dt>Trigger</dt>
        <dd>
          {execution.trigger.triggerType} · {execution.trigger.triggerDetail}
        </dd>
        <dt>Started</dt>
        <dd>
          <When at={execution.startTime} /> · {duration(execution.startTime, execution.lastUpdateTime)}
        </dd>
        <dt>Pipeline version</dt>
        <dd>{execution.pipelineVersion}</dd>
        {execution.sourceRevisions.map((r) => (
          <>
            <dt key={`${r.actionName}-dt`}>Source {r.actionName}</dt>
            <dd key={`${r.actionName}-dd`}>
              <code title={r.revisionId}>{r.revisionId.slice(0, 16)}</code> {r.revisionSummary}
            </dd>
          </>
        ))}
        {execution.variables.map((v) => (
          <>
            <dt key={`${v.name}-dt`}>Variable {v.name}</dt>
            <dd key={`${v.name}-dd`}>{v.resolvedValue}</dd>
          </>
        ))}
      </dl>
      <h2>Timeline</h2>
      <ol class="timeline" aria-label="Action executions">
        {ordered.map((a) => {
          const from = Date.parse(a.startTime);
          const to = Date.parse(a.endTime ?? a.lastUpdateTime);
          const left = ((from - start) / (end - start)) * 100;
          const width = Math.max(((to - from) / (end - start)) * 100, 0.5);
          return (
            <li key={a.actionExecutionId} aria-label={`${a.stageName} ${a.actionName} attempt ${a.attempt}`}>
              <div class="timeline-label">
                <strong>
                  {a.stageName} · {a.actionName}
                </strong>
                {a.attempt > 1 && <small> attempt {a.attempt}</small>} <StatusBadge status={a.status} />{" "}
                <small>{duration(a.startTime, a.endTime ?? a.lastUpdateTime)}</small>
              </div>
              <div class="timeline-track">
                <span class={`timeline-bar ${a.status}`} style={{ left: `${left}%`, width: `${width}%` }} />
              </div>
              {a.summary && <p class="summary">{a.summary}</p>}
              {a.output.errorDetails && (
                <p class="error-details">
                  <code>{a.output.errorDetails.code}</code> {a.output.errorDetails.message}
                </p>
              )}
              {Object.keys(a.output.outputVariables).length > 0 && (
                <table class="variables" aria-label={`Output variables of ${a.actionName}`}>
                  <tbody>
                    {Object.entries(a.output.outputVariables).map(([k, v]) => (
                      <tr key={k}>
                        <th scope="row">{k}</th>
                        <td>
                          <code>{v}</code>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
              {a.output.outputArtifacts.length > 0 && (
                <p class="artifacts">
                  {a.output.outputArtifacts.map((artifact) => (
                    <Download key={artifact.name} name={name} id={a.actionExecutionId} artifact={artifact} />
                  ))}
                </p>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

async function allActions(name: string, id: string): Promise<Schemas["ActionExecutionDetail"][]> {
  const found: Schemas["ActionExecutionDetail"][] = [];
  let nextToken: string | undefined;
  do {
    const page = await must(
      api.GET("/v1/pipelines/{name}/action-executions", {
        params: { path: { name }, query: { pipelineExecutionId: id, maxResults: 100, ...(nextToken ? { nextToken } : {}) } },
      }),
    );
    found.push(...page.actionExecutionDetails);
    nextToken = page.nextToken ?? undefined;
  } while (nextToken);
  return found;
}

/** Saves a response body as a file of the given name. */
export function save(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function Download(props: { name: string; id: string; artifact: Schemas["ArtifactLocation"] }) {
  const action = useAction();
  const download = () =>
    void action.run(async () => {
      const { data, error, response } = await api.GET("/v1/pipelines/{name}/action-executions/{id}/artifacts/{artifact}", {
        params: { path: { name: props.name, id: props.id, artifact: props.artifact.name } },
        headers: { accept: "application/octet-stream" },
        parseAs: "blob",
      });
      if (!data) throw failure(response, error);
      save(data as Blob, `${props.artifact.name}.tar`);
    });
  return (
    <>
      <button type="button" class="small" onClick={download} disabled={action.busy}>
        Download {props.artifact.name}
      </button>{" "}
      <small class="muted">{Math.ceil(props.artifact.size / 1024)} KiB</small>
      <Failure error={action.error} />
    </>
  );
}
