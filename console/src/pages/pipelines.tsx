// The pipelines of the account, latest activity first: each with its latest
// execution's status, source revision and time, filtered by name, a page at
// a time.
import { useEffect, useState } from "preact/hooks";
import { api, must, type Schemas } from "../api";
import { href } from "../app";
import { Failure, StatusBadge, When, value } from "../ui";

const PAGE = 25;

interface Row {
  pipeline: Schemas["PipelineSummary"];
  latest?: Schemas["ExecutionBody"] | undefined;
  error?: unknown;
}

export function PipelinesPage() {
  const [filter, setFilter] = useState("");
  const [applied, setApplied] = useState("");
  // The tokens of the pages before this one, to go back.
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [rows, setRows] = useState<Row[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reads, setReads] = useState(0);
  const token = tokens[tokens.length - 1];

  useEffect(() => {
    let gone = false;
    setRows(null);
    setError(null);
    (async () => {
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
      const found: Row[] = await Promise.all(
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
      if (!gone) {
        setRows(found);
        setNext(page.nextToken ?? null);
      }
    })().catch((e) => !gone && setError(e));
    return () => {
      gone = true;
    };
  }, [applied, token, reads]);

  return (
    <section aria-labelledby="pipelines">
      <div class="title">
        <h1 id="pipelines">Pipelines</h1>
        <div class="buttons">
          <button type="button" onClick={() => setReads(reads + 1)}>
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
          setTokens([undefined]);
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
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={tokens.length < 2} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {tokens.length}</span>
        <button type="button" disabled={!next} onClick={() => next && setTokens([...tokens, next])}>
          Next page
        </button>
      </nav>
    </section>
  );
}
