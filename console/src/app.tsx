// The console's frame: the hash route, the identity bar on every page
// (as the AWS console shows who you are and which role you are in), and
// the page for the route.
import { useEffect, useState } from "preact/hooks";
import { identity, leaveRole, onNotice, onSession, session, signOut, type Session } from "./api";
import { CreatePipelinePage, EditPipelinePage } from "./pages/create-pipeline";
import { EventsPage } from "./pages/events";
import { IamPage } from "./pages/iam";
import { ExecutionPage, ExecutionsPage } from "./pages/executions";
import { PipelinePage } from "./pages/pipeline";
import { PipelinesPage } from "./pages/pipelines";
import { SignInPage } from "./pages/signin";
import { SwitchRolePage } from "./pages/switch-role";

/** The route: `#/pipelines/web` → ["pipelines", "web"]. */
export function useRoute(): string[] {
  const read = () =>
    location.hash
      .replace(/^#\/?/, "")
      .split("/")
      .filter(Boolean)
      .map((part) => decodeURIComponent(part));
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

export function go(...parts: string[]): void {
  location.hash = `#/${parts.map(encodeURIComponent).join("/")}`;
}

export function href(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join("/")}`;
}

export function App() {
  const [current, setCurrent] = useState<Session | null>(session());
  const [message, setMessage] = useState<string | null>(null);
  const route = useRoute();
  useEffect(() => onSession(setCurrent), []);
  useEffect(() => onNotice(setMessage), []);

  if (!current) return <SignInPage notice={message} />;
  const [page, ...rest] = route;
  let body;
  if (page === "pipelines" && rest[0] && rest[1] === "executions" && rest[2])
    body = <ExecutionPage key={rest[2]} name={rest[0]} id={rest[2]} />;
  else if (page === "pipelines" && rest[0] && rest[1] === "edit") body = <EditPipelinePage key={rest[0]} name={rest[0]} />;
  else if (page === "pipelines" && rest[0] && rest[1] === "executions") body = <ExecutionsPage key={rest[0]} name={rest[0]} />;
  else if (page === "pipelines" && rest[0]) body = <PipelinePage key={rest[0]} name={rest[0]} />;
  else if (page === "events") body = <EventsPage />;
  else if (page === "iam") body = <IamPage route={rest} />;
  else if (page === "switch-role") body = <SwitchRolePage />;
  else if (page === "create-pipeline") body = <CreatePipelinePage />;
  else body = <PipelinesPage />;
  return (
    <>
      <IdentityBar session={current} />
      {message && (
        <div class="notice" role="status">
          {message}{" "}
          <button type="button" class="link" onClick={() => setMessage(null)}>
            Dismiss
          </button>
        </div>
      )}
      {/* Another identity sees other things: each page starts afresh for it. */}
      <main key={current.role?.identity.arn ?? current.identity.arn}>{body}</main>
    </>
  );
}

function IdentityBar({ session }: { session: Session }) {
  const who = identity();
  const role = session.role;
  return (
    <header class={role ? "bar in-role" : "bar"}>
      <a class="brand" href={href("pipelines")}>
        Pipewright
      </a>
      <nav aria-label="Console">
        <a href={href("pipelines")}>Pipelines</a>
        <a href={href("events")}>Event history</a>
        <a href={href("iam")}>IAM</a>
      </nav>
      <div class="who" aria-label="Signed in as">
        {role ? (
          <span title={who?.arn}>
            <strong>{role.displayName}</strong> in {who?.account} <small>(as {session.userName})</small>
          </span>
        ) : (
          <span title={who?.arn}>
            <strong>{session.userName}</strong> @ {session.account}
          </span>
        )}
        <code class="arn">{who?.arn}</code>
      </div>
      <div class="session-actions">
        {role ? (
          <button type="button" onClick={() => leaveRole()}>
            Back to {session.userName}
          </button>
        ) : null}
        <a class="button" href={href("switch-role")}>
          Switch role
        </a>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </div>
    </header>
  );
}
