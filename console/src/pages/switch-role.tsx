// "Switch role", as in the AWS console: a role of this or another account,
// by ARN or by account and role name, with an optional display name; the
// roles used recently are one click away.
import { useState } from "preact/hooks";
import { recentRoles, session, switchRole } from "../api";
import { go } from "../app";
import { Failure, Field, useAction, value } from "../ui";

export function SwitchRolePage() {
  const [account, setAccount] = useState("");
  const [roleName, setRoleName] = useState("");
  const [displayName, setDisplayName] = useState("");
  const action = useAction();
  const recent = recentRoles();

  const arnOf = (): string => {
    const role = roleName.trim();
    if (role.startsWith("arn:")) return role;
    return `arn:pw:iam::${account.trim() || session()?.identity.account}:role/${role}`;
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await switchRole(arnOf(), displayName);
      go("pipelines");
    });
  };

  return (
    <section aria-labelledby="switch-role">
      <h1 id="switch-role">Switch role</h1>
      <p>
        Act as a role of this account or another one that trusts you. Your calls carry the role's permissions until you go back or
        its session ends.
      </p>
      <form onSubmit={submit} class="narrow">
        <Field label="Account" hint="The role's account id; empty for this account">
          <input name="account" value={account} onInput={(e) => setAccount(value(e))} inputMode="numeric" />
        </Field>
        <Field label="Role" hint="The role's name, or its whole ARN">
          <input name="role" required value={roleName} onInput={(e) => setRoleName(value(e))} />
        </Field>
        <Field label="Display name" hint="Optional: how the bar names this role">
          <input name="displayName" value={displayName} onInput={(e) => setDisplayName(value(e))} />
        </Field>
        <Failure error={action.error} />
        <button type="submit" class="primary" disabled={action.busy}>
          Switch role
        </button>
      </form>
      {recent.length > 0 && (
        <>
          <h2>Recently used roles</h2>
          <ul class="plain">
            {recent.map((role) => (
              <li key={role.roleArn}>
                <button
                  type="button"
                  disabled={action.busy}
                  onClick={() =>
                    void action.run(async () => {
                      await switchRole(role.roleArn, role.displayName);
                      go("pipelines");
                    })
                  }
                >
                  {role.displayName}
                </button>{" "}
                <code>{role.roleArn}</code>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
