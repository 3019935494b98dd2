#!/usr/bin/env bash
# Fuzzes the policy parser, the simulator and the evaluator for a bounded
# time (default 60 s): ./run.sh [seconds]. Needs cargo-fuzz
# (cargo install cargo-fuzz). libFuzzer's instrumentation wants nightly
# flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
# Seed with the IAM conformance requests and their policies.
mkdir -p corpus/policy
python3 - <<'PY'
import json
for i, line in enumerate(open("../tests/data/iam-conformance.jsonl")):
    request = json.loads(line)["request"]
    open(f"corpus/policy/seed{i:03}.json", "w").write(request)
    try:
        for j, policy in enumerate(json.loads(request).get("identityPolicies") or []):
            open(f"corpus/policy/seed{i:03}-{j}.json", "w").write(json.dumps(policy))
    except ValueError:
        pass
PY
RUSTC_BOOTSTRAP=1 cargo fuzz run policy corpus/policy -- -max_total_time="$seconds" -rss_limit_mb=2048
