#!/usr/bin/env python3
"""Checks deploy/kubernetes/*.yaml (and deploy/compose.yaml) without a
cluster (CI runs it).

Every document is parsed and, for Kubernetes' own kinds, validated against
the Kubernetes schemas (kubernetes-validate, strict: an unknown or
misspelt field fails). Then what an operator relies on is checked: each
container has resources, a securityContext and probes; the api runs as
non-root on a read-only root; each Deployment has a PodDisruptionBudget
that selects it; the Secret gives the keys every process must share; the
worker scales on its job queue. Exits 1 naming each problem.
"""

import sys
from pathlib import Path

import kubernetes_validate
import yaml

KUBERNETES = "1.30"
HERE = Path(__file__).resolve().parent
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


documents = []
for path in sorted(HERE.glob("*.yaml")):
    try:
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problem(path.name, f"not YAML: {e}")
        continue
    for doc in loaded:
        name = f"{path.name} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        documents.append((name, doc))
        if doc.get("apiVersion", "").startswith("keda.sh/"):
            continue  # a custom resource (KEDA): checked below
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            problem(name, f"invalid at {'.'.join(str(p) for p in e.path)}: {e.message}")
        except Exception as e:  # an unknown kind or version
            problem(name, f"cannot be validated: {e}")

kinds = {}
for name, doc in documents:
    kinds.setdefault(doc["kind"], []).append((name, doc))

for name, doc in kinds.get("Deployment", []):
    spec = doc["spec"]["template"]["spec"]
    labels = doc["spec"]["template"]["metadata"]["labels"]
    role = labels.get("role")
    if "seccompProfile" not in spec.get("securityContext", {}):
        problem(name, "the pod names no seccompProfile")
    for c in spec["containers"]:
        where = f"{name} container {c['name']}"
        resources = c.get("resources", {})
        if not resources.get("requests", {}).get("cpu") or not resources.get("requests", {}).get("memory"):
            problem(where, "no cpu and memory requests")
        if not resources.get("limits", {}).get("memory"):
            problem(where, "no memory limit")
        sc = c.get("securityContext") or {}
        if not sc:
            problem(where, "no securityContext")
        elif "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problem(where, "capabilities are not dropped (drop: [ALL], then add what is needed)")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                problem(where, f"no {probe}")
        if role == "api":
            pod = spec.get("securityContext", {})
            if not pod.get("runAsNonRoot") or sc.get("allowPrivilegeEscalation", True) or not sc.get("readOnlyRootFilesystem"):
                problem(where, "the api must run as non-root, without privilege escalation, on a read-only root")
        names = {e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])}
        if "pipewright" not in names:
            problem(where, "does not take the pipewright Secret")
    if not any(selects(pdb["spec"].get("selector"), labels) for _, pdb in kinds.get("PodDisruptionBudget", [])):
        problem(name, "no PodDisruptionBudget selects its pods")

secrets = kinds.get("Secret", [])
for key in ("DATABASE_URL", "AMQP_URL", "REDIS_URL", "PIPEWRIGHT_SECRETS_KEY", "PIPEWRIGHT_ARTIFACT_STORE"):
    if not any(key in doc.get("stringData", {}) or key in doc.get("data", {}) for _, doc in secrets):
        problem("Secret pipewright", f"has no {key} (every pod needs the same one)")

scaled = kinds.get("ScaledObject", [])
if not scaled:
    problem("worker", "nothing scales the workers (a KEDA ScaledObject on the job queue)")
deployments = {doc["metadata"]["name"] for _, doc in kinds.get("Deployment", [])}
for name, doc in scaled:
    spec = doc.get("spec", {})
    if doc.get("apiVersion") != "keda.sh/v1alpha1":
        problem(name, "apiVersion must be keda.sh/v1alpha1")
    if spec.get("scaleTargetRef", {}).get("name") not in deployments:
        problem(name, "scaleTargetRef names no Deployment of these manifests")
    for trigger in spec.get("triggers", []):
        meta = trigger.get("metadata", {})
        if trigger.get("type") != "rabbitmq" or not meta.get("queueName", "").endswith(".jobs"):
            problem(name, "the trigger must be the rabbitmq job queue (<prefix>.jobs)")
        if meta.get("mode") not in ("QueueLength", "MessageRate") or not str(meta.get("value", "")).isdigit():
            problem(name, "the trigger needs mode QueueLength (or MessageRate) and a numeric value")
        if not (meta.get("host") or meta.get("hostFromEnv")):
            problem(name, "the trigger needs the broker's address (hostFromEnv: AMQP_URL)")

# docker compose: Pipewright has a healthcheck, and waits for its services'.
compose = yaml.safe_load((HERE.parent / "compose.yaml").read_text())
service = compose.get("services", {}).get("pipewright", {})
if "healthcheck" not in service:
    problem("compose.yaml pipewright", "no healthcheck")
depends = service.get("depends_on", {})
if isinstance(depends, list):
    problem("compose.yaml pipewright", "depends_on must wait for each service to be healthy (condition: service_healthy)")
    depends = {}
for dependency, condition in depends.items():
    if (condition or {}).get("condition") != "service_healthy" or "healthcheck" not in compose["services"][dependency]:
        problem(f"compose.yaml {dependency}", "Pipewright must wait for it to be healthy")

for p in problems:
    print(f"deploy/kubernetes: {p}", file=sys.stderr)
print(f"deploy/kubernetes: {len(documents)} documents checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
