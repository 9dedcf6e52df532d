#!/usr/bin/env bash
# Makes the README's screenshot of the trace viewer: runs the demo with --viewer and has headless
# Chromium (Debian's `chromium`) photograph the journey's waterfall with a span selected.
# `--peers` also adds two other processes (`peer`, one failing) to the trace over OTLP/HTTP.
# Usage: scripts/viewer-screenshot.sh [output.png]   (default docs/viewer.png)
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=false
[ "${1:-}" = --peers ] && { PEERS=true; shift; }
OUT=${1:-docs/viewer.png}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
command -v "$CHROMIUM" >/dev/null || { echo "needs $CHROMIUM (apt-get install chromium)"; exit 1; }
WORK=$(mktemp -d)
DEMO_PID=
cleanup() { [ -n "$DEMO_PID" ] && kill -INT "$DEMO_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build -q -p gorax-examples --bins
BIN=${CARGO_TARGET_DIR:-target}/debug
TRACING_VIEWER_ADDR=127.0.0.1:0 NO_COLOR=1 "$BIN/demo" --viewer >"$WORK/demo.out" 2>"$WORK/demo.err" &
DEMO_PID=$!
for _ in $(seq 300); do grep -q 'trace viewer: http' "$WORK/demo.err" && break; sleep 0.1; done
URL=$(grep 'trace viewer: http' "$WORK/demo.err" | grep -o 'http://[0-9.:]*/' | head -1)
ADDR=${URL#http://}; ADDR=${ADDR%/}
read -r TRACE ROOT STEP < <(curl -sf "${URL}api/traces?name=workflow.execute" | python3 -c '
import json, sys, urllib.request
t = json.load(sys.stdin)["traces"][0]["trace_id"]
spans = json.load(urllib.request.urlopen(sys.argv[1] + "api/traces/" + t))["spans"]
root = next(s for s in spans if s["parent_span_id"] is None)["span_id"]
step = next(s for s in spans if s["name"] == "send gorax-executions")["span_id"]
print(t, root, step)' "$URL")
$PEERS && for svc in inventory billing; do
  flag=; [ "$svc" = billing ] && flag=--error
  TRACING_SERVICE_NAME=$svc TRACING_EXPORTER=otlp TRACING_ENDPOINT="http://$ADDR/v1/traces" \
    "$BIN/peer" --traceparent "00-$TRACE-$ROOT-01" $flag
done
mkdir -p "$(dirname "$OUT")"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$WORK/profile" --hide-scrollbars --window-size=1400,860 \
  --virtual-time-budget=4000 --screenshot="$OUT" "${URL}#trace=$TRACE&span=$STEP" 2>/dev/null
echo "wrote $OUT ($(stat -c %s "$OUT") bytes) from $URL#trace=$TRACE"
