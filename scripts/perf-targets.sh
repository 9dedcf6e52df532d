#!/usr/bin/env bash
# Issue 14's instruction targets in one run: builds the server, client and queue benches in
# release, runs each variant under callgrind at two counts (1000 and 3000), and prints the
# instructions per call (the difference of the two runs' totals, all threads, over 2000) next to
# the baseline and the target. Deterministic, unlike wall times on a shared machine; about three
# minutes. Needs valgrind (`apt-get install valgrind`). Export throughput and end to end have their
# own commands (README, Performance).
# Usage: scripts/perf-targets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

bench_bin() {
  cargo bench -p gorax-benches --bench "$1" --no-run 2>&1 | grep -o 'target/[^)]*' | tail -1
}

# Instructions per call (k) of variant $3 of bench binary $1 selected by variable $2.
per_call() {
  local total=()
  for n in 1000 3000; do
    env "$2=$3:$n" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$1" --bench \
      >"$WORK/out" 2>&1
    total+=("$(grep Collected "$WORK/out" | tail -1 | awk '{gsub(",", "", $4); print $4}')")
  done
  python3 -c "print(f'{(${total[1]} - ${total[0]}) / 2000 / 1000:.2f}')"
}

# row NAME VALUE BASE [TARGET]: VALUE - BASE against TARGET (k instructions), if there is one.
row() {
  python3 -c "
over = $2 - $3
target = '${4:-}'
verdict = (f'target {float(target):+.1f} k  ' + ('met' if over <= float(target) else 'not met')) if target else ''
print(f'{\"$1\":<46} {$2:>7.2f} k  {over:>+7.2f} k  {verdict}')"
}

server=$(bench_bin server)
client=$(bench_bin client)
queue=$(bench_bin queue)

s_bare=$(per_call "$server" GORAX_SERVER_BENCH_ONLY bare)
s_uns=$(per_call "$server" GORAX_SERVER_BENCH_ONLY gorax/unsampled)
s_smp=$(per_call "$server" GORAX_SERVER_BENCH_ONLY gorax/sampled)
s_tr=$(per_call "$server" GORAX_SERVER_BENCH_ONLY gorax+traceresponse/sampled)
s_m_uns=$(per_call "$server" GORAX_SERVER_BENCH_ONLY gorax+metrics/unsampled)
s_m_smp=$(per_call "$server" GORAX_SERVER_BENCH_ONLY gorax+metrics/sampled)
c_chain=$(per_call "$client" GORAX_CLIENT_BENCH_ONLY middleware-chain)
c_uns=$(per_call "$client" GORAX_CLIENT_BENCH_ONLY gorax/unsampled)
c_smp=$(per_call "$client" GORAX_CLIENT_BENCH_ONLY gorax/sampled-no-export)
q_bare=$(per_call "$queue" GORAX_QUEUE_BENCH_ONLY "bare channel")
q_uns=$(per_call "$queue" GORAX_QUEUE_BENCH_ONLY gorax/unsampled)
q_smp=$(per_call "$queue" GORAX_QUEUE_BENCH_ONLY gorax/sampled)

echo "instructions per call, all threads (callgrind, (I3000 - I1000) / 2000)"
row "server bare axum" "$s_bare" "$s_bare"
row "server unsampled, over bare" "$s_uns" "$s_bare" 2.5
row "server sampled, over bare" "$s_smp" "$s_bare" 6
row "server traceresponse, over sampled" "$s_tr" "$s_smp" 0.5
row "server metrics on, unsampled, over unsampled" "$s_m_uns" "$s_uns"
row "server metrics on, sampled, over sampled" "$s_m_smp" "$s_smp"
row "client unsampled, over the bare chain" "$c_uns" "$c_chain" 1.5
row "client sampled without export, over the chain" "$c_smp" "$c_chain" 4
# The queue's targets are in µs (criterion, `cargo bench --bench queue`); shown for reference.
row "queue unsampled, over the untraced channel" "$q_uns" "$q_bare"
row "queue sampled, over the untraced channel" "$q_smp" "$q_bare"
echo "Sampled rows include the export thread and move by ±0.3 k between runs (the request"
echo "thread alone: valgrind --separate-threads=yes). The queue's targets are in µs: cargo bench --bench queue."
