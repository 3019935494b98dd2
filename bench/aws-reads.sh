#!/bin/bash
# The AWS endpoint's cost (issue 18): audited GetPipeline as one IAM user
# (PipewrightReadOnlyAccess) with one access key, on an api process of the
# release build on a scratch database — first through /v1 with a bearer
# token exchanged from the key, then through /aws signed with SigV4 by the
# same key (botocore signs one request, which wrk replays: a signature holds
# for 15 minutes). Then the GetPipeline events the audit log holds, which
# must count every answer. Needs wrk (apt-get install wrk) and botocore.
#   cargo build --release && C=32 D=15 bash bench/aws-reads.sh
set -e
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/pipewright}
BIN=$(realpath "$BIN")
DB=pw_aws_$$
cd "$(mktemp -d)"
mkdir -p data
PIPEWRIGHT_DATA_DIR=$PWD/data PIPEWRIGHT_LISTEN=127.0.0.1:18081 PIPEWRIGHT_LOG=${LOGF:-warn} DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB PIPEWRIGHT_AMQP_PREFIX=aws$$ PIPEWRIGHT_REDIS_PREFIX=aws$$: "$BIN" api > api.out 2> api.err &
API=$!
trap 'kill $API 2>/dev/null; wait $API 2>/dev/null; psql -h 127.0.0.1 -U postgres -Atc "drop database $DB" >/dev/null 2>&1 || true' EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.2; done
U=http://127.0.0.1:18081
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -s -XPOST $U/v1/accounts -H 'content-type: application/json' -d '{"alias": "bench", "rootPassword": "correct horse battery"}' >/dev/null
T=$(curl -s -XPOST $U/v1/auth/sign-in -H 'content-type: application/json' -d '{"account": "bench", "userName": "root", "password": "correct horse battery"}' | json '["accessToken"]')
curl -s -XPOST $U/v1/pipelines -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"pipeline": {"name": "site", "stages": [{"name": "Source", "actions": [{"name": "Upload", "actionTypeId": {"category": "Source", "owner": "Pipewright", "provider": "Upload", "version": "1"}, "outputArtifacts": [{"name": "Src"}]}]}, {"name": "Build", "actions": [{"name": "B", "actionTypeId": {"category": "Build", "owner": "Pipewright", "provider": "Shell", "version": "1"}, "configuration": {"commands": "true"}, "inputArtifacts": [{"name": "Src"}]}]}]}}' -o /dev/null -w "create %{http_code}\n"
curl -s -XPOST $U/v1/iam/users -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"userName": "reader"}' >/dev/null
curl -s -XPOST $U/v1/iam/users/reader/attached-policies -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"policyArn": "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess"}' >/dev/null
KEY=$(curl -s -XPOST $U/v1/iam/users/reader/access-keys -H "authorization: Bearer $T")
ID=$(echo "$KEY" | json '["accessKey"]["accessKeyId"]')
SECRET=$(echo "$KEY" | json '["accessKey"]["secretAccessKey"]')
BEARER=$(curl -s -XPOST $U/v1/auth/token -H 'content-type: application/json' -d "{\"accessKeyId\": \"$ID\", \"secretAccessKey\": \"$SECRET\"}" | json '["accessToken"]')
# One GetPipeline request signed by botocore, as a wrk script.
python3 - "$U" "$ID" "$SECRET" > signed.lua <<'PY'
import sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, key, secret = sys.argv[1:4]
body = '{"name": "site"}'
request = AWSRequest(method="POST", url=url + "/aws", data=body.encode(),
    headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "CodePipeline_20150709.GetPipeline"})
SigV4Auth(Credentials(key, secret), "codepipeline", "local").add_auth(request)
print('wrk.method = "POST"')
print("wrk.body = [[%s]]" % body)
for name, value in request.headers.items():
    print('wrk.headers["%s"] = [[%s]]' % (name, value))
PY
events() { psql -h 127.0.0.1 -U postgres -d $DB -Atc "select count(*) from audit_events where event_name='GetPipeline'"; }
before=$(events)
echo "== /v1 GetPipeline, bearer token from the key"
wrk -t2 -c${C:-32} -d${D:-15}s --latency -H "authorization: Bearer $BEARER" $U/v1/pipelines/site | grep -E "requests in|Requests/sec|50%|99%|Non-2xx"
middle=$(events)
echo "recorded GetPipeline events: $((middle-before))"
echo "== /aws GetPipeline, SigV4 by the key (JSON 1.1)"
wrk -t2 -c${C:-32} -d${D:-15}s --latency -s signed.lua $U/aws | grep -E "requests in|Requests/sec|50%|99%|Non-2xx"
after=$(events)
echo "recorded GetPipeline events: $((after-middle))"
