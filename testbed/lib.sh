# Shared definitions for testbed/build, testbed/up and testbed/down. Sourced, not executed.
# shellcheck shell=bash

TESTBED_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$TESTBED_DIR/versions.env"

TESTBED_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse-testbed"
TESTBED_BIN="$TESTBED_CACHE/bin"
TESTBED_BUILD_LOGS="$TESTBED_CACHE/logs"
STATE="${TESTBED_STATE_DIR:-$TESTBED_DIR/.state}"

# Version-keyed binary names in the cache (outside the repository, shared by every clone).
BIN_KUBE_APISERVER="$TESTBED_BIN/kube-apiserver-$KUBERNETES_VERSION"
BIN_KUBECTL="$TESTBED_BIN/kubectl-$KUBERNETES_VERSION"
BIN_ETCD="$TESTBED_BIN/etcd-$ETCD_VERSION"
BIN_DEX="$TESTBED_BIN/dex-$DEX_VERSION"
BIN_BCRYPT="$TESTBED_BIN/bcrypt-x-crypto-$(awk '$1=="require" && $2=="golang.org/x/crypto" {print $3}' "$TESTBED_DIR/go/bcrypt/go.mod")"

# Ports (all on 127.0.0.1).
ETCD_CLIENT_PORT="${TESTBED_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${TESTBED_ETCD_PEER_PORT:-2380}"
KUBE_APISERVER_PORT=6443
DEX_PORT=5556
DEX_ISSUER="https://127.0.0.1:$DEX_PORT/dex"
KUBE_APISERVER_URL="https://127.0.0.1:$KUBE_APISERVER_PORT"

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME BINARY: true when STATE/run/NAME.pid names a live process running BINARY.
pid_alive() {
  local pidfile="$STATE/run/$1.pid" pid exe
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: the process must be running our binary.
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "${exe% (deleted)}" == "$2" ]]
}

# stop_proc NAME BINARY: stop the process in STATE/run/NAME.pid (TERM, then KILL after 20 s).
stop_proc() {
  local name="$1" bin="$2" pidfile="$STATE/run/$1.pid" pid i
  if ! pid_alive "$name" "$bin"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 20s; killing"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}
