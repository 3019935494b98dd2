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
PORT=18081
source "$(dirname "$0")/scratch-api.sh"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
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
