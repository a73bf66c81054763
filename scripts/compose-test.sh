#!/usr/bin/env bash
# Runs the compose deployment (compose/) for real on this machine and checks it
# (tests/integration/compose_stack.py, issue 15): installs docker.io, docker-compose and
# debootstrap, starts a private Docker daemon (its own socket, data and exec roots and pid file
# in one temp folder, its own cgroup parent with the cgroupfs driver; no iptables rules, no
# default bridge, an address pool no route of this host uses), makes the debian:12 base image
# with debootstrap from the apt mirror this machine already uses, builds the DynoStore image,
# starts the stack on free ports of 127.0.0.1, runs the checks, and on any exit stops and
# removes all of it: the stack and its volumes, the daemon (by its pid), the processes left in
# its cgroups, the bridges it made, its mounts, its cgroups and the temp folder. Never talks to
# another Docker daemon.
#
# Usage: scripts/compose-test.sh            (as root; the host CLI comes from $DYNO_BIN or build/)
# Environment: DYNO_COMPOSE_CACHE  folder kept between runs for the base image's root file
#                                  system (/var/tmp/dynostore-compose); delete it to start over
#              DYNO_COMPOSE_FAIL_AFTER=base  fail on purpose once the base image runs in a
#                                  container on a bridge (the test of the clean-up on failure)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

log() { printf 'compose-test: %s\n' "$*"; }
die() {
  log "FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: the Docker daemon it starts needs it"
t_start=$(date +%s)
scripts/install-deps.sh
BIN=${DYNO_BIN:-$SRC/build/bin}
if [ ! -x "$BIN/dynostore" ]; then
  log "building the host tree (the CLI the checks use)"
  scripts/build.sh >/dev/null
  BIN=$SRC/build/bin
fi
export DYNO_BIN=$BIN
# Debian's client, the same version as the daemon it talks to (not one earlier in PATH).
DOCKER=/usr/bin/docker
CACHE=${DYNO_COMPOSE_CACHE:-/var/tmp/dynostore-compose}
# Short: the daemon's and containerd's unix sockets live under it (108 bytes at most).
TMP=$(mktemp -d /tmp/dyno-compose.XXXXXX)
chmod 0711 "$TMP"
TAG=${TMP##*.}
CGROUP_PARENT=dyno-compose-$TAG
PROJECT=dynotest$(printf '%s' "$TAG" | tr 'A-Z' 'a-z')
DPID=""
POOL=""
log "folder $TMP"

# ---- clean-up, whatever happened ------------------------------------------------------------

# The bridges of the daemon's networks, recorded while it runs: if it dies they are left behind.
record_bridges() {
  [ -n "$DPID" ] || return 0
  local id
  for id in $($DOCKER network ls -q --filter driver=bridge 2>/dev/null); do
    grep -qx "br-$id" "$TMP/bridges" 2>/dev/null && continue
    echo "br-$id" >>"$TMP/bridges"
    log "bridge br-$id"
  done
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    record_bridges
    if [ -x "$TMP/compose" ]; then
      timeout 120 "$TMP/compose" down -v --remove-orphans -t 5 >>"$TMP/cleanup.log" 2>&1
    fi
    local ids
    ids=$($DOCKER ps -aq 2>/dev/null)
    [ -z "$ids" ] || timeout 60 $DOCKER rm -f -v $ids >>"$TMP/cleanup.log" 2>&1
    timeout 60 $DOCKER network prune -f >>"$TMP/cleanup.log" 2>&1
    kill -TERM "$DPID" 2>/dev/null
    for _ in $(seq 1 300); do
      kill -0 "$DPID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID" 2>/dev/null
  fi
  # Processes still in this daemon's cgroups (containers whose shim lost its daemon), then the
  # shims themselves: containerd started them with this folder in their command line.
  # (cgroup v1 hierarchies are /sys/fs/cgroup/<controller>/, v2 is /sys/fs/cgroup/ itself)
  local pids p d
  for d in /sys/fs/cgroup/"$CGROUP_PARENT" /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
    [ -d "$d" ] || continue
    pids=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  done
  # docker-proxy too, should the daemon have died: it forwards to an address of this pool.
  local cmd
  for p in /proc/[0-9]*; do
    { cmd=$(tr '\0' ' ' <"$p/cmdline"); } 2>/dev/null
    if [[ $cmd == *"$TMP/"* || ( -n $POOL && $cmd == *"-container-ip ${POOL%.0.0/16}."* ) ]]; then
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
  sleep 0.2
  if [ -s "$TMP/bridges" ]; then
    local br
    for br in $(sort -u "$TMP/bridges"); do
      ip link show "$br" >/dev/null 2>&1 && ip link delete "$br" 2>/dev/null
    done
  fi
  # Mounts under the folder (overlay layers, network namespaces, a debootstrap's /proc), deepest
  # first, then the folder and the cgroups the daemon made.
  awk -v t="$TMP/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  rm -rf "$TMP"
  for d in /sys/fs/cgroup/"$CGROUP_PARENT" /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  log "cleaned up (daemon ${DPID:-never started}, folder $TMP)"
  log "exit $rc after $(($(date +%s) - t_start)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- a private Docker daemon ----------------------------------------------------------------

# An address pool for the compose network that overlaps no address or route of this host.
POOL=$(python3 - <<'EOF'
import ipaddress, subprocess
used = []
for cmd in (["ip", "-4", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr"]):
    for line in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines():
        for w in line.split():
            try:
                used.append(ipaddress.ip_network(w, strict=False))
            except ValueError:
                pass
used = [n for n in used if n.prefixlen > 0]
for third in range(200, 250):
    cand = ipaddress.ip_network("10.%d.0.0/16" % third)
    if not any(cand.overlaps(n) for n in used):
        print(cand)
        break
EOF
)
[ -n "$POOL" ] || die "no free 10.x.0.0/16 for the compose network"
echo '{}' >"$TMP/daemon.json"
mkdir -p "$TMP/client"
export DOCKER_HOST=unix://$TMP/docker.sock DOCKER_CONFIG=$TMP/client
# No iptables rules and no ip_forward change on a shared host: containers talk over their
# bridge, published ports go through docker-proxy, and build steps use the host's network.
# setsid: its own session, so that a SIGTERM to this script's process group (a test stopping a
# run that hangs) reaches the script, whose clean-up then stops the daemon in order.
setsid dockerd --config-file "$TMP/daemon.json" --data-root "$TMP/root" --exec-root "$TMP/exec" \
  --pidfile "$TMP/dockerd.pid" -H "$DOCKER_HOST" --bridge none --iptables=false --ip-forward=false \
  --ip-masq=false --userland-proxy=true --default-address-pool "base=$POOL,size=24" \
  --cgroup-parent "$CGROUP_PARENT" --exec-opt native.cgroupdriver=cgroupfs --storage-driver overlay2 --log-level warn \
  >"$TMP/dockerd.log" 2>&1 </dev/null &
DPID=$!
for _ in $(seq 1 600); do
  $DOCKER version >/dev/null 2>&1 && break
  kill -0 "$DPID" 2>/dev/null || {
    tail -20 "$TMP/dockerd.log" >&2
    die "dockerd exited"
  }
  sleep 0.1
done
$DOCKER version >/dev/null 2>&1 || {
  tail -20 "$TMP/dockerd.log" >&2
  die "dockerd did not answer on $DOCKER_HOST"
}
[ "$(cat "$TMP/dockerd.pid")" = "$DPID" ] || die "dockerd's pid file does not name pid $DPID"
log "dockerd pid $DPID on $DOCKER_HOST, address pool $POOL, $($DOCKER version -f '{{.Server.Version}}')"

# ---- the base image: debian:12 from debootstrap ---------------------------------------------

# The Debian mirror apt already uses (deb822 or one-line sources), else Debian's own.
mirror() {
  local m
  m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $0 ~ /bookworm/ && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
    /etc/apt/sources.list 2>/dev/null | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=$(mirror)
ROOTFS_TAR=$CACHE/bookworm-minbase-$(dpkg --print-architecture)-$(printf '%s' "$MIRROR" | sha256sum | cut -c1-12).tar
if [ ! -s "$ROOTFS_TAR" ]; then
  log "debootstrap --variant=minbase bookworm from $MIRROR (cached in $CACHE for the next run)"
  mkdir -p "$CACHE"
  timeout --foreground 1200 debootstrap --variant=minbase bookworm "$TMP/rootfs" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 || {
    tail -20 "$TMP/debootstrap.log" >&2
    die "debootstrap failed"
  }
  # What the official image leaves out too: downloaded packages and package lists.
  rm -rf "$TMP/rootfs/var/cache/apt/archives/"*.deb "$TMP/rootfs/var/lib/apt/lists/"*
  tar -C "$TMP/rootfs" --numeric-owner -cf "$ROOTFS_TAR.$TAG" .
  mv "$ROOTFS_TAR.$TAG" "$ROOTFS_TAR"
  rm -rf "$TMP/rootfs"
fi
$DOCKER import "$ROOTFS_TAR" debian:12 >/dev/null
log "base image debian:12 imported from $ROOTFS_TAR"

if [ "${DYNO_COMPOSE_FAIL_AFTER:-}" = base ]; then
  $DOCKER network create probe >/dev/null
  record_bridges
  # (its warning that IPv4 forwarding is off is expected: nothing here is routed)
  $DOCKER run -d --network probe debian:12 sleep 600 >/dev/null 2>&1
  log "DYNO_COMPOSE_FAIL_AFTER=base: failing on purpose with a container running"
  exit 3
fi

# ---- the DynoStore image ----------------------------------------------------------------------

log "building dynostore:latest (compose/Dockerfile)"
b0=$(date +%s)
# --network=host: the daemon has no NAT, so apt inside the build reaches the mirror this way.
if ! timeout --foreground 1200 $DOCKER build --network=host -f compose/Dockerfile -t dynostore:latest . >"$TMP/build.log" 2>&1; then
  tail -40 "$TMP/build.log" >&2
  die "docker build failed"
fi
log "image built in $(($(date +%s) - b0)) s: $($DOCKER image ls dynostore:latest --format '{{.Size}}')"

# ---- the stack ---------------------------------------------------------------------------------

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export DYNO_PUBLISH_HOST=127.0.0.1 DYNO_GATEWAY_PORT DYNO_BROKER_PORT
# compose v2 when the client has it, else Debian's docker-compose 1.29; -p: no `name:` in the file.
if $DOCKER compose version >/dev/null 2>&1; then
  COMPOSE_CMD="$DOCKER compose"
else
  COMPOSE_CMD=docker-compose
fi
cat >"$TMP/compose" <<EOF
#!/bin/sh
exec $COMPOSE_CMD -p $PROJECT -f $SRC/compose/docker-compose.yml "\$@"
EOF
chmod +x "$TMP/compose"
export DYNO_COMPOSE=$TMP/compose DYNO_DOCKER=$DOCKER DYNO_COMPOSE_TMP=$TMP
u0=$(date +%s)
# Free ports of now; other tests on this machine may take one before docker-proxy binds it,
# and then the stack starts again on others.
for attempt in 1 2 3; do
  DYNO_GATEWAY_PORT=$(free_port)
  DYNO_BROKER_PORT=$(free_port)
  while [ "$DYNO_BROKER_PORT" = "$DYNO_GATEWAY_PORT" ]; do DYNO_BROKER_PORT=$(free_port); done
  log "$($COMPOSE_CMD version --short 2>/dev/null || $COMPOSE_CMD version | head -1): up -d, project $PROJECT, gateway 127.0.0.1:$DYNO_GATEWAY_PORT, broker 127.0.0.1:$DYNO_BROKER_PORT"
  timeout --foreground 600 "$TMP/compose" up -d >"$TMP/up.log" 2>&1 && break
  if [ "$attempt" -lt 3 ] && grep -qi "address already in use" "$TMP/up.log"; then
    log "a published port was taken meanwhile: again on other ports"
    timeout 120 "$TMP/compose" down -t 5 >>"$TMP/up.log" 2>&1 || true
    continue
  fi
  cat "$TMP/up.log" >&2
  die "compose up failed"
done
record_bridges
log "stack started in $(($(date +%s) - u0)) s"

# ---- the checks (issue 15 acceptance 1-3) --------------------------------------------------

log "checks: tests/integration/compose_stack.py"
if ! (cd tests/integration && timeout --foreground 1200 python3 -m unittest -v compose_stack); then
  "$TMP/compose" ps >&2 || true
  "$TMP/compose" logs --tail 30 >&2 || true
  die "the checks failed"
fi
log "all checks passed"
