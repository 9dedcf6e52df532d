#!/usr/bin/env bash
# Runs the whole test suite with the real servers it needs, started here on 127.0.0.1:
# an OTLP/HTTP receiver (oteltap, from PyPI), Redis (Debian's redis-server, in memory), an SQS
# emulator (moto, from PyPI), NATS with JetStream (Debian's nats-server) and RabbitMQ (Debian's
# rabbitmq-server); and Debian's Chromium
# with chromedriver for the trace viewer's browser test (examples/tests/viewer.rs, which
# chromedriver starts headless on loopback).
# Installs them on first use.
# Usage: scripts/test.sh [extra cargo test args, e.g. -p gorax-trace-queue]
#        scripts/test.sh --run CMD [ARGS...]   (CMD with the servers started)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# OTLP/HTTP receiver: every span it receives is one JSON line in the log.
VENV=${GORAX_VENV:-$HOME/.cache/gorax-trace/venv}
if [ ! -x "$VENV/bin/oteltap" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'oteltap==1.0.0'
fi
OTAP_PORT=$(free_port)
"$VENV/bin/oteltap" --port "$OTAP_PORT" >"$WORK/oteltap.ndjson" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q Listening "$WORK/oteltap.ndjson" 2>/dev/null && break; sleep 0.1; done
grep -q Listening "$WORK/oteltap.ndjson" || { echo "oteltap did not start:"; cat "$WORK/oteltap.ndjson"; exit 1; }
export GORAX_TEST_OTLP_HTTP_ENDPOINT="http://127.0.0.1:$OTAP_PORT/v1/traces"
export GORAX_TEST_OTLP_HTTP_LOG="$WORK/oteltap.ndjson"

# Redis (in memory, no persistence) for the gorax-trace-queue Redis Streams tests.
if ! command -v redis-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || { echo "redis-server did not start:"; cat "$WORK/redis.log"; exit 1; }
export GORAX_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"

# Chromium and chromedriver (Debian's) for the trace viewer's browser test.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
export GORAX_TEST_CHROMIUM=$(command -v chromium) GORAX_TEST_CHROMEDRIVER=$(command -v chromedriver)

# SQS emulator (moto in server mode) for the gorax-trace-queue SQS tests.
MOTO_VENV=${GORAX_MOTO_VENV:-$HOME/.cache/gorax-trace/moto-venv}
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q 'moto[server]==5.2.5'
fi
MOTO_PORT=$(free_port)
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1 || { echo "moto_server did not start:"; cat "$WORK/moto.log"; exit 1; }
export GORAX_TEST_SQS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test

# NATS with JetStream (streams on disk, so a restart keeps them) for the gorax-trace-queue NATS
# tests; its restart case starts a nats-server of its own.
if ! command -v nats-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nats-server >/dev/null
fi
NATS_PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "Server is ready" "$WORK/nats.log" 2>/dev/null && break; sleep 0.1; done
grep -q "Server is ready" "$WORK/nats.log" || { echo "nats-server did not start:"; cat "$WORK/nats.log"; exit 1; }
export GORAX_TEST_NATS_URL="127.0.0.1:$NATS_PORT"

# RabbitMQ 3.10 (Debian's rabbitmq-server; Erlang, ready in ~5 s) for the gorax-trace-queue AMQP
# tests; its restart case starts a node of its own. Run as root, the server script drops to the
# rabbitmq user, so its directories belong to that user; every path, port and the node name are
# set, so nothing clashes with another node on the machine.
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
fi
AMQP_PORT=$(free_port)
RMQ_NODE="gorax-test-$$@localhost"
mkdir -p "$WORK/rmq"
echo '[].' >"$WORK/rmq/plugins"
chown -R rabbitmq:rabbitmq "$WORK/rmq" 2>/dev/null || true
chmod 755 "$WORK"
# An epmd of this script's own on a free port (the node and rabbitmqctl find it through
# ERL_EPMD_PORT): stopped by its PID, whatever other Erlang nodes run on the machine.
export ERL_EPMD_PORT=$(free_port)
epmd -address 127.0.0.1 >"$WORK/epmd.log" 2>&1 &
PIDS+=($!)
(
  export RABBITMQ_NODENAME="$RMQ_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT="$(free_port)" RABBITMQ_MNESIA_BASE="$WORK/rmq" RABBITMQ_LOG_BASE="$WORK/rmq" \
    RABBITMQ_FEATURE_FLAGS_FILE="$WORK/rmq/ff" RABBITMQ_ENABLED_PLUGINS_FILE="$WORK/rmq/plugins"
  exec rabbitmq-server >"$WORK/rmq.log" 2>&1
) &
RMQ_PID=$!
# Stopped before the other servers (its epmd among them): rabbitmqctl stop, then its script's
# PID if it is still there.
cleanup() {
  rabbitmqctl -q -n "$RMQ_NODE" stop >/dev/null 2>&1 || true
  kill "$RMQ_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
for _ in $(seq 600); do
  grep -q "Starting broker... completed" "$WORK/rmq.log" 2>/dev/null && break
  kill -0 "$RMQ_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q "Starting broker... completed" "$WORK/rmq.log" || { echo "rabbitmq-server did not start:"; cat "$WORK/rmq.log"; exit 1; }
export GORAX_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"

# `--run CMD...` runs CMD with the servers up and their variables exported, instead of the tests
# (.ci/run runs the journey suite so).
if [ "${1:-}" = "--run" ]; then
  shift
  "$@"
  exit
fi

# `-p NAME` tests just that package (cargo lets `--workspace` override `-p`).
SCOPE=(--workspace)
for arg in "$@"; do case "$arg" in -p | -p* | --package | --package=*) SCOPE=() ;; esac; done
cargo test "${SCOPE[@]}" --all-features "$@"
