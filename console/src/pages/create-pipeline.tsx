// Create a pipeline from a JSON or YAML declaration (typed, pasted, or read
// from a file such as examples/upload-build-approve-deploy.json); the
// service's validation errors are listed at their path.
import { useState } from "preact/hooks";
import { api, failure, type Schemas } from "../api";
import { go } from "../app";
import { Failure, Field, useAction, value } from "../ui";

/** Sends a declaration as the text it is: JSON as JSON, anything else as YAML (the service reads both). */
export async function sendDeclaration(text: string, method: "POST" | "PUT", name?: string): Promise<string> {
  let json = true;
  try {
    JSON.parse(text);
  } catch {
    json = false;
  }
  const headers = { "content-type": json ? "application/json" : "application/yaml" };
  // The declaration goes as written: the service, not the console, says what is wrong with it.
  const body = {} as Schemas["CreatePipelineRequest"];
  const bodySerializer = () => text;
  const { data, error, response } =
    method === "POST"
      ? await api.POST("/v1/pipelines", { body, bodySerializer, headers })
      : await api.PUT("/v1/pipelines/{name}", { params: { path: { name: name ?? "" } }, body: body as never, bodySerializer, headers });
  if (!data) throw failure(response, error);
  return (data as { pipeline: { name: string } }).pipeline.name;
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
    void action.run(async () => go("pipelines", await sendDeclaration(text, "POST")));
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
