#!/usr/bin/env bash
# Fanout rate sweep: 1 room × SUBS subscribers on one embedded hub, at each rate, ROUNDS runs
# each (a fresh hub per run), appended as JSON lines to OUT. Finds the rate where deliveries
# stop keeping up and the latency at half of it.
#
#   bench/sweep.sh [SUBS] [RATES] [ROUNDS] [OUT]
#   bench/sweep.sh 10000 "25 50 100 150 200 300" 3 bench/results/sweep.jsonl
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
SUBS=${1:-10000}
RATES=${2:-"25 50 100 150 200 300"}
ROUNDS=${3:-3}
OUT=${4:-$ROOT/bench/results/sweep-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
BIN=$ROOT/target/release
ulimit -n 20000
cargo build --release --locked -p switchboard-hub -p switchboard-bench >/dev/null
mkdir -p "$(dirname "$OUT")"
for rate in $RATES; do
  for ((round = 1; round <= ROUNDS; round++)); do
    port=$(free_port)
    data=$(mktemp -d)
    "$BIN/switchboard-hub" --listen "127.0.0.1:$port" --data-dir "$data" "${HUB_LIMIT_FLAGS[@]}" \
      >"$data/hub.log" 2>&1 &
    pid=$!
    await_port "$port" "$pid" || die "hub did not start"
    "$BIN/switchboard-bench" --url "ws://127.0.0.1:$port" --server-pid "$pid" --json "$OUT" \
      --label "sweep" --workers 2 fanout --subs "$SUBS" --rate "$rate" --duration-secs 8 \
      | grep -E "published_per_sec|deliveries_per_(cpu_)?sec|latency ms" | sed "s/^/rate $rate #$round: /"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
  done
done
echo "results: $OUT"
