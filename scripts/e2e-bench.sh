#!/usr/bin/env bash
# End-to-end overhead with wrk (one server worker thread, one wrk thread, 32 connections,
# loopback only): bare axum vs the gorax server layer at 100 % and 1 % sampling, in interleaved
# rounds so machine noise hits all variants alike. Requests carry no traceparent, so the ratio
# sampler decides (100 % or 1 % of new traces). Reports throughput and, more robust on a shared
# machine, the server process's CPU time per request (all its threads, export included).
# Needs `wrk` (apt-get install wrk).
# Usage: scripts/e2e-bench.sh [seconds per run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
cargo build -q --release -p gorax-benches --bin e2e_server
BIN=target/release/e2e_server
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A rps_total cpu_total
for round in $(seq "$ROUNDS"); do
  for mode in bare traced:1.0 traced:0.01; do
    "$BIN" "$mode" "$PORT" & pid=$!
    for _ in $(seq 50); do curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/api/v1/workflows/w/execute" && break; sleep 0.1; done
    before=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c32 -d"${SECS}s" -s <(printf 'wrk.method = "POST"\n') "http://127.0.0.1:$PORT/api/v1/workflows/w/execute")
    after=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    cpu_us=$(python3 -c "print(($after - $before) / $TICK * 1e6 / $reqs)")
    printf 'round %s  %-12s %10.0f req/s  %6.2f us CPU/request\n' "$round" "$mode" "$rps" "$cpu_us"
    rps_total[$mode]=$(python3 -c "print(${rps_total[$mode]:-0} + $rps)")
    cpu_total[$mode]=$(python3 -c "print(${cpu_total[$mode]:-0} + $cpu_us)")
  done
done
for mode in bare traced:1.0 traced:0.01; do
  python3 -c "
m='$mode'; r=${rps_total[$mode]}/$ROUNDS; c=${cpu_total[$mode]}/$ROUNDS
rb=${rps_total[bare]}/$ROUNDS; cb=${cpu_total[bare]}/$ROUNDS
print(f'{m:<12} {r:10.0f} req/s {r/rb:6.3f}x bare   {c:6.2f} us CPU/request  {cb/c:6.3f}x bare efficiency')"
done
