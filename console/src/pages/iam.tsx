// IAM: the account's users, groups, roles and managed policies, each
// readable with its policies; inline and managed policies edited with the
// service's validation shown; a role's trust policy; and the policy
// simulator ("can this principal do this action on this resource?").
import { useState } from "preact/hooks";
import { api, identity, must, type Schemas } from "../api";
import { go, href } from "../app";
import { Dialog, DialogButtons, Failure, Field, When, useAction, useRead, value } from "../ui";

type Kind = "users" | "groups" | "roles";
type Document = Schemas["PolicyDocumentOrText"];

const TABS: [string, string][] = [
  ["users", "Users"],
  ["groups", "Groups"],
  ["roles", "Roles"],
  ["policies", "Policies"],
  ["simulator", "Policy simulator"],
];

export function IamPage({ route }: { route: string[] }) {
  const [tab = "users", name] = route;
  let body;
  if (tab === "policies" && name) body = <ManagedPolicy key={name} name={name} />;
  else if (tab === "policies") body = <Policies />;
  else if (tab === "simulator") body = <Simulator />;
  else if ((tab === "users" || tab === "groups" || tab === "roles") && name) body = <Principal key={`${tab}/${name}`} kind={tab} name={name} />;
  else if (tab === "users" || tab === "groups" || tab === "roles") body = <Principals key={tab} kind={tab} />;
  return (
    <section aria-labelledby="iam">
      <h1 id="iam">Identity and access</h1>
      <nav class="tabs" aria-label="IAM">
        {TABS.map(([id, label]) => (
          <a key={id} href={href("iam", id)} aria-current={tab === id ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {body}
    </section>
  );
}

/** A document as the editor shows it. */
const pretty = (document: Document) =>
  JSON.stringify(typeof document === "string" ? (JSON.parse(document) as unknown) : document, null, 2);

interface Row {
  name: string;
  arn: string;
  created: string;
}

async function listPrincipals(kind: Kind): Promise<Row[]> {
  if (kind === "users") {
    const found = await must(api.GET("/v1/iam/users", { params: { query: { maxResults: 1000 } } }));
    return found.users.map((u) => ({ name: u.userName, arn: u.arn, created: u.createDate }));
  }
  if (kind === "groups") {
    const found = await must(api.GET("/v1/iam/groups", { params: { query: { maxResults: 1000 } } }));
    return found.groups.map((g) => ({ name: g.groupName, arn: g.arn, created: g.createDate }));
  }
  const found = await must(api.GET("/v1/iam/roles", { params: { query: { maxResults: 1000 } } }));
  return found.roles.map((r) => ({ name: r.roleName, arn: r.arn, created: r.createDate }));
}

function Principals({ kind }: { kind: Kind }) {
  const [rows, error] = useRead(() => listPrincipals(kind), [kind]);
  const [creating, setCreating] = useState(false);
  const label = { users: "Users", groups: "Groups", roles: "Roles" }[kind];
  const one = { users: "user", groups: "group", roles: "role" }[kind];
  return (
    <>
      <div class="title">
        <h2>{label}</h2>
        <div class="buttons">
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            Create {one}
          </button>
        </div>
      </div>
      {creating && <CreatePrincipal kind={kind} onClose={() => setCreating(false)} />}
      <Failure error={error} />
      {rows && rows.length === 0 && <p>No {label.toLowerCase()} yet.</p>}
      {rows && rows.length > 0 && (
        <table class="list" aria-label={label}>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">ARN</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.arn}>
                <td>
                  <a href={href("iam", kind, row.name)}>{row.name}</a>
                </td>
                <td class="wrap">
                  <code>{row.arn}</code>
                </td>
                <td>
                  <When at={row.created} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** The inline-policy operations of users, groups and roles, one way for each kind. */
const inline = {
  list: (kind: Kind, name: string) => {
    if (kind === "users") return must(api.GET("/v1/iam/users/{userName}/policies", { params: { path: { userName: name } } }));
    if (kind === "groups") return must(api.GET("/v1/iam/groups/{groupName}/policies", { params: { path: { groupName: name } } }));
    return must(api.GET("/v1/iam/roles/{roleName}/policies", { params: { path: { roleName: name } } }));
  },
  get: (kind: Kind, name: string, policyName: string) => {
    if (kind === "users")
      return must(api.GET("/v1/iam/users/{userName}/policies/{policyName}", { params: { path: { userName: name, policyName } } }));
    if (kind === "groups")
      return must(api.GET("/v1/iam/groups/{groupName}/policies/{policyName}", { params: { path: { groupName: name, policyName } } }));
    return must(api.GET("/v1/iam/roles/{roleName}/policies/{policyName}", { params: { path: { roleName: name, policyName } } }));
  },
  put: (kind: Kind, name: string, policyName: string, text: string) => {
    const body = { policyDocument: text };
    if (kind === "users")
      return must(api.PUT("/v1/iam/users/{userName}/policies/{policyName}", { params: { path: { userName: name, policyName } }, body }));
    if (kind === "groups")
      return must(
        api.PUT("/v1/iam/groups/{groupName}/policies/{policyName}", { params: { path: { groupName: name, policyName } }, body }),
      );
    return must(api.PUT("/v1/iam/roles/{roleName}/policies/{policyName}", { params: { path: { roleName: name, policyName } }, body }));
  },
  attached: (kind: Kind, name: string) => {
    if (kind === "users")
      return must(api.GET("/v1/iam/users/{userName}/attached-policies", { params: { path: { userName: name } } }));
    if (kind === "groups")
      return must(api.GET("/v1/iam/groups/{groupName}/attached-policies", { params: { path: { groupName: name } } }));
    return must(api.GET("/v1/iam/roles/{roleName}/attached-policies", { params: { path: { roleName: name } } }));
  },
};

function Principal({ kind, name }: { kind: Kind; name: string }) {
  const [facts, factsError, reread] = useRead(async () => {
    if (kind === "users") {
      const { user } = await must(api.GET("/v1/iam/users/{userName}", { params: { path: { userName: name } } }));
      return { arn: user.arn, id: user.userId, created: user.createDate, members: [] as string[], trust: null as Document | null };
    }
    if (kind === "groups") {
      const found = await must(api.GET("/v1/iam/groups/{groupName}", { params: { path: { groupName: name } } }));
      return {
        arn: found.group.arn,
        id: found.group.groupId,
        created: found.group.createDate,
        members: found.users.map((u) => u.userName),
        trust: null,
      };
    }
    const { role } = await must(api.GET("/v1/iam/roles/{roleName}", { params: { path: { roleName: name } } }));
    return { arn: role.arn, id: role.roleId, created: role.createDate, members: [], trust: role.assumeRolePolicyDocument };
  }, [kind, name]);
  const [names, namesError, rereadNames] = useRead(() => inline.list(kind, name), [kind, name]);
  const [attached, attachedError, rereadAttached] = useRead(() => inline.attached(kind, name), [kind, name]);
  const [attaching, setAttaching] = useState(false);
  const detach = useAction();
  const [editing, setEditing] = useState<{ policyName: string; text: string; isNew: boolean } | null>(null);
  const [trustOpen, setTrustOpen] = useState(false);
  const open = useAction();

  const openPolicy = (policyName: string) =>
    void open.run(async () => {
      const found = await inline.get(kind, name, policyName);
      setEditing({ policyName, text: pretty(found.policyDocument), isNew: false });
    });

  return (
    <>
      <p class="crumbs">
        <a href={href("iam", kind)}>{kind[0]?.toUpperCase() + kind.slice(1)}</a> › {name}
      </p>
      <h2>{name}</h2>
      <Failure error={factsError} />
      {facts && (
        <dl class="facts">
          <dt>ARN</dt>
          <dd>
            <code>{facts.arn}</code>
          </dd>
          <dt>Id</dt>
          <dd>
            <code>{facts.id}</code>
          </dd>
          <dt>Created</dt>
          <dd>
            <When at={facts.created} />
          </dd>
          {kind === "groups" && (
            <>
              <dt>Users</dt>
              <dd>{facts.members.length ? facts.members.join(", ") : "none"}</dd>
            </>
          )}
        </dl>
      )}
      {kind === "groups" && facts && <Members group={name} members={facts.members} onChange={reread} />}
      {facts?.trust && (
        <>
          <h3>Trust policy</h3>
          <p class="muted">Who may assume this role (sts:AssumeRole).</p>
          <pre class="json" tabIndex={0} aria-label="Trust policy">
            {pretty(facts.trust)}
          </pre>
          <button type="button" onClick={() => setTrustOpen(true)}>
            Edit trust policy
          </button>
        </>
      )}
      <h3>Inline policies</h3>
      <Failure error={namesError} />
      <Failure error={open.error} />
      <ul class="plain">
        {names?.policyNames.map((policyName) => (
          <li key={policyName}>
            <button type="button" class="link" onClick={() => openPolicy(policyName)}>
              {policyName}
            </button>
          </li>
        ))}
        {names && names.policyNames.length === 0 && <li class="muted">None.</li>}
      </ul>
      <button type="button" onClick={() => setEditing({ policyName: "", text: NEW_POLICY, isNew: true })}>
        Add inline policy
      </button>
      <h3>Attached managed policies</h3>
      <Failure error={attachedError} />
      <ul class="plain">
        {attached?.attachedPolicies.map((p) => (
          <li key={p.policyArn}>
            {p.policyArn.includes(":policy/") && !p.policyArn.startsWith("arn:pw:iam::pw:") ? (
              <a href={href("iam", "policies", p.policyName)}>{p.policyName}</a>
            ) : (
              p.policyName
            )}{" "}
            <code class="muted small">{p.policyArn}</code>{" "}
            <button
              type="button"
              class="small"
              aria-label={`Detach ${p.policyName}`}
              disabled={detach.busy}
              onClick={() =>
                void detach.run(async () => {
                  await attachment(kind, name, p.policyArn, "DELETE");
                  rereadAttached();
                })
              }
            >
              Detach
            </button>
          </li>
        ))}
        {attached && attached.attachedPolicies.length === 0 && <li class="muted">None.</li>}
      </ul>
      <Failure error={detach.error} />
      <button type="button" onClick={() => setAttaching(true)}>
        Attach policy
      </button>
      {attaching && (
        <AttachPolicy
          onAttach={async (policyArn) => {
            await attachment(kind, name, policyArn, "POST");
            rereadAttached();
          }}
          onClose={() => setAttaching(false)}
        />
      )}
      {kind === "users" && <ConsolePassword userName={name} />}
      {editing && (
        <PolicyEditor
          title={editing.isNew ? "Add inline policy" : `Inline policy ${editing.policyName}`}
          initial={editing.text}
          nameField={editing.isNew}
          initialName={editing.policyName}
          onSave={async (policyName, text) => {
            await inline.put(kind, name, policyName, text);
            rereadNames();
          }}
          onClose={() => setEditing(null)}
        />
      )}
      {trustOpen && facts?.trust && (
        <PolicyEditor
          title="Edit trust policy"
          initial={pretty(facts.trust)}
          onSave={async (_, text) => {
            await must(api.PUT("/v1/iam/roles/{roleName}/trust-policy", { params: { path: { roleName: name } }, body: { policyDocument: text } }));
            reread();
          }}
          onClose={() => setTrustOpen(false)}
        />
      )}
    </>
  );
}

const NEW_POLICY = JSON.stringify(
  { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "codepipeline:Get*", Resource: "*" }] },
  null,
  2,
);

/** A policy document in an editor; the service validates it and its errors are shown. */
function PolicyEditor(props: {
  title: string;
  initial: string;
  nameField?: boolean;
  initialName?: string;
  onSave: (name: string, text: string) => Promise<void>;
  onClose: () => void;
}) {
  const [text, setText] = useState(props.initial);
  const [name, setName] = useState(props.initialName ?? "");
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await props.onSave(name.trim(), text);
      props.onClose();
    });
  };
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <form onSubmit={submit}>
        {props.nameField && (
          <Field label="Policy name">
            <input name="policyName" required value={name} onInput={(e) => setName(value(e))} />
          </Field>
        )}
        <Field label="Policy document" hint="IAM's JSON: Version and Statement">
          <textarea name="policyDocument" class="editor" rows={18} spellcheck={false} value={text} onInput={(e) => setText(value(e))} />
        </Field>
        <Failure error={action.error} />
        <DialogButtons onCancel={props.onClose} busy={action.busy} label="Save policy" />
      </form>
    </Dialog>
  );
}

function Policies() {
  const [scope, setScope] = useState("Local");
  const [found, error] = useRead(
    () => must(api.GET("/v1/iam/policies", { params: { query: { scope, maxResults: 1000 } } })),
    [scope],
  );
  return (
    <>
      <h2>Managed policies</h2>
      <label class="inline">
        Scope{" "}
        <select aria-label="Scope" value={scope} onChange={(e) => setScope(value(e))}>
          <option value="Local">This account's</option>
          <option value="All">All</option>
        </select>
      </label>
      <Failure error={error} />
      {found && (
        <table class="list" aria-label="Policies">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Default version</th>
              <th scope="col">Attachments</th>
              <th scope="col">Description</th>
            </tr>
          </thead>
          <tbody>
            {found.policies.map((p) => (
              <tr key={p.arn}>
                <td>
                  {p.arn.startsWith("arn:pw:iam::pw:") ? p.policyName : <a href={href("iam", "policies", p.policyName)}>{p.policyName}</a>}
                  <div class="muted small wrap">{p.arn}</div>
                </td>
                <td>{p.defaultVersionId}</td>
                <td>{p.attachmentCount}</td>
                <td>{p.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function ManagedPolicy({ name }: { name: string }) {
  const [found, error, reread] = useRead(async () => {
    const [policy, versions] = await Promise.all([
      must(api.GET("/v1/iam/policies/{policyName}", { params: { path: { policyName: name } } })),
      must(api.GET("/v1/iam/policies/{policyName}/versions", { params: { path: { policyName: name } } })),
    ]);
    return { policy: policy.policy, versions: versions.versions };
  }, [name]);
  const [editing, setEditing] = useState(false);
  const current = found?.versions.find((v) => v.isDefaultVersion);
  return (
    <>
      <p class="crumbs">
        <a href={href("iam", "policies")}>Policies</a> › {name}
      </p>
      <h2>{name}</h2>
      <Failure error={error} />
      {found && (
        <>
          <dl class="facts">
            <dt>ARN</dt>
            <dd>
              <code>{found.policy.arn}</code>
            </dd>
            <dt>Default version</dt>
            <dd>{found.policy.defaultVersionId}</dd>
            <dt>Attachments</dt>
            <dd>{found.policy.attachmentCount}</dd>
          </dl>
          {current && (
            <pre class="json" tabIndex={0} aria-label="Policy document">
              {pretty(current.document)}
            </pre>
          )}
          <button type="button" class="primary" onClick={() => setEditing(true)}>
            Edit policy
          </button>
          <h3>Versions</h3>
          <ul class="plain">
            {found.versions.map((v) => (
              <li key={v.versionId}>
                {v.versionId} {v.isDefaultVersion && <strong>(default)</strong>} <When at={v.createDate} />
              </li>
            ))}
          </ul>
        </>
      )}
      {editing && current && (
        <PolicyEditor
          title={`Edit ${name}`}
          initial={pretty(current.document)}
          onSave={async (_, text) => {
            // A managed policy changes by a new default version, as in IAM.
            await must(
              api.POST("/v1/iam/policies/{policyName}/versions", {
                params: { path: { policyName: name } },
                body: { policyDocument: text, setAsDefault: true },
              }),
            );
            reread();
          }}
          onClose={() => setEditing(false)}
        />
      )}
    </>
  );
}

function Simulator() {
  const [principal, setPrincipal] = useState("");
  const [actions, setActions] = useState("codepipeline:StartPipelineExecution");
  const [resources, setResources] = useState("");
  const [results, setResults] = useState<Schemas["EvaluationResult"][] | null>(null);
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    const list = (text: string) =>
      text
        .split(/[\s,]+/)
        .map((s) => s.trim())
        .filter(Boolean);
    void action.run(async () => {
      const found = await must(
        api.POST("/v1/iam/simulate-principal-policy", {
          body: { policySourceArn: principal.trim(), actionNames: list(actions), resourceArns: list(resources) },
        }),
      );
      setResults(found.evaluationResults);
    });
  };
  return (
    <>
      <h2>Policy simulator</h2>
      <p>Can this principal do this action on this resource? The answer comes from the same evaluation every call goes through.</p>
      <form onSubmit={submit} class="narrow">
        <Field label="Principal ARN" hint="A user, group or role of this account, e.g. arn:pw:iam::111122223333:user/alice">
          <input name="policySourceArn" required value={principal} onInput={(e) => setPrincipal(value(e))} />
        </Field>
        <Field label="Actions" hint="One or more, separated by spaces or commas">
          <input name="actionNames" required value={actions} onInput={(e) => setActions(value(e))} />
        </Field>
        <Field label="Resource ARNs" hint="Optional; empty means *">
          <input name="resourceArns" value={resources} onInput={(e) => setResources(value(e))} />
        </Field>
        <Failure error={action.error} />
        <button type="submit" class="primary" disabled={action.busy}>
          Simulate
        </button>
      </form>
      {results && (
        <table class="list" aria-label="Simulation results">
          <thead>
            <tr>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">Decision</th>
              <th scope="col">Because of</th>
            </tr>
          </thead>
          <tbody>
            {results.map((r) => (
              <tr key={`${r.evalActionName} ${r.evalResourceName}`}>
                <td>{r.evalActionName}</td>
                <td class="wrap">
                  <code>{r.evalResourceName}</code>
                </td>
                <td>
                  <span class={r.evalDecision === "allowed" ? "status ok" : "status bad"}>{r.evalDecision}</span>
                </td>
                <td>
                  {r.matchedStatements.map((m) => (
                    <div key={`${m.sourcePolicyId}-${m.statementIndex}`} class="small">
                      {m.sourcePolicyId} statement {m.statementIndex + 1} ({m.effect})
                    </div>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** Attaches (POST) or detaches (DELETE) a managed policy, for each kind. */
function attachment(kind: Kind, name: string, policyArn: string, method: "POST" | "DELETE") {
  if (method === "POST") {
    const body = { policyArn };
    if (kind === "users")
      return must(api.POST("/v1/iam/users/{userName}/attached-policies", { params: { path: { userName: name } }, body }));
    if (kind === "groups")
      return must(api.POST("/v1/iam/groups/{groupName}/attached-policies", { params: { path: { groupName: name } }, body }));
    return must(api.POST("/v1/iam/roles/{roleName}/attached-policies", { params: { path: { roleName: name } }, body }));
  }
  const query = { policyArn };
  if (kind === "users")
    return must(api.DELETE("/v1/iam/users/{userName}/attached-policies", { params: { path: { userName: name }, query } }));
  if (kind === "groups")
    return must(api.DELETE("/v1/iam/groups/{groupName}/attached-policies", { params: { path: { groupName: name }, query } }));
  return must(api.DELETE("/v1/iam/roles/{roleName}/attached-policies", { params: { path: { roleName: name }, query } }));
}

function AttachPolicy(props: { onAttach: (policyArn: string) => Promise<void>; onClose: () => void }) {
  const [found, error] = useRead(() => must(api.GET("/v1/iam/policies", { params: { query: { scope: "All", maxResults: 1000 } } })), []);
  const [chosen, setChosen] = useState("");
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await props.onAttach(chosen);
      props.onClose();
    });
  };
  return (
    <Dialog title="Attach policy" onClose={props.onClose}>
      <form onSubmit={submit}>
        <Failure error={error} />
        <Field label="Policy">
          <select name="policyArn" required value={chosen} onChange={(e) => setChosen(value(e))}>
            <option value="">Choose a policy…</option>
            {found?.policies.map((p) => (
              <option key={p.arn} value={p.arn}>
                {p.policyName}
              </option>
            ))}
          </select>
        </Field>
        <Failure error={action.error} />
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={action.busy || !chosen}>
            Attach
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** A user's console password (IAM's login profile): set or changed. */
function ConsolePassword({ userName }: { userName: string }) {
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await must(api.PUT("/v1/iam/users/{userName}/login-profile", { params: { path: { userName } }, body: { password } }));
      setPassword("");
      setDone(true);
    });
  };
  return (
    <>
      <h3>Console password</h3>
      <form onSubmit={submit} class="narrow">
        <Field label="New password" hint="The account's password policy applies">
          <input type="password" name="password" required autoComplete="new-password" value={password} onInput={(e) => setPassword(value(e))} />
        </Field>
        <Failure error={action.error} />
        {done && <p role="status">The password is set: {userName} signs in with it.</p>}
        <button type="submit" disabled={action.busy}>
          Set password
        </button>
      </form>
    </>
  );
}

/** Creates a user (with a console password), a group, or a role (with its trust policy). */
function CreatePrincipal({ kind, onClose }: { kind: Kind; onClose: () => void }) {
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [trust, setTrust] = useState(() =>
    JSON.stringify(
      {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { PW: `arn:pw:iam::${identity()?.account ?? "111122223333"}:root` }, Action: "sts:AssumeRole" }],
      },
      null,
      2,
    ),
  );
  const action = useAction();
  const one = { users: "user", groups: "group", roles: "role" }[kind];
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const made = name.trim();
      if (kind === "users") {
        await must(api.POST("/v1/iam/users", { body: { userName: made } }));
        if (password) {
          await must(api.PUT("/v1/iam/users/{userName}/login-profile", { params: { path: { userName: made } }, body: { password } }));
        }
      } else if (kind === "groups") {
        await must(api.POST("/v1/iam/groups", { body: { groupName: made } }));
      } else {
        await must(api.POST("/v1/iam/roles", { body: { roleName: made, assumeRolePolicyDocument: trust } }));
      }
      onClose();
      go("iam", kind, made);
    });
  };
  return (
    <Dialog title={`Create ${one}`} onClose={onClose}>
      <form onSubmit={submit}>
        <Field label={`${one[0]?.toUpperCase()}${one.slice(1)} name`}>
          <input name="name" required value={name} onInput={(e) => setName(value(e))} />
        </Field>
        {kind === "users" && (
          <Field label="Console password" hint="Optional: lets the user sign in to the console">
            <input type="password" name="password" autoComplete="new-password" value={password} onInput={(e) => setPassword(value(e))} />
          </Field>
        )}
        {kind === "roles" && (
          <Field label="Trust policy" hint="Who may assume the role">
            <textarea name="trust" class="editor" rows={12} spellcheck={false} value={trust} onInput={(e) => setTrust(value(e))} />
          </Field>
        )}
        <Failure error={action.error} />
        <DialogButtons onCancel={onClose} busy={action.busy} label={`Create ${one}`} />
      </form>
    </Dialog>
  );
}

/** A group's users: added and removed. */
function Members({ group, members, onChange }: { group: string; members: string[]; onChange: () => void }) {
  const [users] = useRead(() => listPrincipals("users"), []);
  const [chosen, setChosen] = useState("");
  const action = useAction();
  const change = (userName: string, method: "PUT" | "DELETE") =>
    void action.run(async () => {
      const params = { path: { groupName: group, userName } };
      await must(method === "PUT" ? api.PUT("/v1/iam/groups/{groupName}/users/{userName}", { params }) : api.DELETE("/v1/iam/groups/{groupName}/users/{userName}", { params }));
      setChosen("");
      onChange();
    });
  const others = (users ?? []).filter((u) => !members.includes(u.name));
  return (
    <>
      <h3>Members</h3>
      <ul class="plain">
        {members.map((userName) => (
          <li key={userName}>
            <a href={href("iam", "users", userName)}>{userName}</a>{" "}
            <button type="button" class="small" aria-label={`Remove ${userName} from ${group}`} disabled={action.busy} onClick={() => change(userName, "DELETE")}>
              Remove
            </button>
          </li>
        ))}
        {members.length === 0 && <li class="muted">None.</li>}
      </ul>
      <form
        class="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (chosen) change(chosen, "PUT");
        }}
      >
        <label class="inline">
          User{" "}
          <select aria-label="User to add" value={chosen} onChange={(e) => setChosen(value(e))}>
            <option value="">Choose a user…</option>
            {others.map((u) => (
              <option key={u.name} value={u.name}>
                {u.name}
              </option>
            ))}
          </select>
        </label>{" "}
        <button type="submit" disabled={action.busy || !chosen}>
          Add user
        </button>
      </form>
      <Failure error={action.error} />
    </>
  );
}
