#!/usr/bin/env bash
# End-to-end throughput with wrk (one server worker thread, one wrk thread, 32 connections,
# loopback only): bare axum vs the gorax server layer at 100 % and 1 % sampling, interleaved
# rounds so machine noise hits all variants alike. Requests carry no traceparent, so the ratio
# sampler decides (100 % or 1 % of new traces). Needs `wrk` (apt-get install wrk).
# Usage: scripts/e2e-bench.sh [seconds per run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
cargo build -q --release -p gorax-benches --bin e2e_server
BIN=target/release/e2e_server
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
declare -A total
for round in $(seq "$ROUNDS"); do
  for mode in bare traced:1.0 traced:0.01; do
    "$BIN" "$mode" "$PORT" & pid=$!
    for _ in $(seq 50); do curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/api/v1/workflows/w/execute" && break; sleep 0.1; done
    rps=$(wrk -t1 -c32 -d"${SECS}s" -s <(printf 'wrk.method = "POST"\n') \
          "http://127.0.0.1:$PORT/api/v1/workflows/w/execute" | awk '/Requests\/sec/ {print $2}')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "round $round  $mode  $rps req/s"
    total[$mode]=$(python3 -c "print(${total[$mode]:-0} + $rps)")
  done
done
bare=${total[bare]}
for mode in bare traced:1.0 traced:0.01; do
  python3 -c "m='$mode'; t=${total[$mode]}; print(f'{m:<12} {t/$ROUNDS:10.0f} req/s  {t/$bare:5.3f}x bare')"
done
