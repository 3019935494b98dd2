#!/bin/bash
# Audited GetPipeline throughput (issue 14): an api process of the release
# build on a scratch database, wrk on GetPipeline for D seconds with C
# connections, then the GetPipeline events the audit log holds; /healthz's
# rate on the same process beside it. Needs wrk (apt-get install wrk).
# The GetPipeline answers the server sent (its own /metrics) are compared
# with the events recorded: they must be equal. AS=user calls as an IAM
# user with PipewrightReadOnlyAccess (whose policies are evaluated on every
# call) instead of the account's root.
#   cargo build --release && C=32 D=15 bash bench/audited-reads.sh
set -e
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/pipewright}
BIN=$(realpath "$BIN")
DB=pw_wrk_$$
cd "$(mktemp -d)"
mkdir -p data
PIPEWRIGHT_DATA_DIR=$PWD/data PIPEWRIGHT_LISTEN=127.0.0.1:18080 PIPEWRIGHT_LOG=${LOGF:-warn} DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB PIPEWRIGHT_AMQP_PREFIX=wrk$$ PIPEWRIGHT_REDIS_PREFIX=wrk$$: "$BIN" api > api.out 2> api.err &
API=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
U=http://127.0.0.1:18080
curl -s -XPOST $U/v1/accounts -H 'content-type: application/json' -d '{"alias": "bench", "rootPassword": "correct horse battery"}' >/dev/null
T=$(curl -s -XPOST $U/v1/auth/sign-in -H 'content-type: application/json' -d '{"account": "bench", "userName": "root", "password": "correct horse battery"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
curl -s -XPOST $U/v1/pipelines -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"pipeline": {"name": "site", "stages": [{"name": "Source", "actions": [{"name": "Upload", "actionTypeId": {"category": "Source", "owner": "Pipewright", "provider": "Upload", "version": "1"}, "outputArtifacts": [{"name": "Src"}]}]}, {"name": "Build", "actions": [{"name": "B", "actionTypeId": {"category": "Build", "owner": "Pipewright", "provider": "Shell", "version": "1"}, "configuration": {"commands": "true"}, "inputArtifacts": [{"name": "Src"}]}]}]}}' -o /dev/null -w "create %{http_code}\n"
if [ "${AS:-root}" = user ]; then
  curl -s -XPOST $U/v1/iam/users -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"userName": "reader"}' >/dev/null
  curl -s -XPUT $U/v1/iam/users/reader/login-profile -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"password": "another good password"}' >/dev/null
  curl -s -XPOST $U/v1/iam/users/reader/attached-policies -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"policyArn": "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess"}' >/dev/null
  T=$(curl -s -XPOST $U/v1/auth/sign-in -H 'content-type: application/json' -d '{"account": "bench", "userName": "reader", "password": "another good password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
  echo "calling as the IAM user reader (PipewrightReadOnlyAccess)"
fi
answered() { curl -s $U/metrics | awk -F' ' '/^pipewright_http_requests_total\{method="GET",route="\/v1\/pipelines\/\{name\}",status="200"\}/ { print $2 }'; }
served_before=$(answered); served_before=${served_before:-0}
before=$(psql -h 127.0.0.1 -U postgres -d $DB -Atc "select count(*) from audit_events where event_name='GetPipeline'")
echo "== GetPipeline"
wrk -t2 -c${C:-32} -d${D:-15}s --latency -H "authorization: Bearer $T" $U/v1/pipelines/site | grep -E "requests in|Requests/sec|50%|99%|Non-2xx"
after=$(psql -h 127.0.0.1 -U postgres -d $DB -Atc "select count(*) from audit_events where event_name='GetPipeline'")
served_after=$(answered)
echo "GetPipeline answered 200 by the server: $((served_after-served_before)); recorded GetPipeline events: $((after-before))"
echo "(wrk counts the answers it read; those in flight when it stopped were answered and recorded too)"
echo "== /healthz"
wrk -t2 -c${C:-32} -d5s --latency $U/healthz | grep -E "requests in|Requests/sec|50%|99%"
kill $API; wait $API 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -Atc "drop database $DB" >/dev/null 2>&1 || true
