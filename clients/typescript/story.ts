// The user story, through the TypeScript client generated from the OpenAPI
// document (clients/generate.sh: openapi-typescript's types, openapi-fetch's
// calls): no raw HTTP, no casts.
//
// Two accounts; in A a read-only user refused a change; A's role `approver`,
// trusting B with an ExternalId, assumed by B's user `releaser`; a pipeline
// (declared here, typed) with an uploaded source, a build, a manual approval
// (given by B in A's role) and a deploy, run to success; the build's
// artifact downloaded; LookupEvents finding the approval and the refusal.
//
//     npm run build && PIPEWRIGHT_URL=http://127.0.0.1:8080 npm run story

import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type Schemas = components["schemas"];
type Api = ReturnType<typeof createClient<paths>>;

const URL = process.env["PIPEWRIGHT_URL"] ?? "http://127.0.0.1:8080";
const PASSWORD = "correct horse battery";
const RUN = randomUUID().slice(0, 8);
const SITE = new globalThis.URL("../../../examples/site/", import.meta.url);

class StoryFailed extends Error {}

function step(text: string): void {
  console.log(`typescript story: ${text}`);
}

/** The answer of a call that must succeed. */
function expect<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.data === undefined) {
    throw new StoryFailed(`HTTP ${answer.response.status}: ${JSON.stringify(answer.error)}`);
  }
  return answer.data;
}

/** A call that must succeed, whose answer has no body. */
function succeeded(answer: { error?: unknown; response: Response }, what: string): void {
  if (!answer.response.ok) throw new StoryFailed(`${what}: HTTP ${answer.response.status}: ${JSON.stringify(answer.error)}`);
}

/** The error of a call that must be refused. */
function refused(
  answer: { error?: Schemas["ErrorBody"] | undefined; response: Response },
  status: number,
  code: Schemas["ErrorCode"],
): Schemas["ErrorBody"] {
  const error = answer.error;
  if (answer.response.status !== status || error === undefined || error.code !== code) {
    throw new StoryFailed(`expected ${status} ${code}, got ${answer.response.status}: ${JSON.stringify(error)}`);
  }
  return error;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, seconds = 120): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const found = await probe();
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new StoryFailed(`timed out waiting for ${what}`);
}

function client(token?: string): Api {
  return createClient<paths>({ baseUrl: URL, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function signedIn(account: string, userName: string): Promise<Api> {
  const tokens = expect(
    await client().POST("/v1/auth/sign-in", { body: { account, userName, password: PASSWORD } }),
  );
  return client(tokens.accessToken);
}

async function newAccount(alias: string): Promise<string> {
  // Sign-up is open, or needs the operator's token (PIPEWRIGHT_SIGNUP).
  const operator = client(process.env["PIPEWRIGHT_OPERATOR_TOKEN"]);
  const created = expect(await operator.POST("/v1/accounts", { body: { alias, rootPassword: PASSWORD } }));
  return created.accountId;
}

// A tar archive's 512-byte header for a regular file (ustar).
function tarHeader(name: string, size: number): Uint8Array {
  const header = new Uint8Array(512);
  const put = (text: string, offset: number) => header.set(new TextEncoder().encode(text), offset);
  put(name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(size.toString(8).padStart(11, "0") + "\0", 124);
  put(Math.floor(Date.now() / 1000).toString(8).padStart(11, "0") + "\0", 136);
  put("        ", 148);
  put("0", 156);
  put("ustar\u000000", 257);
  const sum = header.reduce((total, byte) => total + byte, 0);
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return header;
}

/** examples/site as a gzipped tar, made in memory. */
function siteArchive(): Blob {
  const parts: Uint8Array[] = [];
  for (const name of readdirSync(SITE).sort()) {
    const bytes = readFileSync(new globalThis.URL(name, SITE));
    parts.push(tarHeader(name, bytes.length), bytes, new Uint8Array((512 - (bytes.length % 512)) % 512));
  }
  parts.push(new Uint8Array(1024));
  return new Blob([gzipSync(Buffer.concat(parts))]);
}

/** The names of a tar archive's entries. */
function tarNames(archive: Uint8Array): string[] {
  const names: string[] = [];
  for (let at = 0; at + 512 <= archive.length; ) {
    const header = archive.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) break;
    const text = (from: number, length: number) =>
      new TextDecoder().decode(header.subarray(from, from + length)).replace(/\0.*$/s, "");
    const prefix = text(345, 155);
    names.push(prefix ? `${prefix}/${text(0, 100)}` : text(0, 100));
    const size = parseInt(text(124, 12).trim() || "0", 8);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

const SITE_PIPELINE: Schemas["CreatePipelineRequest"] = {
  pipeline: {
    name: "site",
    variables: [{ name: "environment", defaultValue: "staging", description: "where Deploy ships to" }],
    stages: [
      {
        name: "Source",
        actions: [
          {
            name: "Upload",
            actionTypeId: { category: "Source", owner: "Pipewright", provider: "Upload", version: "1" },
            outputArtifacts: [{ name: "SourceOut" }],
          },
        ],
      },
      {
        name: "Build",
        actions: [
          {
            name: "Package",
            actionTypeId: { category: "Build", owner: "Pipewright", provider: "Shell", version: "1" },
            configuration: {
              commands: 'mkdir -p dist\ncp index.html dist/\necho "VERSION=ts-1" >> "$PW_OUTPUT_VARIABLES"',
              outputFiles: "dist/**",
            },
            inputArtifacts: [{ name: "SourceOut" }],
            outputArtifacts: [{ name: "BuildOut" }],
            namespace: "Build",
          },
        ],
      },
      {
        name: "Approve",
        actions: [
          {
            name: "Review",
            actionTypeId: { category: "Approval", owner: "Pipewright", provider: "Manual", version: "1" },
            configuration: { customData: "Ship build #{Build.VERSION} to #{variables.environment}?" },
          },
        ],
      },
      {
        name: "Deploy",
        actions: [
          {
            name: "Ship",
            actionTypeId: { category: "Deploy", owner: "Pipewright", provider: "Shell", version: "1" },
            configuration: { commands: "echo shipping #{Build.VERSION} to #{variables.environment}\nls -l dist" },
            inputArtifacts: [{ name: "BuildOut" }],
          },
        ],
      },
    ],
  },
};

async function main(): Promise<void> {
  step("two accounts");
  const a = await newAccount(`ts-a-${RUN}`);
  const b = await newAccount(`ts-b-${RUN}`);
  const aRoot = await signedIn(a, "root");
  const bRoot = await signedIn(b, "root");

  step("A's read-only user is refused a change");
  expect(await aRoot.POST("/v1/iam/users", { body: { userName: "reader" } }));
  expect(
    await aRoot.PUT("/v1/iam/users/{userName}/login-profile", {
      params: { path: { userName: "reader" } },
      body: { password: PASSWORD },
    }),
  );
  succeeded(
    await aRoot.POST("/v1/iam/users/{userName}/attached-policies", {
      params: { path: { userName: "reader" } },
      body: { policyArn: "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess" },
    }),
    "attaching the read-only policy",
  );
  const reader = await signedIn(a, "reader");

  const pipeline = expect(await aRoot.POST("/v1/pipelines", { body: SITE_PIPELINE })).pipeline.name;
  const got = expect(await reader.GET("/v1/pipelines/{name}", { params: { path: { name: pipeline } } }));
  const arn = got.metadata.pipelineArn;
  const refusal = refused(
    await reader.DELETE("/v1/pipelines/{name}", { params: { path: { name: pipeline } } }),
    403,
    "AccessDeniedException",
  );
  step(`refused: ${refusal.message}`);

  step("A's role `approver` trusts B with an ExternalId; B's user releaser assumes it");
  const trust: Schemas["PolicyDocument"] = {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Principal: { PW: `arn:pw:iam::${b}:root` },
        Action: "sts:AssumeRole",
        Condition: { StringEquals: { "sts:ExternalId": `ext-${RUN}` } },
      },
    ],
  };
  const role = expect(
    await aRoot.POST("/v1/iam/roles", { body: { roleName: "approver", assumeRolePolicyDocument: trust } }),
  ).role;
  const mayApprove: Schemas["PolicyDocument"] = {
    Version: "2012-10-17",
    Statement: {
      Effect: "Allow",
      Action: ["codepipeline:GetPipelineState", "codepipeline:PutApprovalResult"],
      Resource: [arn, `${arn}/Approve/Review`],
    },
  };
  succeeded(
    await aRoot.PUT("/v1/iam/roles/{roleName}/policies/{policyName}", {
      params: { path: { roleName: "approver", policyName: "approve" } },
      body: { policyDocument: mayApprove },
    }),
    "the role's policy",
  );
  expect(await bRoot.POST("/v1/iam/users", { body: { userName: "releaser" } }));
  expect(
    await bRoot.PUT("/v1/iam/users/{userName}/login-profile", {
      params: { path: { userName: "releaser" } },
      body: { password: PASSWORD },
    }),
  );
  succeeded(
    await bRoot.PUT("/v1/iam/users/{userName}/policies/{policyName}", {
      params: { path: { userName: "releaser", policyName: "assume-approver" } },
      body: { policyDocument: { Version: "2012-10-17", Statement: { Effect: "Allow", Action: "sts:AssumeRole", Resource: role.arn } } },
    }),
    "the user's policy",
  );
  const releaser = await signedIn(b, "releaser");
  refused(
    await releaser.POST("/v1/sts/assume-role", {
      body: { roleArn: role.arn, roleSessionName: "release", externalId: "guess" },
    }),
    403,
    "AccessDeniedException",
  );
  const assumed = expect(
    await releaser.POST("/v1/sts/assume-role", {
      body: { roleArn: role.arn, roleSessionName: "release", externalId: `ext-${RUN}` },
    }),
  );
  const approver = client(assumed.credentials.accessToken);
  const me = expect(await approver.GET("/v1/auth/whoami"));
  step(`B acts in A as ${me.arn}`);

  step("an archive uploaded as the Upload source's revision");
  const upload = expect(
    await aRoot.POST("/v1/pipelines/{name}/sources/{action}/revisions", {
      params: { path: { name: pipeline, action: "Upload" }, header: { "x-pw-revision-summary": "the typescript story's page" } },
      body: siteArchive(),
      bodySerializer: (body) => body,
      headers: { "content-type": "application/octet-stream" },
    }),
  );
  const execution = upload.pipelineExecutionId;

  const token = await eventually("the build, then the approval to wait", async () => {
    const state = expect(await approver.GET("/v1/pipelines/{name}/state", { params: { path: { name: pipeline } } }));
    const review = state.stageStates.find((s) => s.stageName === "Approve")?.actionStates[0]?.latestExecution;
    if (review && review.pipelineExecutionId === execution && review.status === "InProgress" && review.token) {
      return review.token;
    }
    return undefined;
  });
  step("the build ran; B, in A's role, approves");
  expect(
    await approver.POST("/v1/pipelines/{name}/stages/{stage}/actions/{action}/approval", {
      params: { path: { name: pipeline, stage: "Approve", action: "Review" } },
      body: { token, result: { status: "Approved", summary: "ship it" } },
    }),
  );

  const outcome = await eventually("the deploy", async () => {
    const got = expect(
      await aRoot.GET("/v1/pipelines/{name}/executions/{id}", { params: { path: { name: pipeline, id: execution } } }),
    );
    const status = got.pipelineExecution.status;
    return status === "InProgress" || status === "Stopping" ? undefined : status;
  });
  if (outcome !== "Succeeded") throw new StoryFailed(`the execution ended ${outcome}`);
  step("the execution succeeded");

  step("the build's artifact downloaded");
  const actions = expect(
    await reader.GET("/v1/pipelines/{name}/action-executions", {
      params: { path: { name: pipeline }, query: { pipelineExecutionId: execution } },
    }),
  );
  const build = actions.actionExecutionDetails.find((d) => d.actionName === "Package");
  if (!build || build.status !== "Succeeded") throw new StoryFailed(`Package ended ${build?.status}`);
  const artifact = build.output.outputArtifacts[0]?.name;
  if (!artifact) throw new StoryFailed("Package made no artifact");
  const archive = expect(
    await reader.GET("/v1/pipelines/{name}/action-executions/{id}/artifacts/{artifact}", {
      params: { path: { name: pipeline, id: build.actionExecutionId, artifact } },
      parseAs: "arrayBuffer",
    }),
  );
  const names = tarNames(new Uint8Array(archive));
  if (!names.some((n) => n.endsWith("index.html"))) throw new StoryFailed(`the artifact holds ${names}`);
  step(`${artifact} holds ${JSON.stringify(names)}`);

  step("LookupEvents finds the approval and the refusal");
  const found = async (eventName: string, errorCode?: string): Promise<Schemas["AuditEvent"] | undefined> => {
    const page = expect(await aRoot.GET("/v1/audit/events", { params: { query: { eventName, errorCode } } }));
    return page.events[0];
  };
  const approval = await eventually("the approval's event", () => found("PutApprovalResult"), 30);
  if (approval.userIdentity.type !== "AssumedRole" || approval.httpStatus !== 200) {
    throw new StoryFailed(`the approval was recorded as ${JSON.stringify(approval)}`);
  }
  step(`PutApprovalResult by ${approval.userIdentity.arn} (from account ${approval.userIdentity.sourceAccount})`);
  const denial = await eventually("the refusal's event", () => found("DeletePipeline", "AccessDeniedException"), 30);
  if (denial.userIdentity.userName !== "reader" || denial.httpStatus !== 403) {
    throw new StoryFailed(`the refusal was recorded as ${JSON.stringify(denial)}`);
  }
  step(`DeletePipeline refused to ${denial.userIdentity.arn}: ${denial.errorCode}`);
  step("done");
}

main().catch((failure: unknown) => {
  console.error(`typescript story FAILED: ${failure instanceof Error ? failure.message : String(failure)}`);
  process.exit(1);
});
