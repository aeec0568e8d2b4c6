#!/usr/bin/env bash
# Serving an avatar: from the hot cache against from the blob store, measured with wrk.
#
#   bench/media.sh [--rounds N] [--duration S] [--connections C] [--no-build] [--out FILE]
#
# For each configuration, a fresh hub (release build) with one user whose uploaded avatar
# (noise, so it does not compress away: the 64 px PNG is about 16 KiB, the 256 px one about
# 256 KiB) is served at its content-addressed URL `GET /v1/media/{hash}`, at both sizes:
#   embedded   files under the data dir; cache: the in-process LRU (default) or none
#              (`--media-cache-bytes 0`: every request reads the file)
#   scaled     blobs in PostgreSQL (a fresh database); cache: Redis (`--redis-url`, a fresh
#              key prefix) or none (every request reads the chunks from PostgreSQL)
# Per round, per configuration: cache then no cache, each on a fresh hub, wrk -t2 -cC -dS
# (after a 2 s warm-up run that fills the cache). Prints requests/s and latency percentiles
# per run, then the medians, as Markdown (also appended to --out, default
# bench/results/media-STAMP.md). Needs wrk (installed with apt-get when missing).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

ROUNDS=3 DURATION=10 CONNS=64 BUILD=1 OUT=
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --connections) CONNS=${2:?--connections needs a number}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if ! command -v wrk >/dev/null; then
  say "installing wrk (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --locked -p switchboard-hub)
HUB=$ROOT/target/release/switchboard-hub
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR=$ROOT/target/bench-media/$STAMP
LOG_DIR=$RUN_DIR
mkdir -p "$RUN_DIR"
OUT=${OUT:-$ROOT/bench/results/media-$STAMP.md}
RESULTS=$RUN_DIR/results.tsv
: >"$RESULTS"

# A 256×256 PNG of noise (stdlib only).
python3 - "$RUN_DIR/avatar.png" <<'EOF'
import os, struct, sys, zlib
w = h = 256
raw = b"".join(b"\x00" + os.urandom(w * 3) for _ in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
EOF

HUB_PID=
cleanup() { stop_pid "$HUB_PID"; }
trap cleanup EXIT

# run CONFIG CACHE: one fresh hub, one avatar, wrk at each size; appends a line per size to
# $RESULTS.
run() {
  local config=$1 cache=$2 port data flags=() db= prefix= size_px
  port=$(free_port)
  data=$RUN_DIR/data-$config-$cache-$RANDOM
  flags=(--listen "127.0.0.1:$port" --data-dir "$data" --metrics-listen off "${HUB_LIMIT_FLAGS[@]}")
  if [ "$config" = scaled ]; then
    db=$(fresh_database)
    prefix="bench-media-$RANDOM-"
    flags+=(--database-url "$db" --redis-url "$REDIS_URL" --redis-prefix "$prefix")
  fi
  [ "$cache" = none ] && flags+=(--media-cache-bytes 0)
  spawn "hub-$config-$cache" -- "$HUB" "${flags[@]}"
  HUB_PID=$STARTED_PID
  await_port "$port" "$HUB_PID" || die "the hub did not start (see $LOG_DIR/hub-$config-$cache.log)"
  local base=http://127.0.0.1:$port token url
  curl -fsS -o /dev/null -H 'content-type: application/json' \
    -d '{"username":"bench","email":"bench@example.com","password":"bench-password"}' "$base/v1/auth/register"
  token=$(curl -fsS -H 'content-type: application/json' \
    -d '{"username":"bench","password":"bench-password"}' "$base/v1/auth/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -fsS -o /dev/null -X PUT -H "authorization: Bearer $token" -H 'content-type: image/png' \
    --data-binary "@$RUN_DIR/avatar.png" "$base/v1/auth/me/avatar"
  for size_px in 64 256; do
    url=$base$(curl -fsS -o /dev/null -w '%{redirect_url}' "$base/v1/users/bench/avatar?size=$size_px" | sed -E 's#^https?://[^/]+##')
    local size
    size=$(curl -fsS -o /dev/null -w '%{size_download}' "$url")
    wrk -t2 -c"$CONNS" -d2s "$url" >/dev/null
    local out=$RUN_DIR/wrk-$config-$cache-$size_px-$round.txt
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$out"
    local rps p50 p99
    rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$config" "$cache" "$size" "$rps" "$p50" "$p99" | tee -a "$RESULTS" >&2
  done
  stop_pid "$HUB_PID"
  HUB_PID=
  [ -n "$db" ] && drop_database "$db"
  [ -n "$prefix" ] && redis-cli -u "$REDIS_URL" --scan --pattern "${prefix}*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
  rm -rf "$data"
}

for ((round = 1; round <= ROUNDS; round++)); do
  for config in embedded scaled; do
    for cache in cache none; do
      run "$config" "$cache"
    done
  done
done

python3 - "$RESULTS" "$CONNS" "$DURATION" "$ROUNDS" <<'EOF' | tee -a "$OUT"
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
conns, duration, rounds = sys.argv[2:5]
def ms(v):
    v = v.strip()
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float("nan")
print(f"\n### Avatar serving: hot cache against blob store (wrk -t2 -c{conns} -d{duration}s, median of {rounds} runs)\n")
print("| configuration | cache | bytes | requests/s | p50 ms | p99 ms | runs (requests/s) |")
print("|---|---|---:|---:|---:|---:|---|")
sizes = sorted({int(r[2]) for r in rows})
for size in sizes:
  for config in ("embedded", "scaled"):
    for cache in ("cache", "none"):
        sel = [r for r in rows if r[0] == config and r[1] == cache and int(r[2]) == size]
        if not sel:
            continue
        rps = [float(r[3]) for r in sel]
        label = {"cache": "in-process LRU" if config == "embedded" else "Redis", "none": "none (blob store)"}[cache]
        print(f"| {config} | {label} | {sel[0][2]} | {statistics.median(rps):,.0f} | "
              f"{statistics.median(ms(r[4]) for r in sel):.2f} | {statistics.median(ms(r[5]) for r in sel):.2f} | "
              + ", ".join(f"{x:,.0f}" for x in rps) + " |")
EOF
say "results: $OUT (raw: $RUN_DIR)"
