#!/usr/bin/env bash
# Makes sure PostgreSQL, RabbitMQ and Redis run on this (Debian) machine at
# their default local addresses: installs any that is missing from Debian's
# packages, starts any that is stopped, and waits until each answers.
# Idempotent: on a machine where all three run it only checks.
set -euo pipefail

say() { printf 'services: %s\n' "$*"; }

port_open() { timeout 1 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_for() { # name, seconds, command...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq 1 "$((seconds * 2))"); do
    if "$@" >/dev/null 2>&1; then say "$name is up"; return 0; fi
    sleep 0.5
  done
  say "$name did not come up within ${seconds}s"; return 1
}

apt_updated=
install() {
  if [ "$(id -u)" != 0 ]; then say "cannot install $* without root"; return 1; fi
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL: trust auth on 127.0.0.1, as the default DATABASE_URL expects.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL"
    install postgresql
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  wait_for PostgreSQL 30 pg_isready -h 127.0.0.1 -p 5432
else
  say "PostgreSQL is up"
fi

# Redis: nothing kept on disk.
if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  command -v redis-server >/dev/null || { say "installing Redis"; install redis-server; }
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis 30 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
else
  say "Redis is up"
fi

# RabbitMQ: guest/guest, which may log in from localhost.
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || { say "installing RabbitMQ"; install rabbitmq-server; }
  say "starting RabbitMQ (this takes a few seconds)"
  # Each quorum queue holds file handles; the usual 1024 runs out after a few
  # hundred queues (seen with the tests' leftovers), so as many as allowed.
  # (Debian's wrapper starts it through su, which resets the limit.)
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    (cd /var/lib/rabbitmq && su rabbitmq -s /bin/sh -c \
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; /usr/lib/rabbitmq/bin/rabbitmq-server -detached') || true
  else
    rabbitmq-server -detached || true
  fi
  wait_for RabbitMQ 120 port_open 5672
  timeout 60 rabbitmqctl await_startup >/dev/null 2>&1 || true
else
  say "RabbitMQ is up"
fi

# The runners' tools: Git sources use git; tests make archives with tar;
# every action's commands run in a bubblewrap sandbox (bwrap), as a user
# setpriv (util-linux) starts it as; the isolation tests probe with python3.
# A sandbox given a network (PIPEWRIGHT_SANDBOX_NETWORK, _DESTINATIONS) gets
# it from slirp4netns, behind a firewall nft sets through nsenter.
for tool in git:git tar:tar bwrap:bubblewrap setpriv:util-linux nsenter:util-linux python3:python3 \
            slirp4netns:slirp4netns nft:nftables ip:iproute2; do
  command -v "${tool%%:*}" >/dev/null || { say "installing ${tool#*:}"; install "${tool#*:}"; }
done

# slirp4netns runs as each action's own user and opens the TUN device as it
# (Debian's udev rule makes it 0666; some VMs and containers leave it 0600).
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ] && [ "$(id -u)" = 0 ]; then
  say "making /dev/net/tun usable by every user (0666, Debian's default)"
  chmod 0666 /dev/net/tun
fi

# The tests of the S3-compatible artifact store run an S3 API server of
# their own: moto's (from PyPI).
if ! command -v moto_server >/dev/null; then
  command -v pip3 >/dev/null || command -v pip >/dev/null || { say "installing pip"; install python3-pip; }
  say "installing moto (an S3-compatible server, for the tests)"
  pip=$(command -v pip3 || command -v pip)
  "$pip" install -q 'moto[server]' || "$pip" install -q --break-system-packages 'moto[server]'
  hash -r
  command -v moto_server >/dev/null || { say "moto_server is not on PATH after installing it"; exit 1; }
fi

# The check of deploy/kubernetes/ (a test runs it) validates the manifests
# against Kubernetes' schemas, which kubernetes-validate (PyPI) carries; the
# OpenAPI document is validated by openapi-spec-validator (PyPI), and its
# examples against their schemas by jsonschema.
if ! python3 -c 'import kubernetes_validate, yaml, openapi_spec_validator, jsonschema' 2>/dev/null; then
  command -v pip3 >/dev/null || command -v pip >/dev/null || { say "installing pip"; install python3-pip; }
  say "installing kubernetes-validate and openapi-spec-validator (for the tests that check deploy/ and openapi/)"
  pip=$(command -v pip3 || command -v pip)
  "$pip" install -q kubernetes-validate pyyaml openapi-spec-validator jsonschema \
    || "$pip" install -q --break-system-packages kubernetes-validate pyyaml openapi-spec-validator jsonschema
  python3 -c 'import kubernetes_validate, yaml, openapi_spec_validator, jsonschema' \
    || { say "kubernetes-validate or openapi-spec-validator does not import after installing it"; exit 1; }
fi

# The tests run schemathesis (PyPI) against every operation of the API.
if ! command -v schemathesis >/dev/null; then
  command -v pip3 >/dev/null || command -v pip >/dev/null || { say "installing pip"; install python3-pip; }
  say "installing schemathesis (the API's property-based test)"
  pip=$(command -v pip3 || command -v pip)
  "$pip" install -q 'schemathesis>=4.32,<5' || "$pip" install -q --break-system-packages 'schemathesis>=4.32,<5'
  hash -r
  command -v schemathesis >/dev/null || { say "schemathesis is not on PATH after installing it"; exit 1; }
fi

# The AWS CLI and boto3 (PyPI): botocore signs requests for the SigV4 tests
# (tests/it/sigv4.rs), and the AWS endpoint's tests drive the real clients.
if ! command -v aws >/dev/null || ! python3 -c 'import botocore, boto3' 2>/dev/null; then
  command -v pip3 >/dev/null || command -v pip >/dev/null || { say "installing pip"; install python3-pip; }
  say "installing the AWS CLI and boto3 (the SigV4 and AWS endpoint tests)"
  pip=$(command -v pip3 || command -v pip)
  "$pip" install -q awscli boto3 || "$pip" install -q --break-system-packages awscli boto3
  hash -r
  python3 -c 'import botocore, boto3' || { say "botocore does not import after installing the AWS CLI"; exit 1; }
fi

# The generated clients' test (tests/it/clients.rs): openapi-python-client
# and mypy from PyPI; openapi-typescript, openapi-fetch and TypeScript from
# npm, as clients/typescript/package-lock.json pins them.
if ! command -v openapi-python-client >/dev/null || ! python3 -c 'import mypy, httpx, attrs, dateutil' 2>/dev/null; then
  command -v pip3 >/dev/null || command -v pip >/dev/null || { say "installing pip"; install python3-pip; }
  say "installing openapi-python-client and mypy (the generated Python client's test)"
  pip=$(command -v pip3 || command -v pip)
  packages=('openapi-python-client>=0.29,<0.30' 'mypy>=1.10' httpx attrs python-dateutil)
  "$pip" install -q "${packages[@]}" || "$pip" install -q --break-system-packages "${packages[@]}"
  hash -r
  command -v openapi-python-client >/dev/null || { say "openapi-python-client is not on PATH after installing it"; exit 1; }
fi
command -v node >/dev/null && command -v npm >/dev/null || { say "installing Node.js and npm"; install nodejs npm; }
clients_ts="$(cd "$(dirname "$0")/.." && pwd)/clients/typescript"
if [ ! -d "$clients_ts/node_modules" ] || [ "$clients_ts/package-lock.json" -nt "$clients_ts/node_modules/.package-lock.json" ]; then
  say "installing the TypeScript client's npm packages (npm ci in clients/typescript)"
  (cd "$clients_ts" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The console (console/): its build (Vite, TypeScript, Preact) and its
# browser tests (playwright-core driving Debian's Chromium; Playwright's own
# browser download does not work here, and is not needed).
console="$(cd "$(dirname "$0")/.." && pwd)/console"
if [ ! -d "$console/node_modules" ] || [ "$console/package-lock.json" -nt "$console/node_modules/.package-lock.json" ]; then
  say "installing the console's npm packages (npm ci in console)"
  (cd "$console" && npm ci --no-audit --no-fund --loglevel=error)
fi
command -v chromium >/dev/null || { say "installing Chromium (the console's browser tests)"; install chromium fonts-dejavu-core; }
