# Sourced by the bench scripts: starts an api process of the release build
# ($BIN, or the target folder's) on port $PORT, on a scratch database and
# with queue and cache prefixes of its own, in a temporary folder; stops it
# and drops the database when the script ends. Sets U (its URL), DB, API,
# T (the token of the root of a new account "bench"), whose pipeline
# "site" (an upload, then a no-op shell action) it makes.
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/pipewright}
BIN=$(realpath "$BIN")
DB=pw_bench_$$
cd "$(mktemp -d)"
mkdir -p data
PIPEWRIGHT_DATA_DIR=$PWD/data PIPEWRIGHT_LISTEN=127.0.0.1:$PORT PIPEWRIGHT_LOG=${LOGF:-warn} DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB PIPEWRIGHT_AMQP_PREFIX=bench$$ PIPEWRIGHT_REDIS_PREFIX=bench$$: "$BIN" api > api.out 2> api.err &
API=$!
trap 'kill $API 2>/dev/null; wait $API 2>/dev/null; psql -h 127.0.0.1 -U postgres -Atc "drop database $DB" >/dev/null 2>&1 || true' EXIT
U=http://127.0.0.1:$PORT
for i in $(seq 1 100); do curl -sf $U/healthz >/dev/null && break; sleep 0.2; done
curl -s -XPOST $U/v1/accounts -H 'content-type: application/json' -d '{"alias": "bench", "rootPassword": "correct horse battery"}' >/dev/null
T=$(curl -s -XPOST $U/v1/auth/sign-in -H 'content-type: application/json' -d '{"account": "bench", "userName": "root", "password": "correct horse battery"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
curl -s -XPOST $U/v1/pipelines -H "authorization: Bearer $T" -H 'content-type: application/json' -d '{"pipeline": {"name": "site", "stages": [{"name": "Source", "actions": [{"name": "Upload", "actionTypeId": {"category": "Source", "owner": "Pipewright", "provider": "Upload", "version": "1"}, "outputArtifacts": [{"name": "Src"}]}]}, {"name": "Build", "actions": [{"name": "B", "actionTypeId": {"category": "Build", "owner": "Pipewright", "provider": "Shell", "version": "1"}, "configuration": {"commands": "true"}, "inputArtifacts": [{"name": "Src"}]}]}]}}' -o /dev/null -w "create %{http_code}\n"
