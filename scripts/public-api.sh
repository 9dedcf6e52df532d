#!/usr/bin/env bash
# The public API of each published crate, checked against the committed snapshot in api/:
# rustdoc's JSON output (nightly: `-Z unstable-options --output-format json`, all features)
# reduced to one line per item by scripts/public-api.py. A difference fails with the diff: an
# unreviewed change of the surface. After a deliberate change: scripts/public-api.sh --bless
# (and commit api/, where the diff is what reviewers read).
set -euo pipefail
cd "$(dirname "$0")/.."
bless=false
[ "${1:-}" = "--bless" ] && bless=true
rustup toolchain list | grep -q '^nightly' || { echo "public-api: needs the nightly toolchain (rustup toolchain install nightly)"; exit 1; }
export CARGO_TARGET_DIR=${GORAX_API_TARGET_DIR:-target/public-api}
mkdir -p api
status=0
for crate in gorax-trace gorax-trace-server gorax-trace-client gorax-trace-queue; do
  lib=${crate//-/_}
  cargo +nightly rustdoc -q -p "$crate" --all-features --lib -- -Z unstable-options --output-format json 2>/dev/null \
    || cargo +nightly rustdoc -p "$crate" --all-features --lib -- -Z unstable-options --output-format json
  python3 scripts/public-api.py "$CARGO_TARGET_DIR/doc/$lib.json" > "api/$crate.txt.new"
  if $bless; then
    mv "api/$crate.txt.new" "api/$crate.txt"
    echo "public-api: $crate: $(wc -l < "api/$crate.txt") items written to api/$crate.txt"
  elif ! diff -u "api/$crate.txt" "api/$crate.txt.new"; then
    echo "public-api: $crate: the public API changed (above); review it, then scripts/public-api.sh --bless"
    rm -f "api/$crate.txt.new"
    status=1
  else
    rm -f "api/$crate.txt.new"
    echo "public-api: $crate: $(wc -l < "api/$crate.txt") items, unchanged"
  fi
done
exit $status
