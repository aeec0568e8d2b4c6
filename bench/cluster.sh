#!/usr/bin/env bash
# Scale-out benchmarks on this machine: hub nodes on PostgreSQL and Redis with an auth node,
# the bench connecting straight to the hubs' ports (no HAProxy: it is one process with the
# same 20,000-file limit as everyone else).
#
#   bench/cluster.sh [--quick] [--no-build] [--bin DIR] [--results FILE]
#
# 1. connect: CONNECT_CONNS (default 90,000) connections spread round-robin over
#    CONNECT_HUBS (default 6) hubs: each process may hold at most 20,000 open files, so
#    90,000 need at least 5 hubs; the bench spreads its sockets over WORKERS (default 6)
#    processes and SOURCES (default 127.0.0.2-127.0.0.7) local addresses, each source having
#    about 28,000 ephemeral ports.
# 2. fanout: the same room of FANOUT_SUBS (default 10,000) subscribers at FANOUT_RATE msg/s
#    (default 20: on PostgreSQL the batch writer keeps up with that, unlike the embedded
#    hub's per-message SQLite commit), first on one hub, then on three hubs (subscribers round-robin over the hubs, the
#    publisher on the first), both with Redis. The server figures sum the hubs and the Redis
#    server (it does the cross-node fanout), so "deliveries per server CPU-second" of the two
#    runs compare scale-out cost directly.
# Each part gets a fresh, uniquely named database and Redis prefix, removed afterwards.
# Results are appended to --results (default bench/results/cluster-STAMP.jsonl).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

QUICK=0 BUILD=1 BIN= RESULTS=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN=${2:?--bin needs a directory}; shift 2 ;;
    --results) RESULTS=${2:?--results needs a file}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  : "${CONNECT_CONNS:=3000}" "${CONNECT_HUBS:=3}" "${WORKERS:=3}" "${FANOUT_SUBS:=300}" "${DURATION:=3}" "${HOLD:=2}"
fi
CONNECT_CONNS=${CONNECT_CONNS:-90000}
CONNECT_HUBS=${CONNECT_HUBS:-6}
WORKERS=${WORKERS:-6}
SOURCES=${SOURCES:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7}
HOLD=${HOLD:-10}
FANOUT_SUBS=${FANOUT_SUBS:-10000}
FANOUT_RATE=${FANOUT_RATE:-20}
DURATION=${DURATION:-10}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR=$ROOT/target/bench-cluster/$STAMP
LOG_DIR=$RUN_DIR/logs
RESULTS=${RESULTS:-$ROOT/bench/results/cluster-$STAMP.jsonl}
mkdir -p "$LOG_DIR" "$(dirname "$RESULTS")"
if [ -z "$BIN" ]; then
  BIN=$RUN_DIR/bin
  mkdir -p "$BIN"
  if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release --locked -p switchboard-hub -p switchboard-auth -p switchboard-bench)
  fi
  for b in switchboard-hub switchboard-auth switchboard-bench; do
    cp "$ROOT/target/release/$b" "$BIN/" || die "$b is not built (run without --no-build)"
  done
fi

PIDS=() DB= PREFIX=
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  [ -n "$DB" ] && drop_database "$DB"
  if [ -n "$PREFIX" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null || true
  fi
  DB= PREFIX=
}
trap cleanup EXIT

# start_cluster N : an auth node and N hubs on a fresh database and Redis prefix; sets
# HUB_URLS (comma-separated ws:// URLs) and HUB_PIDS (comma-separated).
start_cluster() {
  local n=$1 i port auth_port
  DB=$(fresh_database)
  PREFIX="sbbench:$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])'):"
  auth_port=$(free_port)
  # Every node gets a metrics port of its own (the default address is one per host).
  spawn auth -- "$BIN/switchboard-auth" --listen "127.0.0.1:$auth_port" \
    --metrics-listen "127.0.0.1:$(free_port)" \
    --data-dir "$RUN_DIR/auth-data" --database-url "$DB" --redis-url "$REDIS_URL" --redis-prefix "$PREFIX"
  PIDS+=("$STARTED_PID")
  await_port "$auth_port" "$STARTED_PID" || die "the auth node did not start (see $LOG_DIR/auth.log)"
  HUB_URLS= HUB_PIDS=
  for ((i = 1; i <= n; i++)); do
    port=$(free_port)
    spawn "hub$i" -- "$BIN/switchboard-hub" --listen "127.0.0.1:$port" \
      --metrics-listen "127.0.0.1:$(free_port)" \
      --data-dir "$RUN_DIR/hub-data/hub$i" --node-id "hub$i" --database-url "$DB" \
      --redis-url "$REDIS_URL" --redis-prefix "$PREFIX" --auth-url "http://127.0.0.1:$auth_port" \
      "${HUB_LIMIT_FLAGS[@]}"
    PIDS+=("$STARTED_PID")
    await_port "$port" "$STARTED_PID" || die "hub$i did not start (see $LOG_DIR/hub$i.log)"
    HUB_URLS+="${HUB_URLS:+,}ws://127.0.0.1:$port"
    HUB_PIDS+="${HUB_PIDS:+,}$STARTED_PID"
  done
  say "cluster: $n hubs ($HUB_URLS), database ${DB##*/}, prefix $PREFIX"
}

redis_pid() {
  redis-cli -u "$REDIS_URL" info server | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }'
}

bench() {
  say "$*"
  RUST_BACKTRACE=0 "$BIN/switchboard-bench" --json "$RESULTS" "$@" || say "run failed (continuing)"
}

# 1. connect
start_cluster "$CONNECT_HUBS"
bench --url "$HUB_URLS" --server-pid "$HUB_PIDS" --source-ip "$SOURCES" --workers "$WORKERS" \
  --label cluster connect --conns "$CONNECT_CONNS" --hold-secs "$HOLD"
cleanup

# 2. fanout on one node, then on three, both with Redis.
for n in 1 3; do
  start_cluster "$n"
  bench --url "$HUB_URLS" --server-pid "$HUB_PIDS,$(redis_pid)" --workers 2 \
    --label "redis-${n}node" fanout --subs "$FANOUT_SUBS" --rate "$FANOUT_RATE" --duration-secs "$DURATION"
  cleanup
done
say "results: $RESULTS"
