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
BIN_KWOK="$TESTBED_BIN/kwok-$KWOK_VERSION"
BIN_BCRYPT="$TESTBED_BIN/bcrypt-x-crypto-$(awk '$1=="require" && $2=="golang.org/x/crypto" {print $3}' "$TESTBED_DIR/go/bcrypt/go.mod")"
# Keycloak distribution, unpacked and built once (testbed/build keycloak).
KEYCLOAK_DIST="$TESTBED_CACHE/keycloak-$KEYCLOAK_VERSION"

# Ports (all on 127.0.0.1).
ETCD_CLIENT_PORT="${TESTBED_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${TESTBED_ETCD_PEER_PORT:-2380}"
KUBE_APISERVER_PORT=6443
DEX_PORT=5556
KEYCLOAK_PORT=8543
NODE_OIDC_PORT=8643
# The conformance test's static issuers (testbed/static-issuers, testbed/conformance).
STATIC_ISSUERS_PORT=8743
# kwok serves the kubelet API of the fake node kwok-node-0 (the kube-apiserver connects to it).
KWOK_KUBELET_PORT=10250
DEX_ISSUER="https://127.0.0.1:$DEX_PORT/dex"
KUBE_APISERVER_URL="https://127.0.0.1:$KUBE_APISERVER_PORT"
KEYCLOAK_URL="https://127.0.0.1:$KEYCLOAK_PORT"
NODE_OIDC_ISSUER="https://127.0.0.1:$NODE_OIDC_PORT"
STATIC_ISSUERS_URL="https://127.0.0.1:$STATIC_ISSUERS_PORT"
# Debian's Python (testbed/install-deps installs it with python3-yaml): the static issuers'
# renderer and server run on it, whatever other python3 comes first in PATH.
TESTBED_PYTHON=/usr/bin/python3
# Optional components (default on): TESTBED_WITHOUT_KEYCLOAK=1 skips Keycloak (fetch, build, start).
with_keycloak() { [[ "${TESTBED_WITHOUT_KEYCLOAK:-0}" != 1 ]]; }

# find_java: prints the JAVA_HOME of the newest JDK with major version >= KEYCLOAK_MIN_JAVA
# (TESTBED_JAVA_HOME wins when set), or fails.
find_java() {
  local best="" best_major=0 home major
  if [[ -n "${TESTBED_JAVA_HOME:-}" ]]; then
    [[ -x "$TESTBED_JAVA_HOME/bin/java" ]] || die "TESTBED_JAVA_HOME=$TESTBED_JAVA_HOME has no bin/java"
    echo "$TESTBED_JAVA_HOME"; return 0
  fi
  for home in /usr/lib/jvm/* ${JAVA_HOME:+"$JAVA_HOME"}; do
    [[ -x "$home/bin/java" && ! -L "$home" ]] || continue
    major="$("$home/bin/java" -XshowSettings:properties -version 2>&1 |
      awk -F' = ' '/java.specification.version/ {print $2}')"
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if ((major > best_major)); then best_major=$major; best=$home; fi
  done
  ((best_major >= KEYCLOAK_MIN_JAVA)) ||
    die "Keycloak $KEYCLOAK_VERSION needs Java $KEYCLOAK_MIN_JAVA+; newest JDK found is ${best_major:-none} (${best:-no /usr/lib/jvm/*}). Install one (testbed/install-deps), set TESTBED_JAVA_HOME, or run with TESTBED_WITHOUT_KEYCLOAK=1"
  echo "$best"
}

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME BINARY [ARG]: true when STATE/run/NAME.pid names a live process running BINARY
# (and, when ARG is given, with ARG among its command-line arguments: for interpreters such as
# node or sh, whose executable alone says little).
pid_alive() {
  local pidfile="$STATE/run/$1.pid" pid exe
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: the process must be running our binary.
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ "${exe% (deleted)}" == "$2" ]] || return 1
  [[ -z "${3:-}" ]] || tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$3"
}

# stop_proc NAME BINARY [ARG]: stop the process in STATE/run/NAME.pid (TERM, then KILL after 20 s).
stop_proc() {
  local name="$1" bin="$2" pidfile="$STATE/run/$1.pid" pid i
  if ! pid_alive "$name" "$bin" "${3:-}"; then
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
    # testbed/up starts each process as a session (and process group) leader: kill the group,
    # so that children (Keycloak's java under kc.sh) go too.
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}
