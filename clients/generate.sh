#!/usr/bin/env bash
# Generates the Python and TypeScript clients from the committed OpenAPI
# document (openapi/openapi.json). The generated code is never committed nor
# edited: run this again after the document changes. Fails on any warning a
# generator gives about the document.
#
#   clients/python/pipewright_client/     openapi-python-client
#   clients/typescript/generated/schema.d.ts   openapi-typescript (typescript/generate.mjs; calls go through openapi-fetch)
#
# Needs openapi-python-client (PyPI) and the npm packages of
# clients/typescript/package.json (`npm ci` there); deploy/local-services.sh
# installs both.
set -euo pipefail
cd "$(dirname "$0")"
document=../openapi/openapi.json

echo "== Python: openapi-python-client"
rm -rf python/pipewright_client
log=$(mktemp)
trap 'rm -f "$log"' EXIT
openapi-python-client generate --path "$document" --meta none --output-path python/pipewright_client \
  --config python/openapi-python-client.yaml >"$log" 2>&1 || { cat "$log"; exit 1; }
if grep -qiE 'warning|unable|unsupported|cannot|error' "$log"; then
  cat "$log"
  echo "openapi-python-client warned about the document (above)" >&2
  exit 1
fi

echo "== TypeScript: openapi-typescript"
[ -d typescript/node_modules ] || (cd typescript && npm ci --no-audit --no-fund)
(cd typescript && node generate.mjs) >"$log" 2>&1 || { cat "$log"; exit 1; }
if grep -qiE 'warn|error' "$log"; then
  cat "$log"
  echo "openapi-typescript warned about the document (above)" >&2
  exit 1
fi
echo "generated: python/pipewright_client, typescript/generated/schema.d.ts"
