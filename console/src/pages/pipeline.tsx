// A pipeline drawn as CodePipeline draws it: stages top to bottom, joined
// by transition arrows that can be disabled; each stage's actions in runOrder
// groups, side by side within a group. It follows the state stream, so it
// changes as the pipeline runs, without reload.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, follow, must, permissions, stream, type Permissions, type Schemas } from "../api";
import { go, href } from "../app";
import { CopyPipeline } from "./create-pipeline";
import { Dialog, DialogButtons, ExternalLink, Failure, Field, Guarded, StatusBadge, When, duration, useAction, value } from "../ui";

type State = Schemas["PipelineStateResponse"];
type StageState = Schemas["StageState"];
type ActionState = Schemas["ActionState"];
type Declaration = Schemas["PipelineDeclaration"];
type StageDeclaration = Schemas["StageDeclaration"];
type ActionDeclaration = Schemas["ActionDeclaration"];

type Open =
  | { kind: "release" }
  | { kind: "stop"; executionId: string }
  | { kind: "retry"; stage: string; executionId: string }
  | { kind: "disable"; stage: string }
  | { kind: "review"; stage: string; action: string; token: string; summary?: string | null | undefined }
  | { kind: "log"; action: string; actionExecutionId: string }
  | { kind: "copy" };

export function PipelinePage({ name }: { name: string }) {
  const [declaration, setDeclaration] = useState<Declaration | null>(null);
  const [state, setState] = useState<State | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState(false);
  const [open, setOpen] = useState<Open | null>(null);
  const [loadedVersion, setLoadedVersion] = useState<number | null>(null);
  const [arn, setArn] = useState("");
  const [may, setMay] = useState<Permissions>(() => () => undefined);
  const transition = useAction();

  const reload = async () => {
    try {
      const [pipeline, current] = await Promise.all([
        must(api.GET("/v1/pipelines/{name}", { params: { path: { name } } })),
        must(api.GET("/v1/pipelines/{name}/state", { params: { path: { name } } })),
      ]);
      setDeclaration(pipeline.pipeline);
      setArn(pipeline.metadata.pipelineArn);
      setLoadedVersion(current.pipelineVersion);
      setState(current);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    void reload();
    const stop = new AbortController();
    follow(
      `/v1/pipelines/${encodeURIComponent(name)}/events`,
      (event, data) => {
        if (event !== "state") return;
        try {
          setState(JSON.parse(data) as State);
        } catch {
          // An event that is not a state is not for us.
        }
      },
      setLive,
      stop.signal,
    );
    return () => stop.abort();
  }, [name]);

  // Someone updated the pipeline: its stages may have changed, so its
  // declaration is read again.
  useEffect(() => {
    if (state && loadedVersion !== null && state.pipelineVersion !== loadedVersion) void reload();
  }, [state?.pipelineVersion]);

  const running = useMemo(() => runningExecution(state), [state]);

  // What the caller may do here, asked once per declaration: the buttons
  // it would be refused say so.
  useEffect(() => {
    if (!declaration || !arn) return;
    const checks = [
      { action: "codepipeline:StartPipelineExecution", resource: arn },
      { action: "codepipeline:StopPipelineExecution", resource: arn },
      { action: "codepipeline:UpdatePipeline", resource: arn },
      // A copy is created under the name the dialog offers first.
      { action: "codepipeline:CreatePipeline", resource: `${arn}-copy` },
    ];
    for (const stage of declaration.stages) {
      const at = `${arn}/${stage.name}`;
      checks.push(
        { action: "codepipeline:DisableStageTransition", resource: at },
        { action: "codepipeline:EnableStageTransition", resource: at },
        { action: "codepipeline:RetryStageExecution", resource: at },
      );
      for (const action of stage.actions) {
        const kind = action.actionTypeId;
        if (kind.category === "Approval") checks.push({ action: "codepipeline:PutApprovalResult", resource: `${at}/${action.name}` });
        if (kind.category === "Source" && kind.provider === "Upload")
          checks.push({ action: "codepipeline:PutSourceRevision", resource: `${at}/${action.name}` });
      }
    }
    permissions(checks).then(
      (decided) => setMay(() => decided),
      () => undefined,
    );
  }, [declaration, arn]);

  if (error && !state) {
    return (
      <section>
        <h1>{name}</h1>
        <Failure error={error} />
        <p>
          <a href={href("pipelines")}>Back to pipelines</a>
        </p>
      </section>
    );
  }
  if (!state || !declaration) return <p aria-busy="true">Loading {name}…</p>;

  const enableTransition = (stage: string) =>
    void transition.run(() =>
      must(
        api.POST("/v1/pipelines/{name}/stages/{stage}/transitions/inbound/enable", {
          params: { path: { name, stage } },
        }),
      ),
    );

  return (
    <section aria-labelledby="pipeline-name" class="pipeline">
      <div class="title">
        <h1 id="pipeline-name">{name}</h1>
        <span class={live ? "live on" : "live"} role="status" aria-live="polite">
          {live ? "Live" : "Reconnecting…"}
        </span>
        <div class="buttons">
          <a class="button" href={href("pipelines", name, "executions")}>
            History
          </a>
          <Guarded permission={may("codepipeline:UpdatePipeline", arn)} onClick={() => go("pipelines", name, "edit")}>
            Edit
          </Guarded>
          <Guarded permission={may("codepipeline:CreatePipeline", `${arn}-copy`)} onClick={() => setOpen({ kind: "copy" })}>
            Copy pipeline
          </Guarded>
          <Guarded
            permission={may("codepipeline:StopPipelineExecution", arn)}
            disabled={!running}
            onClick={() => running && setOpen({ kind: "stop", executionId: running })}
          >
            Stop execution
          </Guarded>
          <Guarded permission={may("codepipeline:StartPipelineExecution", arn)} class="primary" onClick={() => setOpen({ kind: "release" })}>
            Release change
          </Guarded>
        </div>
      </div>
      <p class="meta">
        Version {state.pipelineVersion} · {declaration.pipelineType ?? "V2"} · {declaration.executionMode ?? "SUPERSEDED"} · updated{" "}
        <When at={state.updated} />
      </p>
      <Failure error={transition.error} />
      <ol class="stages" aria-label="Stages">
        {declaration.stages.map((stage, index) => {
          const stageState = state.stageStates.find((s) => s.stageName === stage.name);
          return (
            <li key={stage.name} class="stage-slot">
              {index > 0 && (
                <Transition
                  may={(action) => may(action, `${arn}/${stage.name}`)}
                  stage={stage.name}
                  state={stageState}
                  onDisable={() => setOpen({ kind: "disable", stage: stage.name })}
                  onEnable={() => enableTransition(stage.name)}
                  busy={transition.busy}
                />
              )}
              <Stage
                may={(action, under) => may(action, `${arn}/${stage.name}${under ? `/${under}` : ""}`)}
                declaration={stage}
                state={stageState}
                name={name}
                onOpen={setOpen}
              />
            </li>
          );
        })}
      </ol>
      {open && <Opened name={name} open={open} declaration={declaration} onClose={() => setOpen(null)} />}
    </section>
  );
}

/** The execution the pipeline is running, if one is: in a stage, or waiting to enter one. */
function runningExecution(state: State | null): string | null {
  if (!state) return null;
  for (const stage of [...state.stageStates].reverse()) {
    const latest = stage.latestExecution;
    if (latest && (latest.status === "InProgress" || latest.status === "Stopping")) return latest.pipelineExecutionId;
    const waiting = stage.inboundExecutions[0];
    if (waiting) return waiting.pipelineExecutionId;
  }
  return null;
}

function Transition(props: {
  may: (action: string) => ReturnType<Permissions>;
  stage: string;
  state: StageState | undefined;
  onDisable: () => void;
  onEnable: () => void;
  busy: boolean;
}) {
  const transition = props.state?.inboundTransitionState;
  const enabled = transition?.enabled ?? true;
  const waiting = props.state?.inboundExecutions ?? [];
  return (
    <div class={enabled ? "transition" : "transition disabled"} aria-label={`Transition into ${props.stage}`} role="group">
      <span class="arrow" aria-hidden="true">
        {enabled ? "↓" : "⤓"}
      </span>
      {enabled ? (
        <Guarded
          permission={props.may("codepipeline:DisableStageTransition")}
          class="small"
          onClick={props.onDisable}
          disabled={props.busy}
          aria-label={`Disable transition into ${props.stage}`}
        >
          Disable transition
        </Guarded>
      ) : (
        <>
          <span class="reason">
            Transition disabled{transition?.disabledReason ? `: ${transition.disabledReason}` : ""}
            {transition?.lastChangedBy && <small> by {transition.lastChangedBy}</small>}
          </span>
          <Guarded
            permission={props.may("codepipeline:EnableStageTransition")}
            class="small"
            onClick={props.onEnable}
            disabled={props.busy}
            aria-label={`Enable transition into ${props.stage}`}
          >
            Enable transition
          </Guarded>
        </>
      )}
      {waiting.length > 0 && (
        <span class="inbound" role="note" aria-label={`Waiting to enter ${props.stage}`}>
          {waiting.length === 1 ? "1 execution waits" : `${waiting.length} executions wait`} to enter:{" "}
          {waiting.map((w) => (
            <code key={w.pipelineExecutionId}>{w.pipelineExecutionId.slice(0, 8)} </code>
          ))}
        </span>
      )}
    </div>
  );
}

function Stage(props: {
  may: (action: string, action_name?: string) => ReturnType<Permissions>;
  name: string;
  declaration: StageDeclaration;
  state: StageState | undefined;
  onOpen: (open: Open) => void;
}) {
  const { declaration, state } = props;
  const latest = state?.latestExecution;
  // runOrder groups, in order; the actions of a group side by side.
  const groups = new Map<number, ActionDeclaration[]>();
  for (const action of declaration.actions) {
    const order = action.runOrder ?? 1;
    groups.set(order, [...(groups.get(order) ?? []), action]);
  }
  const orders = [...groups.keys()].sort((a, b) => a - b);
  return (
    <article class={`stage ${latest?.status ?? ""}`} aria-label={`Stage ${declaration.name}`}>
      <header>
        <h2>{declaration.name}</h2>
        <StatusBadge status={latest?.status} />
        {latest && (
          <a class="execution-id" href={href("pipelines", props.name, "executions", latest.pipelineExecutionId)}>
            {latest.pipelineExecutionId.slice(0, 8)}
          </a>
        )}
        {latest?.status === "Failed" && (
          <Guarded
            permission={props.may("codepipeline:RetryStageExecution")}
            class="small"
            onClick={() => props.onOpen({ kind: "retry", stage: declaration.name, executionId: latest.pipelineExecutionId })}
          >
            Retry
          </Guarded>
        )}
      </header>
      {orders.map((order) => (
        <div class="run-order" key={order} role="group" aria-label={`Run order ${order}`}>
          {(groups.get(order) ?? []).map((action) => (
            <Action
              may={(what) => props.may(what, action.name)}
              key={action.name}
              name={props.name}
              stage={declaration.name}
              declaration={action}
              state={state?.actionStates.find((a) => a.actionName === action.name)}
              onOpen={props.onOpen}
            />
          ))}
        </div>
      ))}
    </article>
  );
}

function Action(props: {
  may: (action: string) => ReturnType<Permissions>;
  name: string;
  stage: string;
  declaration: ActionDeclaration;
  state: ActionState | undefined;
  onOpen: (open: Open) => void;
}) {
  const { declaration } = props;
  const latest = props.state?.latestExecution;
  const waiting = declaration.actionTypeId.category === "Approval" && latest?.status === "InProgress" && latest.token;
  return (
    <div class={`action ${latest?.status ?? ""}`} role="group" aria-label={`Action ${declaration.name}`}>
      <div class="action-head">
        <strong>{declaration.name}</strong>
        <small>{declaration.actionTypeId.provider}</small>
      </div>
      <StatusBadge status={latest?.status} />
      {latest?.summary && <p class="summary">{latest.summary}</p>}
      {latest?.errorDetails && (
        <p class="error-details">
          <code>{latest.errorDetails.code}</code> {latest.errorDetails.message}
        </p>
      )}
      {props.state?.currentRevision && (
        <p class="revision" title={props.state.currentRevision.revisionId}>
          <span class="muted">Revision</span>{" "}
          {props.state.currentRevision.revisionSummary || <code>{props.state.currentRevision.revisionId.slice(0, 12)}</code>}
        </p>
      )}
      {latest && (
        <p class="times">
          Started <When at={latest.startTime} />
          {latest.endTime ? ` · took ${duration(latest.startTime, latest.endTime)}` : " · running"}
        </p>
      )}
      <div class="links">
        {latest && declaration.actionTypeId.category !== "Approval" && (
          <button
            type="button"
            class="link"
            onClick={() => props.onOpen({ kind: "log", action: declaration.name, actionExecutionId: latest.actionExecutionId })}
            aria-label={`Log of ${declaration.name}`}
          >
            Log
          </button>
        )}
        {latest?.externalExecutionUrl && <ExternalLink href={latest.externalExecutionUrl}>Details</ExternalLink>}
        {declaration.actionTypeId.category === "Source" && declaration.actionTypeId.provider === "Upload" && (
          <UploadRevision name={props.name} action={declaration.name} permission={props.may("codepipeline:PutSourceRevision")} />
        )}
        {waiting && (
          <Guarded
            permission={props.may("codepipeline:PutApprovalResult")}
            class="primary small"
            onClick={() =>
              props.onOpen({
                kind: "review",
                stage: props.stage,
                action: declaration.name,
                token: latest.token ?? "",
                summary: latest.summary,
              })
            }
          >
            Review
          </Guarded>
        )}
      </div>
    </div>
  );
}

function Opened(props: { name: string; open: Open; declaration: Declaration; onClose: () => void }) {
  const { open, name, onClose } = props;
  switch (open.kind) {
    case "release":
      return <ReleaseChange name={name} declaration={props.declaration} onClose={onClose} />;
    case "stop":
      return <StopExecution name={name} executionId={open.executionId} onClose={onClose} />;
    case "retry":
      return <RetryStage name={name} stage={open.stage} executionId={open.executionId} onClose={onClose} />;
    case "disable":
      return <DisableTransition name={name} stage={open.stage} onClose={onClose} />;
    case "review":
      return <Review name={name} open={open} onClose={onClose} />;
    case "log":
      return <Log name={name} action={open.action} id={open.actionExecutionId} onClose={onClose} />;
    case "copy":
      return <CopyPipeline name={name} onClose={onClose} />;
  }
}

function ReleaseChange({ name, declaration, onClose }: { name: string; declaration: Declaration; onClose: () => void }) {
  const declared = declaration.variables ?? [];
  const sources = declaration.stages.flatMap((stage) =>
    stage.actions.filter((a) => a.actionTypeId.category === "Source" && ["Git", "Upload"].includes(a.actionTypeId.provider)),
  );
  const [values, setValues] = useState<Record<string, string>>({});
  const [revisions, setRevisions] = useState<Record<string, string>>({});
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const variables = Object.entries(values)
        .filter(([, v]) => v !== "")
        .map(([variable, v]) => ({ name: variable, value: v }));
      const sourceRevisions = sources
        .filter((a) => (revisions[a.name] ?? "").trim() !== "")
        .map((a) => ({
          actionName: a.name,
          revisionType: a.actionTypeId.provider === "Git" ? ("COMMIT_ID" as const) : ("S3_OBJECT_VERSION_ID" as const),
          revisionValue: (revisions[a.name] ?? "").trim(),
        }));
      await must(
        api.POST("/v1/pipelines/{name}/executions", {
          params: { path: { name } },
          body: { ...(variables.length ? { variables } : {}), ...(sourceRevisions.length ? { sourceRevisions } : {}) },
        }),
      );
      onClose();
    });
  };
  return (
    <Dialog title="Release change" onClose={onClose}>
      <form onSubmit={submit}>
        <p>Runs the pipeline again with each source's latest revision, or the one you name.</p>
        {sources.length > 0 && (
          <fieldset>
            <legend>Source revisions (empty: the latest)</legend>
            {sources.map((a) => (
              <Field
                key={a.name}
                label={`Revision of ${a.name}`}
                hint={a.actionTypeId.provider === "Git" ? "A commit id" : "An earlier upload's revision id (its SHA-256)"}
              >
                <input
                  name={`revision-${a.name}`}
                  spellcheck={false}
                  value={revisions[a.name] ?? ""}
                  onInput={(e) => setRevisions({ ...revisions, [a.name]: value(e) })}
                />
              </Field>
            ))}
          </fieldset>
        )}
        {declared.length > 0 && (
          <fieldset>
            <legend>Variables (empty: the default)</legend>
            {declared.map((v) => (
              <Field key={v.name} label={v.name} hint={v.description ?? (v.defaultValue ? `Default: ${v.defaultValue}` : undefined)}>
                <input
                  name={v.name}
                  placeholder={v.defaultValue ?? ""}
                  value={values[v.name] ?? ""}
                  onInput={(e) => setValues({ ...values, [v.name]: value(e) })}
                />
              </Field>
            ))}
          </fieldset>
        )}
        <Failure error={action.error} />
        <DialogButtons onCancel={onClose} busy={action.busy} label="Release" />
      </form>
    </Dialog>
  );
}

function StopExecution({ name, executionId, onClose }: { name: string; executionId: string; onClose: () => void }) {
  const [reason, setReason] = useState("");
  const action = useAction();
  const stop = (abandon: boolean) =>
    void action.run(async () => {
      await must(
        api.POST("/v1/pipelines/{name}/executions/{id}/stop", {
          params: { path: { name, id: executionId } },
          body: { abandon, ...(reason ? { reason } : {}) },
        }),
      );
      onClose();
    });
  return (
    <Dialog title="Stop execution" onClose={onClose}>
      <p>
        Execution <code>{executionId}</code>
      </p>
      <Field label="Reason" hint="Optional, up to 200 characters">
        <textarea name="reason" maxLength={200} value={reason} onInput={(e) => setReason(value(e))} />
      </Field>
      <Failure error={action.error} />
      <div class="buttons">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="button" disabled={action.busy} onClick={() => stop(false)}>
          Stop and wait
        </button>
        <button type="button" class="danger" disabled={action.busy} onClick={() => stop(true)}>
          Stop and abandon
        </button>
      </div>
    </Dialog>
  );
}

function RetryStage(props: { name: string; stage: string; executionId: string; onClose: () => void }) {
  const action = useAction();
  const retry = (retryMode: "FAILED_ACTIONS" | "ALL_ACTIONS") =>
    void action.run(async () => {
      await must(
        api.POST("/v1/pipelines/{name}/stages/{stage}/retry", {
          params: { path: { name: props.name, stage: props.stage } },
          body: { pipelineExecutionId: props.executionId, retryMode },
        }),
      );
      props.onClose();
    });
  return (
    <Dialog title={`Retry ${props.stage}`} onClose={props.onClose}>
      <p>Runs the stage again in execution {props.executionId.slice(0, 8)}.</p>
      <Failure error={action.error} />
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button type="button" disabled={action.busy} onClick={() => retry("ALL_ACTIONS")}>
          Retry all actions
        </button>
        <button type="button" class="primary" disabled={action.busy} onClick={() => retry("FAILED_ACTIONS")}>
          Retry failed actions
        </button>
      </div>
    </Dialog>
  );
}

function DisableTransition(props: { name: string; stage: string; onClose: () => void }) {
  const [reason, setReason] = useState("");
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await must(
        api.POST("/v1/pipelines/{name}/stages/{stage}/transitions/inbound/disable", {
          params: { path: { name: props.name, stage: props.stage } },
          body: { reason },
        }),
      );
      props.onClose();
    });
  };
  return (
    <Dialog title={`Disable transition into ${props.stage}`} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label="Reason" hint="1–300 characters: letters, digits, spaces and !@().*?-">
          <input name="reason" required maxLength={300} value={reason} onInput={(e) => setReason(value(e))} />
        </Field>
        <Failure error={action.error} />
        <DialogButtons onCancel={props.onClose} busy={action.busy} label="Disable" />
      </form>
    </Dialog>
  );
}

function Review(props: { name: string; open: Extract<Open, { kind: "review" }>; onClose: () => void }) {
  const { open } = props;
  const [comments, setComments] = useState("");
  const action = useAction();
  const decide = (status: "Approved" | "Rejected") =>
    void action.run(async () => {
      await must(
        api.POST("/v1/pipelines/{name}/stages/{stage}/actions/{action}/approval", {
          params: { path: { name: props.name, stage: open.stage, action: open.action } },
          body: { token: open.token, result: { status, summary: comments } },
        }),
      );
      props.onClose();
    });
  return (
    <Dialog title={`Review ${open.action}`} onClose={props.onClose}>
      {open.summary && <p class="summary">{open.summary}</p>}
      <Field label="Comments" hint="Up to 512 characters">
        <textarea name="comments" maxLength={512} value={comments} onInput={(e) => setComments(value(e))} />
      </Field>
      <Failure error={action.error} />
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button type="button" class="danger" disabled={action.busy} onClick={() => decide("Rejected")}>
          Reject
        </button>
        <button type="button" class="primary" disabled={action.busy} onClick={() => decide("Approved")}>
          Approve
        </button>
      </div>
    </Dialog>
  );
}

function Log(props: { name: string; action: string; id: string; onClose: () => void }) {
  const [text, setText] = useState("");
  const [ended, setEnded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    // The answer streams while the action runs: each piece is shown as it comes.
    const stop = new AbortController();
    setText("");
    setEnded(false);
    stream(
      `/v1/pipelines/${encodeURIComponent(props.name)}/action-executions/${encodeURIComponent(props.id)}/log`,
      (piece) => setText((before) => before + piece),
      stop.signal,
    ).then(
      () => setEnded(true),
      (e) => !stop.signal.aborted && setError(e),
    );
    return () => stop.abort();
  }, [props.id]);
  return (
    <Dialog title={`Log of ${props.action}`} onClose={props.onClose}>
      <Failure error={error} />
      <pre class="log" tabIndex={0} aria-label="Log text" aria-busy={!ended}>
        {text}
      </pre>
      <p class="muted small" role="status">
        {ended ? "The log is complete." : "Following the log as the action runs…"}
      </p>
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
    </Dialog>
  );
}

/** An archive (.tar.gz, .tar or .zip) sent as the Upload source's next revision: it starts an execution. */
function UploadRevision({ name, action, permission }: { name: string; action: string; permission: ReturnType<Permissions> }) {
  const upload = useAction();
  const [sent, setSent] = useState<string | null>(null);
  const send = (e: Event) => {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    void upload.run(async () => {
      const started = await must(
        api.POST("/v1/pipelines/{name}/sources/{action}/revisions", {
          params: { path: { name, action }, header: { "x-pw-revision-summary": file.name.slice(0, 200) } },
          body: file,
          bodySerializer: (body) => body,
          headers: { "content-type": "application/octet-stream" },
        }),
      );
      setSent(`Uploaded ${file.name}: execution ${started.pipelineExecutionId.slice(0, 8)}`);
      input.value = "";
    });
  };
  return (
    <>
      <label
        class={permission && !permission.allowed ? "button small upload not-allowed" : "button small upload"}
        title={permission && !permission.allowed ? (permission.message ?? "Not allowed") : undefined}
      >
        Upload revision{permission && !permission.allowed && <span class="refused-mark" aria-hidden="true"> · not allowed</span>}
        <input type="file" class="visually-hidden" accept=".tar.gz,.tgz,.tar,.zip" onChange={send} disabled={upload.busy} />
      </label>
      {sent && <span role="status">{sent}</span>}
      <Failure error={upload.error} />
    </>
  );
}
