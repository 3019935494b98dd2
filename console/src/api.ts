// The console's one way to the API: the openapi-fetch client typed by the
// document (src/generated/schema.d.ts), the signed-in session, its refresh
// before the access token expires, and the role the session switched into.
// Every call the console makes goes through `api`, so IAM decides and the
// audit log records exactly as for any other client.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./generated/schema";

export type Schemas = components["schemas"];
export type CallerIdentity = Schemas["CallerIdentity"];

/** A refused or failed call, with the service's own words. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly errors: Schemas["ErrorDetail"][] = [],
  ) {
    super(message);
  }
  get denied(): boolean {
    return this.status === 403;
  }
}

/** A role the session switched into (AWS console's "Switch role"). */
export interface ActiveRole {
  roleArn: string;
  displayName: string;
  accessToken: string;
  expiration: string;
  identity: CallerIdentity;
}

/** What a sign-in leaves in this tab (sessionStorage: each window may be someone else). */
export interface Session {
  account: string;
  userName: string;
  accessToken: string;
  refreshToken: string;
  expiration: string;
  identity: CallerIdentity;
  role?: ActiveRole | undefined;
}

const SESSION_KEY = "pipewright.session";
const DEVICE_KEY = "pipewright.device";
const ROLES_KEY = "pipewright.recentRoles";
/** Refresh this long before the access token expires (at most). */
const REFRESH_AHEAD_MS = 60_000;

type Listener = (session: Session | null) => void;
const listeners = new Set<Listener>();
let current: Session | null = load();
let refreshing: Promise<void> | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;

function load(): Session | null {
  try {
    const text = sessionStorage.getItem(SESSION_KEY);
    return text ? (JSON.parse(text) as Session) : null;
  } catch {
    return null;
  }
}

function save(session: Session | null): void {
  current = session;
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
  schedule();
  for (const listener of listeners) listener(session);
}

export function session(): Session | null {
  return current;
}

export function onSession(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The token calls are made with: the role's while one is active. */
function token(): string | undefined {
  if (!current) return undefined;
  return current.role ? current.role.accessToken : current.accessToken;
}

/** How long before `expiration` to refresh: a minute, or a fifth of what is left when that is less. */
function ahead(expiration: string): number {
  return Math.min(REFRESH_AHEAD_MS, (Date.parse(expiration) - Date.now()) / 5);
}

function schedule(): void {
  if (timer) clearTimeout(timer);
  if (!current) return;
  const due = Date.parse(current.expiration) - ahead(current.expiration) - Date.now();
  timer = setTimeout(() => {
    // A refresh that failed for now (the service away) is tried again
    // shortly; one that the service refused has ended the session.
    refresh().catch(() => {
      if (current) timer = setTimeout(() => void refresh().catch(() => undefined), 10_000);
    });
  }, Math.max(due, 1_000));
}

/**
 * Tabs that hold the same session (a duplicated tab copies sessionStorage)
 * share one refresh token, which works once: the tab that refreshes tells
 * the others the new tokens, and refreshes are taken one at a time.
 */
const sessions = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel("pipewright.session");
sessions?.addEventListener("message", (event: MessageEvent) => {
  const { spent, tokens } = event.data as { spent: string; tokens: ReturnType<typeof pick> };
  if (current && current.refreshToken === spent) save({ ...current, ...tokens });
});

/** Runs `task` holding the tabs' refresh lock (where the browser has one). */
function exclusively(task: () => Promise<void>): Promise<void> {
  if (typeof navigator === "undefined" || !navigator.locks) return task();
  return navigator.locks.request("pipewright.refresh", task).then(() => undefined);
}

/** Exchanges the refresh token for new tokens; one exchange at a time, across tabs. */
export function refresh(): Promise<void> {
  const asked = current?.refreshToken;
  refreshing ??= exclusively(async () => {
    const before = current;
    // Another tab refreshed this session while this one waited: done.
    if (!before || before.refreshToken !== asked) return;
    const { data, error, response } = await raw.POST("/v1/auth/refresh", {
      body: { refreshToken: before.refreshToken },
    });
    if (!data) {
      // A refresh token works once and for a while: when it no longer does,
      // the session is over.
      // (Unless someone signed in again meanwhile.)
      if (response.status === 401 && current?.refreshToken === before.refreshToken) save(null);
      throw failure(response, error);
    }
    // The session as it is now (a role may have been switched meanwhile),
    // with the new tokens; not if it was signed out or replaced meanwhile.
    if (current?.refreshToken === before.refreshToken) {
      save({ ...current, ...pick(data) });
    }
    sessions?.postMessage({ spent: before.refreshToken, tokens: pick(data) });
  }).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function pick(tokens: Schemas["SessionTokens"]) {
  return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiration: tokens.expiration };
}

const auth: Middleware = {
  async onRequest({ request, schemaPath }) {
    if (schemaPath.startsWith("/v1/auth/refresh") || schemaPath.startsWith("/v1/auth/sign-in")) return request;
    if (schemaPath === "/v1/accounts") return request;
    // A token about to expire (the tab slept past its refresh) is refreshed first.
    if (current && !current.role && Date.parse(current.expiration) - Date.now() < 5_000) {
      await refresh().catch(() => undefined);
    }
    const bearer = token();
    if (bearer) request.headers.set("authorization", `Bearer ${bearer}`);
    return request;
  },
  onResponse({ response, schemaPath }) {
    // A role session is not refreshed: when it ends the console says so
    // and goes back to the signed-in user.
    if (response.status === 401 && current?.role && !schemaPath.startsWith("/v1/auth/")) {
      save({ ...current, role: undefined });
      notice("The role session ended; you are back as yourself.");
    } else if (response.status === 401 && current && !schemaPath.startsWith("/v1/auth/")) {
      save(null);
      notice("Your session ended. Sign in again.");
    }
    return response;
  },
};

const raw = createClient<paths>({ baseUrl: location.origin });
/** The typed client every page calls. */
export const api = createClient<paths>({ baseUrl: location.origin });
api.use(auth);

export function failure(response: Response, error: unknown): ApiFailure {
  const body = (error ?? {}) as Partial<Schemas["ErrorBody"]>;
  return new ApiFailure(
    response.status,
    body.code ?? `HTTP ${response.status}`,
    body.message ?? response.statusText ?? "the call failed",
    body.errors ?? [],
  );
}

/** The data of a call, or its failure thrown. */
export async function must<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw failure(response, error);
  return data as T;
}

export async function signIn(account: string, userName: string, password: string): Promise<void> {
  const deviceToken = localStorage.getItem(`${DEVICE_KEY}.${account}.${userName}`);
  const { data, error, response } = await raw.POST("/v1/auth/sign-in", {
    body: { account, userName, password, deviceToken },
  });
  if (!data) throw failure(response, error);
  if (data.deviceToken) localStorage.setItem(`${DEVICE_KEY}.${account}.${userName}`, data.deviceToken);
  const who = await raw.GET("/v1/auth/whoami", { headers: { authorization: `Bearer ${data.accessToken}` } });
  if (!who.data) throw failure(who.response, who.error);
  save({ account, userName, ...pick(data), identity: who.data });
}

/** Ends the user's session (and the role's, when one is active) at the service, then here. */
export async function signOut(): Promise<void> {
  const ending = current;
  if (ending) {
    const end = (token: string) =>
      raw.POST("/v1/auth/sign-out", { headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
    await Promise.all([end(ending.accessToken), ...(ending.role ? [end(ending.role.accessToken)] : [])]);
  }
  save(null);
}

export async function createAccount(alias: string | null, rootPassword: string) {
  return must(raw.POST("/v1/accounts", { body: { alias, rootPassword } }));
}

export interface RecentRole {
  roleArn: string;
  displayName: string;
}

/** The roles this user (of this account) switched into lately, newest first. */
function rolesKey(): string {
  return `${ROLES_KEY}.${current?.identity.arn ?? ""}`;
}

export function recentRoles(): RecentRole[] {
  try {
    return (JSON.parse(localStorage.getItem(rolesKey()) ?? "[]") as RecentRole[]).slice(0, 5);
  } catch {
    return [];
  }
}

/** Assumes a role with the signed-in user's credentials and calls with it from then on. */
export async function switchRole(roleArn: string, displayName: string): Promise<void> {
  const before = current;
  if (!before) throw new ApiFailure(401, "NotSignedIn", "Sign in first.");
  // The user's own token assumes the role (a role session chaining into
  // another is not what the console's switch does).
  const sessionName = `${before.userName}-console`.replace(/[^\w+=,.@-]/g, "-").slice(0, 64);
  const { data, error, response } = await raw.POST("/v1/sts/assume-role", {
    headers: { authorization: `Bearer ${before.accessToken}` },
    body: { roleArn, roleSessionName: sessionName.length < 2 ? "console" : sessionName },
  });
  if (!data) throw failure(response, error);
  const who = await raw.GET("/v1/auth/whoami", {
    headers: { authorization: `Bearer ${data.credentials.accessToken}` },
  });
  if (!who.data) throw failure(who.response, who.error);
  const name = displayName.trim() || roleArn.split("/").pop() || roleArn;
  // Saved onto the session as it is now: a refresh may have replaced its
  // tokens meanwhile (the old refresh token is spent).
  if (!current || current.identity.arn !== before.identity.arn) throw new ApiFailure(401, "NotSignedIn", "The session ended meanwhile.");
  save({
    ...current,
    role: {
      roleArn,
      displayName: name,
      accessToken: data.credentials.accessToken,
      expiration: data.credentials.expiration,
      identity: who.data,
    },
  });
  const recent = [{ roleArn, displayName: name }, ...recentRoles().filter((r) => r.roleArn !== roleArn)];
  localStorage.setItem(rolesKey(), JSON.stringify(recent.slice(0, 5)));
}

export function leaveRole(): void {
  if (current) save({ ...current, role: undefined });
}

/** The identity calls are made as. */
export function identity(): CallerIdentity | undefined {
  return current?.role?.identity ?? current?.identity;
}

// A short message for the whole page (session ended, and the like).
type NoticeListener = (text: string) => void;
const noticeListeners = new Set<NoticeListener>();
export function notice(text: string): void {
  for (const listener of noticeListeners) listener(text);
}
export function onNotice(listener: NoticeListener): () => void {
  noticeListeners.add(listener);
  return () => noticeListeners.delete(listener);
}

/** Before a call made outside the typed client: a token about to expire is refreshed first. */
async function fresh(): Promise<void> {
  if (current && !current.role && Date.parse(current.expiration) - Date.now() < 5_000) {
    await refresh().catch(() => undefined);
  }
}

/** A stream refused for its credentials: the session (or the role's) has ended, as for any call. */
async function expired(): Promise<void> {
  if (current?.role) {
    save({ ...current, role: undefined });
    notice("The role session ended; you are back as yourself.");
  } else if (current) {
    await refresh().catch(() => undefined);
  }
}

/**
 * Reads a streamed answer (a running action's log) as it comes, calling
 * `onText` with each piece; resolves when the answer ends.
 */
export async function stream(path: string, onText: (text: string) => void, signal: AbortSignal): Promise<void> {
  await fresh();
  const bearer = token();
  const response = await fetch(path, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {}, signal });
  if (!response.ok || !response.body) {
    const error: unknown = await response.json().catch(() => null);
    throw failure(response, error);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

/**
 * Follows a server-sent event stream that needs the Authorization header
 * (EventSource cannot send one): calls `onEvent` with each event's name and
 * data, and reconnects after a pause until `signal` aborts.
 */
export function follow(
  path: string,
  onEvent: (event: string, data: string) => void,
  onStatus: (live: boolean) => void,
  signal: AbortSignal,
): void {
  const run = async () => {
    while (!signal.aborted) {
      try {
        await fresh();
        const bearer = token();
        const response = await fetch(path, {
          headers: { accept: "text/event-stream", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
          signal,
        });
        if (response.status === 401) await expired();
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        onStatus(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length) onEvent(event, data.join("\n"));
          }
        }
      } catch {
        // Aborted, refused or cut: said by onStatus, tried again below.
      }
      onStatus(false);
      if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  };
  void run();
}

/** What the caller may do: the service's decision for each action and resource, as its calls would get. */
export interface Permission {
  allowed: boolean;
  message?: string | null | undefined;
}
export type Permissions = (action: string, resource: string) => Permission | undefined;

/** Asks the service (SimulateCallerPolicy) for up to 50 decisions at once. */
export async function permissions(checks: { action: string; resource: string }[]): Promise<Permissions> {
  const decided = new Map<string, Permission>();
  for (let i = 0; i < checks.length; i += 50) {
    const found = await must(api.POST("/v1/auth/simulate", { body: { checks: checks.slice(i, i + 50) } }));
    for (const r of found.results) decided.set(`${r.action} ${r.resource}`, { allowed: r.allowed, message: r.message });
  }
  return (action, resource) => decided.get(`${action} ${resource}`);
}
