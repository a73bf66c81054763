#!/usr/bin/env bash
# DynoStore benchmark (SPEC §11): put and get of 4 KiB, 1 MiB and 64 MiB objects with 1 and
# 16 clients through a fresh `dynostore up`, and the same against Debian's redis-server as the
# baseline, both without durability and durable (appendonly, appendfsync always); the disk's
# limit for a 64 MiB put (5 writers, fdatasync, no network); MQTT ingest of 200 B readings from
# 16 publishers; prints one table (with the fabric's CPU per operation), the gateway's peak
# memory and the put-to-event latency; and 1 MiB and 64 MiB put and get through the S3 door with
# boto3 (bench/s3bench.py, Debian's /usr/bin/python3) beside the REST rows.
#
#   bench/run.sh [--smoke] [--large] [--bin DIR] [--containers N]
#   bench/run.sh --sites [--smoke] [--bin DIR]
#
#   --smoke       3 puts and gets of 4 KiB against each system (used by the test suite)
#   --large       also 1 GiB objects with 1 client
#   --bin DIR     the build's bin/ folder (default: $DYNO_BIN, else <repo>/build/bin)
#   --sites       only the wide-area rows (bench/sites.py): 64 MiB put and get on one site,
#                 on three sites, and on three sites 40 ms apart (a delay proxy); no Redis
#
# It builds nothing. Everything runs on 127.0.0.1 with ephemeral ports in a temp folder that
# is removed at the end; only the processes started here are stopped, by pid.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DYNO_BIN:-$root/build/bin}
smoke=0
large=0
containers=5
sites=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --large) large=1 ;;
    --bin) bin=$2; shift ;;
    --containers) containers=$2; shift ;;
    --sites) sites=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

for b in "$bin/dynostore" "$bin/dyno-bench"; do
  [ -x "$b" ] || { echo "run.sh: $b not found: build first (cmake --build build) or pass --bin" >&2; exit 1; }
done
if [ "$sites" = 1 ]; then
  # its own fabrics and proxy (the integration harness), nothing of the default run
  exec python3 "$root/bench/sites.py" --bin "$bin" $([ "$smoke" = 1 ] && echo --smoke)
fi
command -v redis-server >/dev/null || { echo "run.sh: redis-server not installed (apt-get install redis-server)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run.sh: python3 is needed to read fabric.json" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dyno-bench.XXXXXX")
up_pid=""
redis_pid=""
aof_pid=""
cleanup() {
  set +e
  for p in "$redis_pid" "$aof_pid"; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill "$p"; wait "$p" 2>/dev/null
    fi
  done
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -INT "$up_pid"
    for _ in $(seq 1 600); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$up_pid" 2>/dev/null && kill -KILL "$up_pid"
    wait "$up_pid" 2>/dev/null
  fi
  if [ "${DYNO_KEEP:-}" != "" ]; then echo "run.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "run.sh: $*" >&2
  for f in "$tmp/up.log" "$tmp"/data/logs/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the fabric ----------------------------------------------------------------------------
mkdir -p "$tmp/home"
# HOME points into the temp folder so that `up` does not touch the user's own CLI settings
HOME="$tmp/home" "$bin/dynostore" up --data "$tmp/data" --containers "$containers" --port 0 \
  </dev/null >"$tmp/up.log" 2>&1 &
up_pid=$!

fabric_field() {
  python3 - "$tmp/data/fabric.json" "$1" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(1)
w = sys.argv[2]
if w == "ready":
    sys.exit(0 if d.get("ready") else 1)
if w == "gateway":
    print(d["gateway"].rstrip("/"))
elif w == "token_file":
    print(d.get("admin_token_file") or d["data"] + "/secrets/admin.token")
elif w == "broker_host":
    print(d.get("broker", {}).get("host", "127.0.0.1"))
elif w == "broker_port":
    print(d.get("broker", {}).get("port", 0))
elif w == "s3":
    print((d.get("s3") or "").rstrip("/"))
elif w == "gateway_pid":
    print([p["pid"] for p in d["processes"] if p.get("kind") == "gateway"][0])
elif w == "pids":
    # every running process of the fabric (broker, agents, containers), read again before
    # each row so that a restarted process is charged by its new pid
    print(",".join(str(p["pid"]) for p in d["processes"] if p.get("pid")))
EOF
}

for _ in $(seq 1 900); do
  kill -0 "$up_pid" 2>/dev/null || fail "dynostore up exited before it was ready"
  fabric_field ready && break
  sleep 0.1
done
fabric_field ready || fail "fabric.json not ready after 90 s"
gateway=$(fabric_field gateway)
token_file=$(fabric_field token_file)
broker_host=$(fabric_field broker_host)
broker_port=$(fabric_field broker_port)
gw_pid=$(fabric_field gateway_pid)
for _ in $(seq 1 300); do
  python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=2)' \
    "$gateway" 2>/dev/null && break
  sleep 0.1
done

# ---- redis -----------------------------------------------------------------------------------
# Two servers: plain Redis (no durability, the speed of memory) and durable Redis (every write
# appended and fsync'd before the reply: the bar for a durable store, one copy).
redis_wait() { # port pid log
  for _ in $(seq 1 100); do
    "$bin/dyno-bench" --system redis --redis-port "$1" --op ping 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || fail "redis-server exited: $(tail -n 5 "$3")"
    sleep 0.1
  done
  fail "redis-server on port $1 does not answer PING: $(tail -n 5 "$3")"
}
redis_port=$(free_port)
# 1 GiB values need bigger protocol limits than the defaults (512 MB bulk, 1 GB query buffer)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --proto-max-bulk-len 2gb --client-query-buffer-limit 2gb >"$tmp/redis.log" 2>&1 &
redis_pid=$!
mkdir -p "$tmp/redis-aof"
aof_port=$(free_port)
redis-server --port "$aof_port" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
  --dir "$tmp/redis-aof" --daemonize no \
  --proto-max-bulk-len 2gb --client-query-buffer-limit 2gb >"$tmp/redis-aof.log" 2>&1 &
aof_pid=$!
redis_wait "$redis_port" "$redis_pid" "$tmp/redis.log"
redis_wait "$aof_port" "$aof_pid" "$tmp/redis-aof.log"

# ---- the runs -----------------------------------------------------------------------------------
# size clients ops: op counts are bounded so the whole bench takes a few minutes
# disk: object size and objects for the disk-limit rows; ingest: publishers and readings
if [ "$smoke" = 1 ]; then
  matrix="4K 1 3"
  disk="4K 3"
  ingest="4 40"
  event_ops=3
else
  matrix="4K 1 500
4K 16 2000
1M 1 100
1M 16 320
64M 1 6
64M 16 16"
  disk="64M 6"
  ingest="16 5000"
  if [ "$large" = 1 ]; then
    matrix="$matrix
1G 1 2"
    disk="$disk
1G 2"
  fi
  event_ops=200
fi

results="$tmp/results"
: >"$results"
status=0
while read -r size clients ops; do
  [ -n "$size" ] || continue
  echo "run.sh: $size x $clients clients, $ops ops ..." >&2
  "$bin/dyno-bench" --system dyno --gateway "$gateway" --token-file "$token_file" \
    --catalog admin/bench --size "$size" --clients "$clients" --ops "$ops" --evict \
    --cpu-pids "$(fabric_field pids)" \
    >>"$results" || { echo "run.sh: dynostore $size x $clients FAILED" >&2; status=1; }
  "$bin/dyno-bench" --system redis --redis-port "$redis_port" \
    --size "$size" --clients "$clients" --ops "$ops" --evict --cpu-pids "$redis_pid" \
    >>"$results" || { echo "run.sh: redis $size x $clients FAILED" >&2; status=1; }
  "$bin/dyno-bench" --system redis --redis-port "$aof_port" --label redis-aof \
    --size "$size" --clients "$clients" --ops "$ops" --evict --cpu-pids "$aof_pid" \
    >>"$results" || { echo "run.sh: durable redis $size x $clients FAILED" >&2; status=1; }
done <<<"$matrix"

# the disk's limit for a put of k=3, m=2: 5 writers (one per container) each write a fragment
# of size/3 with fdatasync, on the disk of the fabric's data (the same temp folder)
# S3 rows (issue 14): the same fabric through the gateway's S3 door, boto3 under Debian's
# python3 (bench/s3bench.py), one client, beside the REST rows of the same sizes above.
s3_url=$(fabric_field s3 || true)
if [ -n "$s3_url" ] && /usr/bin/python3 -c 'import boto3' 2>/dev/null; then
  if [ "$smoke" = 1 ]; then s3matrix="4096 3"; else s3matrix="1048576 100
67108864 6"; fi
  s3key=$(python3 - "$gateway" "$token_file" "$tmp/s3secret" <<'EOF'
import json, sys, urllib.request
gw, tokf, out = sys.argv[1:4]
tok = open(tokf).read().strip()
req = urllib.request.Request(gw + "/v1/keys", data=b"{}", method="POST",
                             headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
k = json.load(urllib.request.urlopen(req, timeout=30))
with open(out, "w") as fh:
    fh.write(k["secret_access_key"])
print(k["access_key_id"])
EOF
  ) || { echo "run.sh: no S3 access key" >&2; status=1; s3matrix=""; }
  while read -r size ops; do
    [ -n "$size" ] || continue
    echo "run.sh: S3 (boto3) $size B x 1 client, $ops ops ..." >&2
    /usr/bin/python3 "$root/bench/s3bench.py" --endpoint "$s3_url" --key "$s3key" \
      --secret-file "$tmp/s3secret" --bucket bench-s3 --size "$size" --ops "$ops" \
      --cpu-pids "$(fabric_field pids)" >>"$results" || { echo "run.sh: S3 $size FAILED" >&2; status=1; }
  done <<<"$s3matrix"
else
  echo "run.sh: S3 rows skipped (no S3 door in fabric.json, or no boto3 under /usr/bin/python3)" >&2
fi

mkdir -p "$tmp/disk"
while read -r size ops; do
  [ -n "$size" ] || continue
  echo "run.sh: disk limit, $size x $ops ..." >&2
  "$bin/dyno-bench" --op disk --dir "$tmp/disk" --size "$size" --clients 5 --ops "$ops" \
    >>"$results" || { echo "run.sh: disk limit $size FAILED" >&2; status=1; }
done <<<"$disk"

# MQTT ingest: QoS 1 readings of 200 B, each stored and announced by object.created
read -r ingest_pubs ingest_ops <<<"$ingest"
echo "run.sh: MQTT ingest, $ingest_ops readings from $ingest_pubs publishers ..." >&2
"$bin/dyno-bench" --system dyno --gateway "$gateway" --token-file "$token_file" \
  --catalog admin/bench-ingest --op ingest --size 200 --clients "$ingest_pubs" --ops "$ingest_ops" \
  --broker-host "$broker_host" --broker-port "$broker_port" --deadline 60 \
  --cpu-pids "$(fabric_field pids)" \
  >>"$results" || { echo "run.sh: MQTT ingest FAILED" >&2; status=1; }

events=$("$bin/dyno-bench" --system dyno --gateway "$gateway" --token-file "$token_file" \
  --catalog admin/bench-events --op events --size 4K --ops "$event_ops" \
  --broker-host "$broker_host" --broker-port "$broker_port" 2>"$tmp/events.err") || status=1
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$gw_pid/status" 2>/dev/null || true)

# ---- the table ------------------------------------------------------------------------------------
awk '
function human(b) {
  if (b >= 1073741824 && b % 1073741824 == 0) return (b / 1073741824) " GiB"
  if (b >= 1048576 && b % 1048576 == 0) return (b / 1048576) " MiB"
  if (b >= 1024 && b % 1024 == 0) return (b / 1024) " KiB"
  return b " B"
}
$1 == "RESULT" {
  n++; sys[n] = $2; op[n] = $3; size[n] = $4; cl[n] = $5; ops[n] = $6
  mbs[n] = $7; opss[n] = $8; p50[n] = $9; p99[n] = $10
  cpu[n] = $11
  if ($2 == "redis") redis[$3 " " $4 " " $5] = $7
  if ($2 == "redis-aof") aof[$3 " " $4 " " $5] = $7
}
function ratio(x, base) { return (base > 0) ? sprintf("%.2f", x / base) : "-" }
END {
  printf "%-10s %-6s %8s %7s %6s %10s %10s %9s %9s %8s %8s %10s\n", "system", "op", "size", "clients", \
         "ops", "MB/s", "ops/s", "p50 ms", "p99 ms", "vs redis", "vs aof", "cpu ms/op"
  for (i = 1; i <= n; i++) {
    k = op[i] " " size[i] " " cl[i]
    vr = (sys[i] == "redis") ? "1.00" : (sys[i] == "dynostore" || sys[i] == "dyno-s3" || sys[i] == "redis-aof") ? ratio(mbs[i], redis[k]) : "-"
    va = (sys[i] == "redis-aof") ? "1.00" : (sys[i] == "dynostore" || sys[i] == "dyno-s3") ? ratio(mbs[i], aof[k]) : "-"
    c = (cpu[i] == "" || cpu[i] < 0) ? "-" : sprintf("%.3f", cpu[i])
    printf "%-10s %-6s %8s %7d %6d %10.1f %10.1f %9.3f %9.3f %8s %8s %10s\n", sys[i], op[i], \
           human(size[i]), cl[i], ops[i], mbs[i], opss[i], p50[i], p99[i], vr, va, c
  }
}' "$results"
echo "(MB/s is MiB/s of object bytes; p50/p99 per operation; 'vs redis' / 'vs aof' = MB/s over the"
echo " same row of plain Redis / durable Redis (appendfsync always) in this run; disk-limit: 5"
echo " writers fdatasync'ing the 5/3 of each object a k=3, m=2 put writes, no network, clients ="
echo " writers; ingest: 200 B MQTT QoS 1 readings, p50/p99 from publish to object.created; cpu ms/op:"
echo " user+system CPU of every fabric process (Redis: redis-server) during the row / ops;"
echo " dyno-s3: the same fabric through its S3 door with boto3, one client, 64 MiB as 8 MiB parts)"
if [ -n "$hwm" ]; then
  echo "gateway peak RSS (VmHWM of pid $gw_pid): $((hwm / 1024)) MiB"
else
  echo "gateway peak RSS: unavailable (gateway pid $gw_pid gone)"
  status=1
fi
case "$events" in
  "EVENTS none"*) echo "put-to-event latency: skipped: ${events#EVENTS none }" ;;
  EVENTS*) set -- $events
           echo "put-to-event latency (4 KiB, 1 client, $2 events): p50 $3 ms, p99 $4 ms (from put start); p50 $5 ms from the put's reply" ;;
  *) echo "put-to-event latency: failed: $(tail -n 3 "$tmp/events.err")" ;;
esac
exit $status
