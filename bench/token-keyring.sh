#!/usr/bin/env bash
# Benchmark: `gatehouse token` with a valid cached token in the OS keyring against the same
# token in the 0600 file, in one hyperfine run. See docs/benchmarks.md.
#
# Needs: dbus-daemon, gnome-keyring-daemon, secret-tool (testbed/install-deps installs them),
# hyperfine. No test bed: the cached token is a made-up JWT-shaped string (the command only
# reads, checks the expiry and prints), valid until 2100.
#
#   bench/token-keyring.sh
#
# Environment: GATEHOUSE (default: the release build of scripts/build-release), WARMUP (20),
# RUNS (300), BENCH_OUT (default target/bench/token-keyring).
#
# A private session bus and an unlocked GNOME Keyring run in a temporary folder and are stopped
# at the end; nothing of the caller's session is used.
set -euo pipefail

say() { printf '[bench] %s\n' "$*" >&2; }
die() {
  printf '[bench] error: %s\n' "$*" >&2
  exit 1
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for c in dbus-daemon gnome-keyring-daemon secret-tool hyperfine; do
  command -v "$c" >/dev/null || die "$c is missing (see testbed/install-deps)"
done
WARMUP="${WARMUP:-20}"
RUNS="${RUNS:-300}"
out="${BENCH_OUT:-$root/target/bench/token-keyring}"
mkdir -p "$out"
if [[ -z "${GATEHOUSE:-}" ]]; then
  say "building the release binary (scripts/build-release)"
  GATEHOUSE="$("$root/scripts/build-release")"
fi
GATEHOUSE="$(realpath "$GATEHOUSE")"

work="$(mktemp -d /tmp/gatehouse-bench-keyring.XXXXXX)"
bus_pid=""
keyring_pid=""
cleanup() {
  [[ -n "$keyring_pid" ]] && kill "$keyring_pid" 2>/dev/null || true
  [[ -n "$bus_pid" ]] && kill "$bus_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# One cache folder: `--token-cache file` reads its tokens.json, `--token-cache keyring` the
# keyring item named after it; both hold the same cache.
mkdir -p "$work/run" "$work/data" "$work/config/gatehouse"
chmod 700 "$work/config/gatehouse"
export HOME="$work" XDG_DATA_HOME="$work/data" XDG_RUNTIME_DIR="$work/run" XDG_CONFIG_HOME="$work/config"
unset GATEHOUSE_SERVER GATEHOUSE_TOKEN_CACHE

dbus-daemon --session --nofork --print-address=1 --address="unix:path=$work/bus" \
  >"$work/bus.address" 2>/dev/null &
bus_pid=$!
for _ in $(seq 50); do [[ -s "$work/bus.address" ]] && break; sleep 0.1; done
DBUS_SESSION_BUS_ADDRESS="$(head -1 "$work/bus.address")"
export DBUS_SESSION_BUS_ADDRESS
printf 'bench' | gnome-keyring-daemon --unlock --components=secrets --foreground \
  >/dev/null 2>&1 &
keyring_pid=$!
for _ in $(seq 50); do
  secret-tool search service none >/dev/null 2>&1 && break
  sleep 0.1
done

server="https://gatehouse.bench.invalid"
payload="$(printf '{"iss":"https://idp.invalid","sub":"bench","exp":4102444800}' | base64 -w0 | tr '+/' '-_' | tr -d '=')"
cache=$(
  cat <<JSON
{"version":1,"entries":{"bench":{"server":"$server","issuer":"https://idp.invalid","clientId":"cli","parameters":{},"kind":"oidc","token":"eyJhbGciOiJSUzI1NiJ9.$payload.c2lnbmF0dXJl","refreshToken":null,"expiresAt":4102444800,"caPem":null,"updatedAt":1,"loginCommand":"gatehouse login --sso $server","tokenType":"idToken"}}}
JSON
)
printf '%s' "$cache" >"$work/config/gatehouse/tokens.json"
chmod 600 "$work/config/gatehouse/tokens.json"
printf '%s' "$cache" | secret-tool store --label=bench service gatehouse username "$work/config/gatehouse"

# Both must print the ExecCredential before anything is timed.
for store in keyring file; do
  "$GATEHOUSE" token --server "$server" --token-cache "$store" \
    | grep -q '"kind":"ExecCredential"' || die "gatehouse token --token-cache $store printed no ExecCredential"
done
say "both stores answer; hyperfine: $WARMUP warm-up and $RUNS measured runs each"

hyperfine --shell=none --warmup "$WARMUP" --runs "$RUNS" \
  --export-json "$out/token-keyring.json" --export-markdown "$out/token-keyring.md" \
  -n "gatehouse token (keyring)" "$GATEHOUSE token --server $server --token-cache keyring" \
  -n "gatehouse token (file)" "$GATEHOUSE token --server $server --token-cache file"
say "results: $out/token-keyring.json, token-keyring.md"
