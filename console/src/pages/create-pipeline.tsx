// Create a pipeline from a JSON or YAML declaration (typed, pasted, or read
// from a file such as examples/upload-build-approve-deploy.json), edit one
// (the version it was opened at is sent, so a change made meanwhile is
// refused, not overwritten), or copy one under a new name. The service's
// validation errors are listed at their path.
import { useEffect, useState } from "preact/hooks";
import { ApiFailure, api, failure, must, type Schemas } from "../api";
import { go, href } from "../app";
import { Dialog, DialogButtons, Failure, Field, useAction, value } from "../ui";

type Format = "json" | "yaml";

/** Sends a declaration as the text it is: JSON as JSON, anything else as YAML (the service reads both). */
async function sendDeclaration(text: string, name?: string): Promise<string> {
  let json = true;
  try {
    JSON.parse(text);
  } catch {
    json = false;
  }
  const headers = { "content-type": json ? "application/json" : "application/yaml" };
  // The declaration goes as written: the service, not the console, says what is wrong with it.
  const bodySerializer = () => text;
  const { data, error, response } =
    name === undefined
      ? await api.POST("/v1/pipelines", { body: {} as Schemas["CreatePipelineRequest"], bodySerializer, headers })
      : await api.PUT("/v1/pipelines/{name}", {
          params: { path: { name } },
          body: {} as Schemas["UpdatePipelineRequest"],
          bodySerializer,
          headers,
        });
  if (!data) throw failure(response, error);
  return data.pipeline.name;
}

/** A pipeline's declaration as text, in the format asked for. */
async function declarationText(name: string, format: Format): Promise<string> {
  if (format === "json") {
    const found = await must(api.GET("/v1/pipelines/{name}", { params: { path: { name } } }));
    return JSON.stringify({ pipeline: found.pipeline }, null, 2);
  }
  const { data, error, response } = await api.GET("/v1/pipelines/{name}", {
    params: { path: { name } },
    headers: { accept: "application/yaml" },
    parseAs: "text",
  });
  if (!response.ok) throw failure(response, error);
  // GetPipeline's metadata is the service's (ARN, times), which an update
  // does not take: the editor shows the declaration alone, as in JSON.
  return (data as unknown as string).replace(/^metadata:\n(?:[ \t]+.*(?:\n|$))*/m, "");
}

export function CreatePipelinePage() {
  const [text, setText] = useState("");
  const action = useAction();
  const load = async (e: Event) => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file) setText(await file.text());
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => go("pipelines", await sendDeclaration(text)));
  };
  return (
    <section aria-labelledby="create-pipeline">
      <h1 id="create-pipeline">Create pipeline</h1>
      <p>
        A declaration in JSON or YAML: <code>{"{pipeline: {name, stages: [...]}}"}</code>, as GetPipeline answers it.
      </p>
      <form onSubmit={submit}>
        <Field label="Load from a file">
          <input type="file" name="file" accept=".json,.yaml,.yml,application/json,application/yaml" onChange={(e) => void load(e)} />
        </Field>
        <Field label="Declaration">
          <textarea
            name="declaration"
            class="editor"
            rows={24}
            spellcheck={false}
            required
            value={text}
            onInput={(e) => setText(value(e))}
          />
        </Field>
        <Failure error={action.error} />
        <div class="buttons">
          <button type="submit" class="primary" disabled={action.busy}>
            Create pipeline
          </button>
        </div>
      </form>
    </section>
  );
}

export function EditPipelinePage({ name }: { name: string }) {
  const [format, setFormat] = useState<Format>("json");
  const [text, setText] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const action = useAction();

  const load = (wanted: Format) => {
    setText(null);
    setLoadError(null);
    action.clear();
    declarationText(name, wanted).then(setText, setLoadError);
  };
  useEffect(() => load(format), [name, format]);

  const submit = (e: Event) => {
    e.preventDefault();
    if (text === null) return;
    void action.run(async () => go("pipelines", await sendDeclaration(text, name)));
  };
  const conflict = action.error instanceof ApiFailure && action.error.status === 409;
  return (
    <section aria-labelledby="edit-pipeline">
      <p class="crumbs">
        <a href={href("pipelines")}>Pipelines</a> › <a href={href("pipelines", name)}>{name}</a>
      </p>
      <h1 id="edit-pipeline">Edit {name}</h1>
      <p>
        The declaration keeps the <code>version</code> it was opened at: if someone changes the pipeline meanwhile, saving is refused
        rather than overwriting their change.
      </p>
      <label class="inline">
        Format{" "}
        <select aria-label="Format" value={format} onChange={(e) => setFormat(value(e) as Format)}>
          <option value="json">JSON</option>
          <option value="yaml">YAML</option>
        </select>
      </label>
      <Failure error={loadError} />
      {text === null && !loadError && <p aria-busy="true">Loading…</p>}
      {text !== null && (
        <form onSubmit={submit}>
          <Field label="Declaration">
            <textarea
              name="declaration"
              class="editor"
              rows={28}
              spellcheck={false}
              required
              value={text}
              onInput={(e) => setText(value(e))}
            />
          </Field>
          {conflict ? (
            <div class="failure" role="alert">
              <strong>Changed since you opened it</strong>
              <span>
                Someone saved a newer version of {name} after you opened this editor. Load the latest version and make your change again
                (copy your text first if you need it).
              </span>
              <div>
                <button type="button" onClick={() => load(format)}>
                  Load the latest version
                </button>
              </div>
            </div>
          ) : (
            <Failure error={action.error} />
          )}
          <div class="buttons">
            <a class="button" href={href("pipelines", name)}>
              Cancel
            </a>
            <button type="submit" class="primary" disabled={action.busy}>
              Save
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

/** GetPipeline → CreatePipeline under a new name, in one step. */
export function CopyPipeline({ name, onClose }: { name: string; onClose: () => void }) {
  const [newName, setNewName] = useState(`${name}-copy`);
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const found = await must(api.GET("/v1/pipelines/{name}", { params: { path: { name } } }));
      const { version: _version, ...pipeline } = found.pipeline;
      const made = await must(api.POST("/v1/pipelines", { body: { pipeline: { ...pipeline, name: newName.trim() } } }));
      onClose();
      go("pipelines", made.pipeline.name);
    });
  };
  return (
    <Dialog title={`Copy ${name}`} onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="New pipeline name" hint="1–100 of A-Za-z0-9.@-_, unique in the account">
          <input name="name" required value={newName} onInput={(e) => setNewName(value(e))} />
        </Field>
        <Failure error={action.error} />
        <DialogButtons onCancel={onClose} busy={action.busy} label="Copy" />
      </form>
    </Dialog>
  );
}
