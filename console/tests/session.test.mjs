// The console keeps a session alive: the access token is refreshed before
// it expires (tests/it/console.rs gives the service 60-second tokens), so a
// person who keeps the page open is not signed out.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const BASE = (process.env.PIPEWRIGHT_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const PASSWORD = "correct horse battery staple";
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => browser?.close());

test("the access token is refreshed before it expires, and the page keeps working", async () => {
  const alias = `refresh-${Date.now().toString(36)}`;
  const made = await fetch(`${BASE}/v1/accounts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ alias, rootPassword: PASSWORD }),
  });
  assert.equal(made.status, 201, await made.text());
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${BASE}/`);
  const form = page.getByRole("form", { name: "Sign in" });
  await form.getByLabel("Account").fill(alias);
  await form.getByLabel("User name").fill("root");
  await form.getByLabel("Password").fill(PASSWORD);
  await form.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Pipelines" }).waitFor();
  const session = () => page.evaluate(() => JSON.parse(sessionStorage.getItem("pipewright.session") ?? "null"));
  const first = await session();
  // A duplicated tab: the same session, copied (as the browser's "Duplicate"
  // copies sessionStorage), so one refresh token for two tabs.
  const twin = await context.newPage();
  await twin.goto(`${BASE}/#/pipelines`);
  await twin.evaluate((copied) => sessionStorage.setItem("pipewright.session", copied), JSON.stringify(first));
  await twin.reload();
  await twin.getByRole("heading", { name: "Pipelines" }).waitFor();
  const lifetime = Date.parse(first.expiration) - Date.now();
  assert.ok(lifetime < 120_000, `the service gives ${lifetime / 1000} s tokens: this test needs short ones`);

  // Before the first token expires, a new one replaces it.
  await page.waitForFunction(
    (old) => JSON.parse(sessionStorage.getItem("pipewright.session") ?? "null")?.accessToken !== old,
    first.accessToken,
    { timeout: lifetime },
  );
  const second = await session();
  assert.ok(Date.parse(second.expiration) > Date.parse(first.expiration));
  assert.ok(Date.now() < Date.parse(first.expiration), "refreshed only after the old token expired");

  // After the first token's end, the page still works, signed in.
  await page.waitForTimeout(Math.max(0, Date.parse(first.expiration) - Date.now() + 1_000));
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByText("No pipelines").waitFor();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  // The twin is still signed in and works: it took the new tokens, or
  // refreshed after the first tab, never with a spent refresh token.
  await twin.getByRole("button", { name: "Refresh" }).click();
  await twin.getByText("No pipelines").waitFor();
  const twinSession = await twin.evaluate(() => JSON.parse(sessionStorage.getItem("pipewright.session") ?? "null"));
  assert.ok(twinSession, "the duplicated tab was signed out");
  assert.notEqual(twinSession.refreshToken, first.refreshToken);
  await browser.close();
});
