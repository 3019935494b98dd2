// Sign in (account id or alias, user name, password), or create an account
// when the service lets anyone sign up.
import { useState } from "preact/hooks";
import { createAccount, signIn } from "../api";
import { Failure, Field, useAction, value } from "../ui";

export function SignInPage({ notice }: { notice: string | null }) {
  const [mode, setMode] = useState<"sign-in" | "sign-up">("sign-in");
  const [account, setAccount] = useState(localStorage.getItem("pipewright.lastAccount") ?? "");
  const [userName, setUserName] = useState("root");
  const [password, setPassword] = useState("");
  const [created, setCreated] = useState<string | null>(null);
  const action = useAction();

  const submitSignIn = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await signIn(account.trim(), userName.trim(), password);
      localStorage.setItem("pipewright.lastAccount", account.trim());
      if (!location.hash || location.hash === "#/") location.hash = "#/pipelines";
    });
  };
  const submitSignUp = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const made = await createAccount(account.trim() || null, password);
      setCreated(`Account ${made.accountId}${made.alias ? ` (${made.alias})` : ""} created. Sign in as root.`);
      setAccount(made.alias ?? made.accountId);
      setUserName("root");
      setPassword("");
      setMode("sign-in");
    });
  };

  return (
    <main class="sign-in">
      <h1>Pipewright</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      {created && (
        <p class="notice" role="status">
          {created}
        </p>
      )}
      {mode === "sign-in" ? (
        <form onSubmit={submitSignIn} aria-label="Sign in">
          <h2>Sign in</h2>
          <Field label="Account" hint="The account's id or alias">
            <input name="account" required value={account} onInput={(e) => setAccount(value(e))} autoComplete="organization" />
          </Field>
          <Field label="User name" hint="root for the account's root user">
            <input name="userName" required value={userName} onInput={(e) => setUserName(value(e))} autoComplete="username" />
          </Field>
          <Field label="Password">
            <input
              name="password"
              type="password"
              required
              value={password}
              onInput={(e) => setPassword(value(e))}
              autoComplete="current-password"
            />
          </Field>
          <Failure error={action.error} />
          <button type="submit" class="primary" disabled={action.busy}>
            Sign in
          </button>
          <p>
            New here?{" "}
            <button type="button" class="link" onClick={() => (setMode("sign-up"), action.clear())}>
              Create an account
            </button>
          </p>
        </form>
      ) : (
        <form onSubmit={submitSignUp} aria-label="Create an account">
          <h2>Create an account</h2>
          <Field label="Account alias" hint="Optional: 3–63 lower-case letters, digits and hyphens">
            <input name="alias" value={account} onInput={(e) => setAccount(value(e))} />
          </Field>
          <Field label="Root password" hint="The root user's password">
            <input
              name="rootPassword"
              type="password"
              required
              value={password}
              onInput={(e) => setPassword(value(e))}
              autoComplete="new-password"
            />
          </Field>
          <Failure error={action.error} />
          <button type="submit" class="primary" disabled={action.busy}>
            Create account
          </button>
          <p>
            <button type="button" class="link" onClick={() => (setMode("sign-in"), action.clear())}>
              Back to sign in
            </button>
          </p>
        </form>
      )}
    </main>
  );
}
