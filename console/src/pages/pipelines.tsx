// The pipelines of the account, latest activity first: each with its latest
// execution's status, source revision and time, filtered by name, a page at
// a time.
import { useState } from "preact/hooks";
import { api, must, type Schemas } from "../api";
import { href } from "../app";
import { Failure, Pager, StatusBadge, When, usePages, useRead, value } from "../ui";

const PAGE = 25;

interface Row {
  pipeline: Schemas["PipelineSummary"];
  latest?: Schemas["ExecutionBody"] | undefined;
  error?: unknown;
}

/** A page of pipelines, each with its latest execution (or why it cannot be read). */
async function pageOf(applied: string, token: string | undefined): Promise<{ rows: Row[]; next: string | null }> {
  const page = await must(
    api.GET("/v1/pipelines", {
      params: {
        query: {
          maxResults: PAGE,
          sortBy: "LAST_ACTIVITY",
          ...(applied ? { namePrefix: applied } : {}),
          ...(token ? { nextToken: token } : {}),
        },
      },
    }),
  );
  const rows: Row[] = await Promise.all(
    page.pipelines.map(async (pipeline) => {
      try {
        const executions = await must(
          api.GET("/v1/pipelines/{name}/executions", {
            params: { path: { name: pipeline.name }, query: { maxResults: 1 } },
          }),
        );
        return { pipeline, latest: executions.pipelineExecutionSummaries[0] };
      } catch (e) {
        return { pipeline, error: e };
      }
    }),
  );
  return { rows, next: page.nextToken ?? null };
}

export function PipelinesPage() {
  const [filter, setFilter] = useState("");
  const [applied, setApplied] = useState("");
  const pages = usePages();
  const [found, error, reread] = useRead(() => pageOf(applied, pages.token), [applied, pages.token]);
  const rows = found?.rows ?? null;

  return (
    <section aria-labelledby="pipelines">
      <div class="title">
        <h1 id="pipelines">Pipelines</h1>
        <div class="buttons">
          <button type="button" onClick={reread}>
            Refresh
          </button>
          <a class="button primary" href={href("create-pipeline")}>
            Create pipeline
          </a>
        </div>
      </div>
      <form
        class="filter"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          pages.reset();
          setApplied(filter.trim());
        }}
      >
        <label>
          <span class="visually-hidden">Filter by name</span>
          <input
            type="search"
            aria-label="Filter by name"
            placeholder="Name starts with…"
            value={filter}
            onInput={(e) => setFilter(value(e))}
          />
        </label>
        <button type="submit">Filter</button>
      </form>
      <Failure error={error} />
      {rows === null && !error && <p aria-busy="true">Loading…</p>}
      {rows && rows.length === 0 && <p>No pipelines{applied ? ` whose name starts with “${applied}”` : ""}.</p>}
      {rows && rows.length > 0 && (
        <table class="list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Latest execution</th>
              <th scope="col">Source revision</th>
              <th scope="col">Latest activity</th>
              <th scope="col">Type</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ pipeline, latest, error: refused }) => (
              <tr key={pipeline.name}>
                <td>
                  <a href={href("pipelines", pipeline.name)}>{pipeline.name}</a>
                </td>
                <td>{refused ? <span class="muted">not readable</span> : <StatusBadge status={latest?.status} />}</td>
                <td>
                  {latest?.sourceRevisions.map((r) => (
                    <div key={r.actionName} class="revision" title={r.revisionId}>
                      <span>{r.actionName}:</span> {r.revisionSummary || r.revisionId.slice(0, 12)}
                    </div>
                  ))}
                </td>
                <td>
                  <When at={pipeline.lastActivity} />
                </td>
                <td>
                  {pipeline.pipelineType} · {pipeline.executionMode}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} next={found?.next} />
    </section>
  );
}
