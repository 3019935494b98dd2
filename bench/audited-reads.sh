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
PORT=18080
source "$(dirname "$0")/scratch-api.sh"
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
