// The console in a real browser (Debian's Chromium, driven by
// playwright-core) against a running service (PIPEWRIGHT_URL): what a
// person does with it, checked as they would see it. tests/it/console.rs
// runs this against a spawned service; by hand:
//   PIPEWRIGHT_URL=http://127.0.0.1:8080 node --test console/tests/
// Screenshots of the pipeline page go to console/test-results/.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BASE = (process.env.PIPEWRIGHT_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RESULTS = fileURLToPath(new URL("../test-results/", import.meta.url));
const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
const PASSWORD = "correct horse battery staple";
const LIVE = 60_000;

mkdirSync(RESULTS, { recursive: true });

/** The API, for what the test arranges outside the console (another account, a user). */
async function call(method, path, token, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function token(account, userName) {
  return (await call("POST", "/v1/auth/sign-in", undefined, { account, userName, password: PASSWORD })).accessToken;
}

let browser;
const problems = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** Every open window's screen, when a test fails: what the person would have seen. */
async function failed(t) {
  let n = 0;
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: `${RESULTS}failed-${t}-${++n}.png`, fullPage: true }).catch(() => undefined);
    }
  }
}

/** A test that keeps the screens it failed on, and closes its windows. */
function browserTest(name, body) {
  test(name, async () => {
    try {
      await body();
    } catch (e) {
      await failed(name.split(" ").slice(0, 3).join("-"));
      throw e;
    } finally {
      for (const context of browser.contexts()) await context.close();
    }
  });
}

/** A window of its own (its own session), whose console errors fail the test. */
async function window(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("console", (message) => {
    // A refused call is the browser's network error line, not the console's.
    if (message.type() === "error" && !/status of (4\d\d)/.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
  await page.goto(`${BASE}/`);
  return page;
}

async function signIn(page, account, userName, password = PASSWORD) {
  const form = page.getByRole("form", { name: "Sign in" });
  await form.getByLabel("Account").fill(account);
  await form.getByLabel("User name").fill(userName);
  await form.getByLabel("Password").fill(password);
  await form.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Pipelines" }).waitFor();
}

const stage = (page, name) => page.getByRole("article", { name: `Stage ${name}` });
const action = (page, name) => page.getByRole("group", { name: `Action ${name}` });
/** A stage's own status (its header's), as opposed to its actions'. */
const stageStatus = (page, name, status) => stage(page, name).locator("header").getByText(status, { exact: true });

for (const old of readdirSync(RESULTS)) if (old.startsWith("failed-")) rmSync(`${RESULTS}${old}`);

browserTest("a person signs up, creates the example pipeline and takes it to deployed with the console alone", async () => {
  const alias = `console-${RUN}`;
  const page = await window();

  // Sign up, then sign in as the account's root.
  await page.getByRole("button", { name: "Create an account" }).click();
  const signUp = page.getByRole("form", { name: "Create an account" });
  await signUp.getByLabel("Account alias").fill(alias);
  await signUp.getByLabel("Root password").fill(PASSWORD);
  await signUp.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("status").filter({ hasText: "created" }).waitFor();
  await signIn(page, alias, "root");
  await assert.doesNotReject(page.getByLabel("Signed in as").filter({ hasText: `root @ ${alias}` }).waitFor());

  // The example pipeline, from its file.
  await page.getByRole("link", { name: "Create pipeline" }).click();
  await page.getByLabel("Load from a file").setInputFiles(`${ROOT}examples/upload-build-approve-deploy.json`);
  await page.getByRole("button", { name: "Create pipeline" }).click();
  await page.getByRole("heading", { name: "site" }).waitFor();
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();

  // A page that is never reloaded from here on: the marker would be gone.
  await page.evaluate(() => {
    window.__notReloaded = true;
  });

  // A read-only user, made in the console (in a window of its own, so
  // that the pipeline's page is never left or reloaded).
  const rootToken = await token(alias, "root");
  const admin = await window();
  await signIn(admin, alias, "root");
  await admin.getByRole("link", { name: "IAM" }).click();
  await admin.getByRole("button", { name: "Create user" }).click();
  const create = admin.getByRole("dialog", { name: "Create user" });
  await create.getByLabel("User name").fill("reader");
  await create.getByLabel("Console password").fill(PASSWORD);
  await create.getByRole("button", { name: "Create user" }).click();
  await admin.getByRole("heading", { name: "reader" }).waitFor();
  await admin.getByRole("button", { name: "Attach policy" }).click();
  const attach = admin.getByRole("dialog", { name: "Attach policy" });
  await attach.getByLabel("Policy").selectOption({ label: "PipewrightReadOnlyAccess" });
  await attach.getByRole("button", { name: "Attach" }).click();
  await admin.getByRole("button", { name: "Detach PipewrightReadOnlyAccess" }).waitFor();
  await admin.context().close();

  // A second window, the read-only user, follows along.
  const reader = await window();
  await signIn(reader, alias, "reader");
  await reader.getByRole("link", { name: "site" }).click();
  await reader.getByRole("status").filter({ hasText: "Live" }).waitFor();

  // A revision uploaded from the Upload action starts the pipeline.
  const archive = `${ROOT}examples/site.tar.gz`;
  await action(page, "Upload").getByLabel("Upload revision").setInputFiles(archive);
  await page.getByRole("status").filter({ hasText: "Uploaded" }).waitFor();

  // It reaches the approval live, in both windows.
  const review = action(page, "Review").getByRole("button", { name: "Review" });
  await review.waitFor({ timeout: LIVE });
  await action(reader, "Review").getByRole("button", { name: "Review" }).waitFor({ timeout: LIVE });
  await assert.doesNotReject(stageStatus(page, "Build", "Succeeded").waitFor());
  await page.screenshot({ path: `${RESULTS}pipeline-waiting-for-approval.png`, fullPage: true });

  // The reader may look but not approve: IAM's refusal, in its words.
  await action(reader, "Review").getByRole("button", { name: "Review" }).click();
  const readerDialog = reader.getByRole("dialog", { name: "Review Review" });
  await readerDialog.getByRole("button", { name: "Approve" }).click();
  const refusal = readerDialog.getByRole("alert");
  await refusal.waitFor();
  const said = await refusal.textContent();
  assert.match(said, /Not allowed/);
  assert.match(said, /reader/);
  assert.match(said, /codepipeline:PutApprovalResult/);
  await readerDialog.getByRole("button", { name: "Cancel" }).click();

  // Disable the transition into Deploy, with a reason; the reader sees it.
  await page.getByRole("button", { name: "Disable transition into Deploy" }).click();
  const disable = page.getByRole("dialog", { name: "Disable transition into Deploy" });
  await disable.getByLabel("Reason").fill("Holding for the release note");
  await disable.getByRole("button", { name: "Disable" }).click();
  await page.getByText("Transition disabled: Holding for the release note").waitFor({ timeout: LIVE });
  await reader.getByText("Transition disabled: Holding for the release note").waitFor({ timeout: LIVE });

  // The reader's buttons for changes say they are not allowed, in IAM's
  // words; the root's do not.
  const description = async (button) => {
    const id = await button.getAttribute("aria-describedby");
    return id ? await button.page().locator(`[id="${id}"]`).textContent() : "";
  };
  const readerRelease = reader.getByRole("button", { name: "Release change" });
  assert.match(await description(readerRelease), /Not allowed: .*reader.*codepipeline:StartPipelineExecution/);
  assert.match(await description(action(reader, "Review").getByRole("button", { name: "Review" })), /codepipeline:PutApprovalResult/);
  assert.match(await description(reader.getByRole("button", { name: "Copy pipeline" })), /codepipeline:CreatePipeline/);
  assert.equal(await description(page.getByRole("button", { name: "Release change" })), "");

  await reader.screenshot({ path: `${RESULTS}pipeline-as-read-only-user.png`, fullPage: true });

  // The reader's Release change, tried anyway, is refused with IAM's message.
  await readerRelease.click();
  const release = reader.getByRole("dialog", { name: "Release change" });
  await release.getByRole("button", { name: "Release" }).click();
  const releaseRefusal = await release.getByRole("alert").textContent();
  assert.match(releaseRefusal, /codepipeline:StartPipelineExecution/);
  await release.getByRole("button", { name: "Cancel" }).click();

  // Approve; with the transition disabled, Deploy waits for it.
  await review.click();
  const dialog = page.getByRole("dialog", { name: "Review Review" });
  await dialog.getByLabel("Comments").fill("looks good");
  await dialog.getByRole("button", { name: "Approve" }).click();
  await stageStatus(page, "Approve", "Succeeded").waitFor({ timeout: LIVE });
  // The execution waits at the disabled transition, and both windows say so.
  await page.getByRole("note", { name: "Waiting to enter Deploy" }).waitFor({ timeout: LIVE });
  await reader.getByRole("note", { name: "Waiting to enter Deploy" }).waitFor({ timeout: LIVE });
  await page.screenshot({ path: `${RESULTS}pipeline-held-at-disabled-transition.png`, fullPage: true });

  // Enable it again, and Deploy runs to success without a reload.
  await page.getByRole("button", { name: "Enable transition into Deploy" }).click();
  await page.getByRole("button", { name: "Disable transition into Deploy" }).waitFor({ timeout: LIVE });
  await stageStatus(page, "Deploy", "Succeeded").waitFor({ timeout: LIVE });
  await stageStatus(reader, "Deploy", "Succeeded").waitFor({ timeout: LIVE });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page was reloaded");

  // The deploy's log reads as it ran.
  await action(page, "Ship").getByRole("button", { name: "Log of Ship" }).click();
  const log = page.getByRole("dialog", { name: "Log of Ship" });
  await log.getByText("shipping build").waitFor();
  await log.getByRole("button", { name: "Close" }).click();

  await page.screenshot({ path: `${RESULTS}pipeline-deployed-1280x800.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${RESULTS}pipeline-deployed-phone.png`, fullPage: true });
  // Nothing wider than the phone's screen.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow} px wider than a phone's screen`);

  await page.setViewportSize({ width: 1280, height: 800 });

  // History: the execution, its actions on a timeline, output variables, artifacts.
  await page.getByRole("link", { name: "History", exact: true }).click();
  await page.getByRole("heading", { name: "Execution history" }).waitFor();
  await page.getByRole("row").filter({ hasText: "PutSourceRevision" }).getByRole("link").click();
  await page.getByRole("list", { name: "Action executions" }).waitFor();
  await page.getByRole("table", { name: "Output variables of Package" }).getByText("VERSION").waitFor();
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download BuildOut" }).click();
  assert.equal((await download).suggestedFilename(), "BuildOut.tar");
  await page.screenshot({ path: `${RESULTS}execution.png`, fullPage: true });

  // Event history finds the approval, and the reader's refused one.
  await page.getByRole("link", { name: "Event history" }).click();
  await page.getByLabel("Event name").fill("PutApprovalResult");
  await page.getByRole("button", { name: "Search" }).click();
  const approvals = page.getByRole("table", { name: "Events" }).getByRole("row").filter({ hasText: "PutApprovalResult" });
  await approvals.filter({ hasText: "AccessDeniedException" }).filter({ hasText: "reader" }).waitFor();
  await approvals.filter({ hasText: ":root" }).filter({ hasText: "200" }).getByRole("button").click();
  await page.getByRole("dialog").getByText("looks good").first().waitFor();
  await page.getByRole("dialog").getByRole("button", { name: "Close" }).click();
  await page.getByRole("button", { name: "Verify the log" }).click();
  await page.getByRole("status").filter({ hasText: "Valid:" }).waitFor();
  const exported = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export events" }).click();
  const file = await exported;
  assert.match(file.suggestedFilename(), /\.ndjson$/);
  assert.match(readFileSync(await file.path(), "utf8"), /"eventName":"PutApprovalResult"/);
  await page.screenshot({ path: `${RESULTS}event-history.png`, fullPage: true });

  // Release change on a chosen revision: the archive uploaded first, by its id.
  const runs = await call("GET", "/v1/pipelines/site/executions", rootToken);
  const uploadedId = runs.pipelineExecutionSummaries.at(-1).sourceRevisions[0].revisionId;
  await page.evaluate(() => (location.hash = "#/pipelines/site"));
  await page.getByRole("button", { name: "Release change" }).click();
  const rerun = page.getByRole("dialog", { name: "Release change" });
  await rerun.getByLabel("Revision of Upload").fill(uploadedId);
  await rerun.getByRole("button", { name: "Release" }).click();
  await rerun.waitFor({ state: "detached" });
  const again = await call("GET", "/v1/pipelines/site/executions?maxResults=1", rootToken);
  assert.equal(again.pipelineExecutionSummaries[0].trigger.triggerType, "StartPipelineExecution");
  assert.equal(again.pipelineExecutionSummaries[0].sourceRevisions[0].revisionId, uploadedId);

  // Every page fits a phone's screen, and the keyboard reaches the controls.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const route of ["#/pipelines", "#/pipelines/site/executions", "#/events", "#/iam/users", "#/iam/policies", "#/switch-role"]) {
    await page.evaluate((hash) => (location.hash = hash), route);
    await page.waitForTimeout(500);
    const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wider <= 1, `${route} is ${wider} px wider than a phone's screen`);
    await page.screenshot({ path: `${RESULTS}phone-${route.slice(2).replaceAll("/", "-")}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.evaluate(() => (location.hash = "#/pipelines/site"));
  const releaseButton = page.getByRole("button", { name: "Release change" });
  await releaseButton.focus();
  await page.keyboard.press("Enter");
  await page.getByRole("dialog", { name: "Release change" }).waitFor();
  await page.keyboard.press("Escape");
  await page.getByRole("dialog", { name: "Release change" }).waitFor({ state: "detached" });

  // Sign out: back to the sign-in form.
  await reader.getByRole("button", { name: "Sign out" }).click();
  await reader.getByRole("form", { name: "Sign in" }).waitFor();

  // Switch role (as AWS has it, a root user cannot: an IAM user does) into
  // another account's role that trusts this account.
  const other = await call("POST", "/v1/accounts", undefined, { alias: `console-b-${RUN}`, rootPassword: PASSWORD });
  const me = await call("GET", "/v1/auth/whoami", rootToken);
  const otherToken = await token(other.accountId, "root");
  await call("POST", "/v1/iam/roles", otherToken, {
    roleName: "auditor",
    assumeRolePolicyDocument: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { PW: `arn:pw:iam::${me.account}:root` }, Action: "sts:AssumeRole" }],
    },
  });
  await call("POST", "/v1/iam/roles/auditor/attached-policies", otherToken, {
    policyArn: "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess",
  });
  await call("POST", "/v1/pipelines", otherToken, {
    pipeline: { ...JSON.parse(readFileSync(`${ROOT}examples/upload-build-approve-deploy.json`, "utf8")).pipeline, name: "b-site" },
  });
  await call("POST", "/v1/iam/users", rootToken, { userName: "operator" });
  await call("PUT", "/v1/iam/users/operator/login-profile", rootToken, { password: PASSWORD });
  await call("PUT", "/v1/iam/users/operator/policies/switch", rootToken, {
    policyDocument: {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "sts:AssumeRole", Resource: `arn:pw:iam::${other.accountId}:role/auditor` },
        { Effect: "Allow", Action: ["codepipeline:List*", "codepipeline:Get*"], Resource: "*" },
      ],
    },
  });
  const operator = await window();
  await signIn(operator, alias, "operator");
  await operator.getByRole("link", { name: "Switch role" }).click();
  await operator.getByLabel("Account").fill(other.accountId);
  await operator.getByLabel("Role", { exact: true }).fill("auditor");
  await operator.getByLabel("Display name").fill("B auditor");
  await operator.getByRole("button", { name: "Switch role" }).click();
  await operator.getByRole("link", { name: "b-site" }).waitFor();
  const bar = await operator.getByLabel("Signed in as").textContent();
  assert.match(bar, /B auditor/);
  assert.match(bar, new RegExp(`arn:pw:sts::${other.accountId}:assumed-role/auditor/`));
  await operator.screenshot({ path: `${RESULTS}switched-role.png` });
  // The way back is one click, and the role is remembered.
  await operator.getByRole("button", { name: "Back to operator" }).click();
  await operator.getByRole("link", { name: "site", exact: true }).waitFor();
  await operator.getByRole("link", { name: "Switch role" }).click();
  await operator.getByRole("button", { name: "B auditor" }).click();
  await operator.getByRole("link", { name: "b-site" }).waitFor();

  assert.deepEqual(problems, [], "the browser's console reported errors");
});

/** An account made through the API, its root signed in, in a new window. */
async function signedInRoot(name) {
  const alias = `${name}-${RUN}`;
  await call("POST", "/v1/accounts", undefined, { alias, rootPassword: PASSWORD });
  const page = await window();
  await signIn(page, alias, "root");
  return { page, alias, token: await token(alias, "root") };
}

const example = () => JSON.parse(readFileSync(`${ROOT}examples/upload-build-approve-deploy.json`, "utf8"));

browserTest("a pipeline is edited (a change made meanwhile is not overwritten), copied, and a failed build retried", async () => {
  const { page, token: root } = await signedInRoot("editor");
  const failing = example();
  failing.pipeline.stages[1].actions[0].configuration.commands = "echo checking\nexit 3";
  await call("POST", "/v1/pipelines", root, failing);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByRole("link", { name: "site", exact: true }).click();
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();

  // A failed build, retried from its stage.
  const archive = `${ROOT}examples/site.tar.gz`;
  await action(page, "Upload").getByLabel("Upload revision").setInputFiles(archive);
  await stageStatus(page, "Build", "Failed").waitFor({ timeout: LIVE });
  await action(page, "Package").getByText("the commands exited with status 3").waitFor();
  await stage(page, "Build").getByRole("button", { name: "Retry" }).click();
  await page.getByRole("dialog", { name: "Retry Build" }).getByRole("button", { name: "Retry failed actions" }).click();
  await page.getByRole("link", { name: "History", exact: true }).click();
  await page.getByRole("row").filter({ hasText: "PutSourceRevision" }).getByRole("link").click();
  await page.getByRole("listitem", { name: "Build Package attempt 2" }).waitFor({ timeout: LIVE });
  await page.getByRole("link", { name: "site", exact: true }).click();

  // Edit: opened at version 1; someone else saves version 2 meanwhile.
  await page.getByRole("button", { name: "Edit" }).click();
  const editor = page.getByLabel("Declaration");
  await editor.waitFor();
  const opened = JSON.parse(await editor.inputValue());
  assert.equal(opened.pipeline.version, 1);
  const theirs = example();
  theirs.pipeline.version = 1;
  theirs.pipeline.variables[0].defaultValue = "production";
  await call("PUT", "/v1/pipelines/site", root, theirs);
  opened.pipeline.variables[0].description = "where Deploy ships to, edited";
  await editor.fill(JSON.stringify(opened, null, 2));
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").filter({ hasText: "Changed since you opened it" }).waitFor();
  await page.getByRole("button", { name: "Load the latest version" }).click();
  await page.waitForFunction(() => document.querySelector("textarea")?.value.includes('"version": 2'));
  const latest = JSON.parse(await editor.inputValue());
  assert.equal(latest.pipeline.variables[0].defaultValue, "production", "their change is what the editor shows");

  // A mistake is shown at its path.
  latest.pipeline.stages[2].actions[0].inputArtifacts = [{ name: "Nowhere" }];
  await editor.fill(JSON.stringify(latest, null, 2));
  await page.getByRole("button", { name: "Save" }).click();
  const mistake = await page.getByRole("alert").textContent();
  assert.match(mistake, /stages\[2\]\.actions\[0\]\.inputArtifacts\[0\]/);

  // In YAML, the fixed declaration saves as version 3.
  await page.getByLabel("Format").selectOption("yaml");
  await page.waitForFunction(() => document.querySelector("textarea")?.value.includes("stages:"));
  const yaml = await editor.inputValue();
  assert.doesNotMatch(yaml, /metadata:/);
  await editor.fill(yaml.replace("where Deploy ships to", "where Deploy ships to (YAML)"));
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Version 3").waitFor();

  // Copy it under a new name, in one step.
  await page.getByRole("button", { name: "Copy pipeline" }).click();
  const copy = page.getByRole("dialog", { name: "Copy site" });
  await copy.getByLabel("New pipeline name").fill("site-copy");
  await copy.getByRole("button", { name: "Copy" }).click();
  await page.getByRole("heading", { name: "site-copy" }).waitFor();
  await page.getByText("Version 1").waitFor();
  const copied = await call("GET", "/v1/pipelines/site-copy", root);
  assert.equal(copied.pipeline.variables[0].description, "where Deploy ships to (YAML)");
  assert.deepEqual(problems, [], "the browser's console reported errors");
});

browserTest("IAM is read and edited in the console, and the simulator answers for a principal", async () => {
  const { page, token: root } = await signedInRoot("iam");
  await call("POST", "/v1/iam/users", root, { userName: "reader" });
  await call("POST", "/v1/iam/users/reader/attached-policies", root, {
    policyArn: "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess",
  });
  const me = await call("GET", "/v1/auth/whoami", root);
  await call("POST", "/v1/iam/roles", root, {
    roleName: "deployer",
    assumeRolePolicyDocument: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { PW: `arn:pw:iam::${me.account}:root` }, Action: "sts:AssumeRole" }],
    },
  });

  await page.getByRole("link", { name: "IAM" }).click();
  await page.getByRole("table", { name: "Users" }).getByRole("link", { name: "reader" }).click();
  await page.getByText("PipewrightReadOnlyAccess").first().waitFor();

  // An inline policy with a mistake is refused with IAM's reason; fixed, it is kept.
  await page.getByRole("button", { name: "Add inline policy" }).click();
  const editor = page.getByRole("dialog", { name: "Add inline policy" });
  await editor.getByLabel("Policy name").fill("approve");
  const policy = (effect) =>
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: effect, Action: "codepipeline:PutApprovalResult", Resource: "*" }] });
  await editor.getByLabel("Policy document").fill(policy("Perhaps"));
  await editor.getByRole("button", { name: "Save policy" }).click();
  assert.match(await editor.getByRole("alert").textContent(), /Effect/);
  await editor.getByLabel("Policy document").fill(policy("Allow"));
  await editor.getByRole("button", { name: "Save policy" }).click();
  await page.getByRole("button", { name: "approve" }).waitFor();

  // The simulator: reader may now approve, and may still not release.
  await page.getByRole("link", { name: "Policy simulator" }).click();
  await page.getByLabel("Principal ARN").fill(`arn:pw:iam::${me.account}:user/reader`);
  await page.getByLabel("Actions").fill("codepipeline:PutApprovalResult codepipeline:StartPipelineExecution");
  await page.getByLabel("Resource ARNs").fill(`arn:pw:codepipeline:local:${me.account}:site`);
  await page.getByRole("button", { name: "Simulate" }).click();
  const results = page.getByRole("table", { name: "Simulation results" });
  await results.getByRole("row").filter({ hasText: "codepipeline:PutApprovalResult" }).filter({ hasText: "allowed" }).waitFor();
  await results.getByRole("row").filter({ hasText: "codepipeline:StartPipelineExecution" }).filter({ hasText: "implicitDeny" }).waitFor();
  await page.screenshot({ path: `${RESULTS}iam-simulator.png`, fullPage: true });

  // A group: made, the reader added, then removed.
  await page.getByRole("link", { name: "Groups" }).click();
  await page.getByRole("button", { name: "Create group" }).click();
  await page.getByRole("dialog", { name: "Create group" }).getByLabel("Group name").fill("auditors");
  await page.getByRole("dialog", { name: "Create group" }).getByRole("button", { name: "Create group" }).click();
  await page.getByRole("heading", { name: "auditors" }).waitFor();
  await page.getByLabel("User to add").selectOption("reader");
  await page.getByRole("button", { name: "Add user" }).click();
  const removeReader = page.getByRole("button", { name: "Remove reader from auditors" });
  await removeReader.click();
  await removeReader.waitFor({ state: "detached" });
  const group = await call("GET", "/v1/iam/groups/auditors", root);
  assert.deepEqual(group.users, []);

  // A role's trust policy.
  await page.getByRole("link", { name: "Roles" }).click();
  await page.getByRole("link", { name: "deployer" }).click();
  const trust = await page.getByLabel("Trust policy").textContent();
  assert.match(trust, /sts:AssumeRole/);
  assert.deepEqual(problems, [], "the browser's console reported errors");
});

browserTest("a thousand pipelines are listed a page at a time, latest activity first, and filtered by name", async () => {
  const { page, token: root } = await signedInRoot("many");
  const names = Array.from({ length: 1000 }, (_, i) => `p-${String(i).padStart(4, "0")}`);
  const pipeline = (name) => ({
    pipeline: {
      name,
      stages: [
        {
          name: "Source",
          actions: [
            {
              name: "Upload",
              actionTypeId: { category: "Source", owner: "Pipewright", provider: "Upload", version: "1" },
              outputArtifacts: [{ name: "Src" }],
            },
          ],
        },
        {
          name: "Build",
          actions: [
            {
              name: "Check",
              actionTypeId: { category: "Build", owner: "Pipewright", provider: "Shell", version: "1" },
              configuration: { commands: "true" },
              inputArtifacts: [{ name: "Src" }],
            },
          ],
        },
      ],
    },
  });
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(names.slice(i, i + 20).map((name) => call("POST", "/v1/pipelines", root, pipeline(name))));
  }
  // The one that ran last comes first, though its name is in the middle.
  await call("POST", "/v1/pipelines/p-0500/executions", root, {});

  await page.getByRole("button", { name: "Refresh" }).click();
  const rows = page.getByRole("table").getByRole("row");
  await page.getByRole("link", { name: "p-0500" }).waitFor();
  assert.equal(await rows.count(), 26, "25 pipelines and the header");
  assert.match(await rows.nth(1).textContent(), /p-0500/);
  const first = await rows.nth(2).textContent();
  await page.getByRole("button", { name: "Next page" }).click();
  await page.getByText("Page 2").waitFor();
  await page.waitForFunction(
    (seen) => document.querySelectorAll("tbody tr").length === 25 && !document.querySelector("tbody")?.textContent?.includes(seen),
    first.slice(0, 6),
  );
  await page.getByRole("button", { name: "Previous page" }).click();
  await page.getByText("Page 1").waitFor();

  await page.getByLabel("Filter by name").fill("p-009");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 10);
  assert.deepEqual(problems, [], "the browser's console reported errors");
});

browserTest("a running build's log streams into the console, and the execution is stopped with a reason", async () => {
  const { page, token: root } = await signedInRoot("stopper");
  const slow = example();
  slow.pipeline.name = "slow";
  slow.pipeline.stages[1].actions[0].configuration.commands = "echo started building\nsleep 120\necho never";
  await call("POST", "/v1/pipelines", root, slow);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByRole("link", { name: "slow", exact: true }).click();
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
  const archive = `${ROOT}examples/site.tar.gz`;
  await action(page, "Upload").getByLabel("Upload revision").setInputFiles(archive);
  await stageStatus(page, "Build", "In progress").waitFor({ timeout: LIVE });

  // The log shows what the build wrote while it still runs.
  await action(page, "Package").getByRole("button", { name: "Log of Package" }).click();
  const log = page.getByRole("dialog", { name: "Log of Package" });
  await log.getByText("started building").waitFor({ timeout: LIVE });
  await log.getByRole("status").filter({ hasText: "Following the log" }).waitFor();
  await log.getByRole("button", { name: "Close" }).click();

  // Stop and abandon, with a reason: the build ends, the log with it.
  await page.getByRole("button", { name: "Stop execution" }).click();
  const stop = page.getByRole("dialog", { name: "Stop execution" });
  await stop.getByLabel("Reason").fill("wrong revision");
  await stop.getByRole("button", { name: "Stop and abandon" }).click();
  await stage(page, "Build").locator("header").getByText(/^(Stopped|Abandoned)$/).waitFor({ timeout: LIVE });
  await page.getByRole("link", { name: "History", exact: true }).click();
  await page.getByRole("row").filter({ hasText: "wrong revision" }).waitFor();
  assert.deepEqual(problems, [], "the browser's console reported errors");
});

browserTest("tenant text that looks like markup is shown as text and runs nothing", async () => {
  const { page, token: root } = await signedInRoot("markup");
  const hostile = `<img src=x onerror="window.__ran=1"><script>window.__ran=2</script>`;
  const pipeline = example();
  pipeline.pipeline.name = "marked";
  // The approval's text and a commit-like summary carry it.
  pipeline.pipeline.stages[2].actions[0].configuration.customData = `Ship? ${hostile}`;
  await call("POST", "/v1/pipelines", root, pipeline);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByRole("link", { name: "marked" }).click();
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
  await action(page, "Upload").getByLabel("Upload revision").setInputFiles(`${ROOT}examples/site.tar.gz`);
  const review = action(page, "Review");
  await review.getByText(hostile, { exact: false }).waitFor({ timeout: LIVE });
  assert.equal(await page.evaluate(() => window.__ran ?? 0), 0, "the text ran as markup");
  assert.equal(await page.locator("main img").count(), 0, "the text became an element");
  assert.deepEqual(problems, [], "the browser's console reported errors");
});
