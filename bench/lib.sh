# Shared helpers of bench/compare.sh and bench/cluster.sh (sourced, not run).
# Every server is started fresh by these functions, recorded by pid, and stopped by that pid
# only (SIGTERM, then SIGKILL after a bounded wait).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
SOCKUDO=${SOCKUDO:-/opt/sockudo/bin/sockudo}

# Raised limits: the bench publishes far beyond the per-connection (20/s) and per-user (50/s)
# defaults, and holds more connections than the default cap of 15,000, all anonymous (a quarter
# of the cap by default), from a few loopback addresses (1,000 per address by default), opened in
# bursts (1,024 unfinished HTTP connections by default). No drain delay: nothing balances in
# front of a bench hub, so it stops at once.
HUB_LIMIT_FLAGS=(--rate-per-sec 1000000 --rate-burst 1000000
  --user-rate-per-sec 1000000 --user-rate-burst 1000000 --max-connections 19500
  --max-anonymous-connections 19500 --max-connections-per-ip 19500
  --max-http-connections 19500 --drain-delay-ms 0)

# The sockudo configuration: one app with the bench's credentials, every limit raised, the
# rate limiter and the metrics exporter off, memory drivers only (no Redis, no database).
SOCKUDO_ENV=(HOST=127.0.0.1 DEBUG=false
  SOCKUDO_DEFAULT_APP_ID=bench SOCKUDO_DEFAULT_APP_KEY=bench-key
  SOCKUDO_DEFAULT_APP_SECRET=bench-secret
  SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000
  SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=1000000
  SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=1000000
  SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=1000000
  RATE_LIMITER_ENABLED=false METRICS_ENABLED=false SOCKUDO_OTEL_ENABLED=false SHUTDOWN_GRACE_PERIOD=1
  ADAPTER_DRIVER=local CACHE_DRIVER=memory APP_MANAGER_DRIVER=memory QUEUE_DRIVER=none)

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded, 30 s) until something accepts on 127.0.0.1:$1 while pid $2 lives.
await_port() {
  local port=$1 pid=$2 i
  for ((i = 0; i < 300; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Stops pid $1 (one we started): SIGTERM, up to 15 s, then SIGKILL.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "pid $pid did not stop within 15 s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# Starts "$@" in the background (in directory $SPAWN_CWD if set) with output in
# $LOG_DIR/$name.log; sets STARTED_PID (the program's own pid: the subshell execs it).
# Usage: spawn NAME ENV... -- COMMAND ARGS...
spawn() {
  local name=$1
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  echo "=== $(date -u +%FT%TZ) ${envs[*]} $*" >>"$LOG_DIR/$name.log"
  (cd "${SPAWN_CWD:-.}" && exec env NO_COLOR=1 RUST_LOG="${RUST_LOG:-warn}" "${envs[@]}" "$@") \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
  STARTED_PID=$!
}

# A uniquely named fresh database; prints its URL.
fresh_database() {
  local name
  name="sb_bench_$(python3 -c 'import uuid; print(uuid.uuid4().hex[:16])')"
  psql "$PG_URL/postgres" -Xq -c "CREATE DATABASE $name" >/dev/null || die "cannot create database $name"
  echo "$PG_URL/$name"
}

drop_database() {
  local url=$1
  psql "$PG_URL/postgres" -Xq -c "DROP DATABASE IF EXISTS ${url##*/} WITH (FORCE)" >/dev/null 2>&1 || true
}
# The bench creates its rooms as one user: lift the room-creation quota too.
HUB_LIMIT_FLAGS+=(--rooms-per-hour 0)
