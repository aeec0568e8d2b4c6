#!/usr/bin/env bash
# Side-by-side benchmark: Switchboard (A) against sockudo, a Pusher-protocol server (B), on
# this machine, then docs/BENCHMARKS.md from the results.
#
#   bench/compare.sh [--rounds N] [--quick] [--out FILE] [--no-build] [--cluster]
#
# Per round, for each scenario: A then B, each server started fresh (a fresh hub data dir; a
# fresh sockudo process), so rounds alternate A B A B. Scenarios, sized for a 2-core machine:
#   connect   19,000 connections to one node (hold 10 s)
#   fanout    1 room × 10,000 subscribers at 10 and at 100 msg/s (label "busy"), and × 1,000
#   rooms     1,000 rooms × 10 subscribers
#   persist   Switchboard only, on PostgreSQL (a uniquely named fresh database per run):
#             --batch-max-size 512 (label "batched") and 1 ("unbatched")
# --quick runs every scenario tiny, one round, and writes the report into the run dir unless
# --out is given. --cluster also runs bench/cluster.sh into the same results.
#
# Results: bench/results/compare-STAMP.jsonl (+ one SVG per run next to it); the run dir
# target/bench-compare/STAMP holds the copied binaries, server logs and the command lines.
# Rates and sizes can be changed through the environment (FANOUT_RATE_10K, FANOUT_RATE_10K_BUSY, FANOUT_RATE_1K,
# ROOMS_RATE, DURATION, CONNECT_CONNS, ...; see the defaults below).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROUNDS=3 QUICK=0 OUT= BUILD=1 CLUSTER=0
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --cluster) CLUSTER=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if [ "$QUICK" = 1 ]; then
  ROUNDS=1
  : "${CONNECT_CONNS:=500}" "${FANOUT_SUBS_BIG:=400}" "${FANOUT_SUBS_SMALL:=100}"
  : "${ROOMS:=20}" "${PER_ROOM:=5}" "${DURATION:=3}" "${HOLD:=2}" "${SENDERS:=8}" "${WORKERS:=2}"
fi
CONNECT_CONNS=${CONNECT_CONNS:-19000}
HOLD=${HOLD:-10}
FANOUT_SUBS_BIG=${FANOUT_SUBS_BIG:-10000}
FANOUT_SUBS_SMALL=${FANOUT_SUBS_SMALL:-1000}
# Rates both servers sustain on this 2-core machine with the bench beside them: the embedded
# hub stores every message in SQLite (synchronous=FULL) before fanning it out, so one room
# takes a few dozen messages per second here, and 10,000 subscribers × 20 msg/s already
# saturates the two cores (server plus bench) for both servers.
FANOUT_RATE_10K=${FANOUT_RATE_10K:-10}
FANOUT_RATE_1K=${FANOUT_RATE_1K:-20}
# The same 10,000 subscribers at a rate where batching matters (about half of the rate at
# which the hub's deliveries stop keeping up here): the fanout target's figure.
FANOUT_RATE_10K_BUSY=${FANOUT_RATE_10K_BUSY:-100}
ROOMS=${ROOMS:-1000}
PER_ROOM=${PER_ROOM:-10}
ROOMS_RATE=${ROOMS_RATE:-200}
ROOMS_PUBLISHERS=${ROOMS_PUBLISHERS:-20}
SENDERS=${SENDERS:-64}
IN_FLIGHT=${IN_FLIGHT:-16}
DURATION=${DURATION:-10}
WORKERS=${WORKERS:-2}
# Local source addresses of the subscriber sockets: one source has ~28,000 ephemeral ports to
# a server port, and the sockets of the previous runs linger in TIME_WAIT for a minute.
SOURCES=${SOURCES:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR=$ROOT/target/bench-compare/$STAMP
LOG_DIR=$RUN_DIR/logs
BIN=$RUN_DIR/bin
RESULTS=$ROOT/bench/results/compare-$STAMP.jsonl
COMMANDS=$RUN_DIR/commands.md
[ -n "$OUT" ] || { [ "$QUICK" = 1 ] && OUT=$RUN_DIR/BENCHMARKS.md || OUT=$ROOT/docs/BENCHMARKS.md; }
mkdir -p "$LOG_DIR" "$BIN" "$(dirname "$RESULTS")"

# --- build ---------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  say "building release binaries"
  (cd "$ROOT" && cargo build --release --locked -p switchboard-hub -p switchboard-auth -p switchboard-bench)
  if [ ! -x "$SOCKUDO" ]; then
    command -v protoc >/dev/null || {
      say "installing protobuf-compiler (sockudo's build needs protoc)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
    }
    say "installing sockudo into $(dirname "$(dirname "$SOCKUDO")") (takes a while)"
    cargo install sockudo --locked --root "$(dirname "$(dirname "$SOCKUDO")")"
  fi
fi
# Private copies: a rebuild elsewhere during the run does not swap binaries under it.
for b in switchboard-hub switchboard-auth switchboard-bench; do
  cp "$ROOT/target/release/$b" "$BIN/" || die "$b is not built (run without --no-build)"
done
# The source the binaries were built from (as of now, right after the build).
GIT_REV="$(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- . 2>/dev/null || echo ' with uncommitted changes')"
[ "$BUILD" = 1 ] || GIT_REV="$GIT_REV (--no-build: the hub binary of $(date -u -r "$BIN/switchboard-hub" +%FT%TZ))"
HAVE_SOCKUDO=0
if [ -x "$SOCKUDO" ]; then HAVE_SOCKUDO=1; else say "no sockudo at $SOCKUDO: Switchboard only"; fi

SERVER_PID=
cleanup() { stop_pid "$SERVER_PID"; }
trap cleanup EXIT

# Records a command line once (round 1) for the report, its paths relative to the repository's
# root (where the report says to run it), so that it reruns from any checkout.
note_cmd() {
  [ "$ROUND" = 1 ] || return 0
  local title=$1 line
  shift
  line=$*
  line=${line//"$ROOT"\//}
  printf '**%s**\n\n```sh\n%s\n```\n\n' "$title" "$line" >>"$COMMANDS"
}

# start_hub NAME FLAGS... : a fresh embedded hub; sets SERVER_PID, SERVER_PORT.
start_hub() {
  local name=$1
  shift
  SERVER_PORT=$(free_port)
  local data=$RUN_DIR/data/$name-$ROUND
  rm -rf "$data"
  mkdir -p "$data"
  local cmd=("$BIN/switchboard-hub" --listen "127.0.0.1:$SERVER_PORT" --data-dir "$data"
    "${HUB_LIMIT_FLAGS[@]}" "$@")
  note_cmd "hub ($name)" "${cmd[*]}"
  spawn "$name" -- "${cmd[@]}"
  SERVER_PID=$STARTED_PID
  await_port "$SERVER_PORT" "$SERVER_PID" || { tail "$LOG_DIR/$name.log" >&2; die "hub $name did not start"; }
}

# start_sockudo NAME : a fresh sockudo in an empty working directory (no config file).
start_sockudo() {
  local name=$1
  SERVER_PORT=$(free_port)
  local cwd=$RUN_DIR/sockudo/$name-$ROUND
  mkdir -p "$cwd"
  note_cmd "sockudo ($name)" "${SOCKUDO_ENV[*]} PORT=$SERVER_PORT $SOCKUDO"
  SPAWN_CWD=$cwd spawn "$name" "${SOCKUDO_ENV[@]}" "PORT=$SERVER_PORT" -- "$SOCKUDO"
  SERVER_PID=$STARTED_PID
  await_port "$SERVER_PORT" "$SERVER_PID" || { tail "$LOG_DIR/$name.log" >&2; die "sockudo did not start"; }
}

stop_server() {
  stop_pid "$SERVER_PID"
  SERVER_PID=
}

# bench TITLE ARGS... : one bench run against the current server.
bench() {
  local title=$1
  shift
  local cmd=("$BIN/switchboard-bench" --server-pid "$SERVER_PID" --json "$RESULTS"
    --source-ip "$SOURCES" "$@")
  note_cmd "bench: $title" "${cmd[*]}"
  say "round $ROUND: $title"
  RUST_BACKTRACE=0 "${cmd[@]}" || say "run failed: $title (continuing)"
}

# run_pair SCENARIO-ARGS... : A (Switchboard, fresh hub) then B (sockudo, fresh).
run_pair() {
  local title=$1
  shift
  start_hub "hub-$title"
  bench "$title (switchboard)" --url "ws://127.0.0.1:$SERVER_PORT" "$@"
  stop_server
  if [ "$HAVE_SOCKUDO" = 1 ]; then
    start_sockudo "sockudo-$title"
    bench "$title (sockudo)" --target pusher --url "ws://127.0.0.1:$SERVER_PORT" "$@"
    stop_server
  fi
}

printf '%s\n\n' "The commands of round 1, run from the repository's root (\`${BIN#"$ROOT"/}\` holds copies of \`target/release\`'s binaries)." >"$COMMANDS"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  run_pair connect --workers "$WORKERS" connect --conns "$CONNECT_CONNS" --hold-secs "$HOLD"
  run_pair fanout-big --workers "$WORKERS" fanout --subs "$FANOUT_SUBS_BIG" \
    --rate "$FANOUT_RATE_10K" --duration-secs "$DURATION"
  run_pair fanout-big-busy --workers "$WORKERS" --label busy fanout --subs "$FANOUT_SUBS_BIG" \
    --rate "$FANOUT_RATE_10K_BUSY" --duration-secs "$DURATION"
  run_pair fanout-small --workers "$WORKERS" fanout --subs "$FANOUT_SUBS_SMALL" \
    --rate "$FANOUT_RATE_1K" --duration-secs "$DURATION"
  run_pair rooms --workers "$WORKERS" rooms --rooms "$ROOMS" --per-room "$PER_ROOM" \
    --publishers "$ROOMS_PUBLISHERS" --rate "$ROOMS_RATE" --duration-secs "$DURATION"
  for mode in batched:512 unbatched:1; do
    db=$(fresh_database)
    start_hub "hub-persist-${mode%%:*}" --database-url "$db" --batch-max-size "${mode##*:}"
    bench "persist ${mode%%:*}" --url "ws://127.0.0.1:$SERVER_PORT" --label "${mode%%:*}" \
      persist --senders "$SENDERS" --in-flight "$IN_FLIGHT" --duration-secs "$DURATION"
    stop_server
    drop_database "$db"
  done
done

if [ "$CLUSTER" = 1 ]; then
  "$ROOT/bench/cluster.sh" --no-build --bin "$BIN" --results "$RESULTS" \
    $([ "$QUICK" = 1 ] && echo --quick) || say "cluster runs failed (continuing)"
fi

SOCKUDO_VERSION=$([ "$HAVE_SOCKUDO" = 1 ] && "$SOCKUDO" --version 2>/dev/null | head -1 || echo "not installed")
meta=(--meta "git=$GIT_REV"
  --meta "sockudo=${SOCKUDO_VERSION:-unknown}"
  --meta "rustc=$(rustc --version)"
  --meta "rounds=$ROUNDS"
  --meta "results=${RESULTS#"$ROOT"/}"
  --meta "reproduce=bench/compare.sh --rounds $ROUNDS")
"$BIN/switchboard-bench" report --results "$RESULTS" --out "$OUT" \
  --charts-dir "$(dirname "$OUT")/bench" "${meta[@]}" --include "$COMMANDS"
say "results: $RESULTS"
say "report:  $OUT"
