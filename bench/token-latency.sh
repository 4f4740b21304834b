#!/usr/bin/env bash
# Benchmark: `gatehouse token` with a valid cached token, side by side with kubelogin's
# `get-token` with a valid cached token, in one hyperfine run. See docs/benchmarks.md.
#
# Needs: a running test bed (testbed/up), hyperfine, curl, python3; strace and /usr/bin/time
# are used when present. It never builds kubelogin: pass your own binary with KUBELOGIN.
#
#   KUBELOGIN=/path/to/kubelogin bench/token-latency.sh
#   bench/token-latency.sh                  # gatehouse only (says so)
#
# Environment:
#   KUBELOGIN   kubelogin binary (optional; without it only gatehouse is measured)
#   GATEHOUSE   gatehouse binary (default: the release build of scripts/build-release,
#               built first)
#   WARMUP      hyperfine warm-up runs per command (default 20)
#   RUNS        hyperfine measured runs per command (default 300)
#   RSS_RUNS    runs per command for peak RSS with /usr/bin/time -v (default 20)
#   BENCH_OUT   folder for the results (default target/bench/token-latency)
#
# What it does: starts a gatehouse server on a free port (Dex as IdP, the test bed's serving
# certificate), signs in with `gatehouse login --sso --no-browser` while curl plays the browser
# on Dex's password form, fills kubelogin's cache once with the password grant against the
# same Dex, checks that both commands print an ExecCredential from the cache without any
# network connection (strace), then runs hyperfine on both and measures peak RSS.
set -euo pipefail

say() { printf '[bench] %s\n' "$*" >&2; }
die() {
  printf '[bench] error: %s\n' "$*" >&2
  exit 1
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="${TESTBED_STATE_DIR:-$root/testbed/.state}/env"
[[ -f "$env_file" ]] || die "no $env_file: start the test bed first (testbed/up)"
# shellcheck disable=SC1090
source "$env_file"

command -v hyperfine >/dev/null || die "hyperfine is missing (Debian: apt-get install hyperfine)"
command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing"

WARMUP="${WARMUP:-20}"
RUNS="${RUNS:-300}"
RSS_RUNS="${RSS_RUNS:-20}"
out="${BENCH_OUT:-$root/target/bench/token-latency}"
mkdir -p "$out"
rm -f "$out/ratio.txt" "$out/peak-rss.tsv"

if [[ -z "${GATEHOUSE:-}" ]]; then
  say "building the release binary (scripts/build-release)"
  GATEHOUSE="$("$root/scripts/build-release")"
fi
[[ -x "$GATEHOUSE" ]] || die "GATEHOUSE=$GATEHOUSE is not an executable"
GATEHOUSE="$(realpath "$GATEHOUSE")"

if [[ -n "${KUBELOGIN:-}" ]]; then
  [[ -x "$KUBELOGIN" ]] || die "KUBELOGIN=$KUBELOGIN is not an executable"
  KUBELOGIN="$(realpath "$KUBELOGIN")"
else
  say "KUBELOGIN is not set: measuring gatehouse only, no comparison"
  say "(set KUBELOGIN=/path/to/kubelogin to run both side by side; docs/benchmarks.md says how to build it)"
fi

work="$(mktemp -d /tmp/gatehouse-bench.XXXXXX)"
server_pid=""
login_pid=""
cleanup() {
  if [[ -n "$login_pid" ]]; then kill "$login_pid" 2>/dev/null || true; fi
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# One user's machine: its own HOME and token caches, nothing of the caller's.
mkdir -p "$work/home" "$work/xdg" "$work/kubelogin-cache"
export HOME="$work/home" XDG_CONFIG_HOME="$work/xdg"
unset GATEHOUSE_SERVER GATEHOUSE_TOKEN_CACHE GATEHOUSE_CLI_TRACE KUBECONFIG
# The file store is measured: no session bus, so `auto` never tries the keyring.
unset DBUS_SESSION_BUS_ADDRESS XDG_RUNTIME_DIR
# What kubectl passes to an exec plugin (kubelogin reads it; gatehouse ignores it).
export KUBERNETES_EXEC_INFO='{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}'

# --- gatehouse server -----------------------------------------------------------------------
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
server="https://127.0.0.1:$port"
cat >"$work/gatehouse.yaml" <<EOF
listen: 127.0.0.1:$port
tls: { certFile: "$GATEHOUSE_TLS_CERT", keyFile: "$GATEHOUSE_TLS_KEY" }
kubernetes: { kubeconfig: "$GATEHOUSE_KUBECONFIG" }
oidc:
  issuerUrl: "$DEX_ISSUER"
  clientId: gatehouse
  cliClientId: gatehouse-cli
  caFile: "$TESTBED_CA_FILE"
  additionalScopes: [groups]
  additionalParameters: { connector_id: local }
fallThrough: { enabled: true }
EOF
say "starting gatehouse serve on $server"
"$GATEHOUSE" serve --config "$work/gatehouse.yaml" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
  kill -0 "$server_pid" 2>/dev/null || die "gatehouse serve exited: $(cat "$work/server.log")"
  curl -sSf -o /dev/null --cacert "$TESTBED_CA_FILE" "$server/readyz" 2>/dev/null && break
  sleep 0.2
done
curl -sSf -o /dev/null --cacert "$TESTBED_CA_FILE" "$server/readyz" || die "gatehouse is not ready: $(cat "$work/server.log")"

# --- gatehouse login --sso, curl as the browser ---------------------------------------------
say "gatehouse login --sso (curl signs in at Dex's password form as $ALICE_EMAIL)"
"$GATEHOUSE" login --sso "$server" --certificate-authority "$TESTBED_CA_FILE" \
  --no-browser --timeout 60s </dev/null >"$work/login.out" 2>"$work/login.err" &
login_pid=$!
auth_url=""
for _ in $(seq 1 100); do
  auth_url="$(grep -m1 -o "$DEX_ISSUER/auth?[^[:space:]]*" "$work/login.err" || true)"
  [[ -n "$auth_url" ]] && break
  kill -0 "$login_pid" 2>/dev/null || die "gatehouse login exited: $(cat "$work/login.err")"
  sleep 0.1
done
[[ -n "$auth_url" ]] || die "gatehouse login printed no authorization URL: $(cat "$work/login.err")"
jar="$work/cookies"
# The authorization URL carries connector_id=local (the server's static parameter), so Dex
# goes straight to its password form.
form_url="$(curl -sS --cacert "$TESTBED_CA_FILE" -c "$jar" -b "$jar" -L -o "$work/form.html" \
  -w '%{url_effective}' "$auth_url")"
action="$(grep -o '<form method="post" action="[^"]*"' "$work/form.html" | head -1 |
  sed -e 's/.*action="//' -e 's/"$//' -e 's/&amp;/\&/g')"
[[ -n "$action" ]] || die "no login form at $form_url"
action="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urljoin(sys.argv[1], sys.argv[2]))' "$form_url" "$action")"
# POST the form; curl follows the 303s (as GET) through Dex to the CLI's loopback callback.
curl -sS --cacert "$TESTBED_CA_FILE" -c "$jar" -b "$jar" -L -o "$work/callback.html" \
  --data-urlencode "login=$ALICE_EMAIL" --data-urlencode "password=$ALICE_PASSWORD" "$action"
grep -q "Signed in" "$work/callback.html" || die "the callback page does not say Signed in: $(cat "$work/callback.html")"
wait "$login_pid" || die "gatehouse login failed: $(cat "$work/login.err")"
login_pid=""

gatehouse_cmd=("$GATEHOUSE" token --server "$server")

# --- kubelogin cache ------------------------------------------------------------------------
# The key of kubelogin's cache covers issuer, client, scopes, CA and user name, not the
# password: the benchmarked command leaves the password out (it must not be in the results)
# and would fail if the cache missed.
kubelogin_cmd=()
if [[ -n "${KUBELOGIN:-}" ]]; then
  kubelogin_cmd=("$KUBELOGIN" get-token
    "--oidc-issuer-url=$DEX_ISSUER"
    "--oidc-client-id=$DEX_CLI_CLIENT_ID"
    "--oidc-extra-scope=email,groups,offline_access"
    "--certificate-authority=$TESTBED_CA_FILE"
    "--token-cache-dir=$work/kubelogin-cache"
    --grant-type=password
    "--username=$ALICE_EMAIL")
  say "kubelogin get-token --grant-type=password once to fill its cache"
  "${kubelogin_cmd[@]}" "--password=$ALICE_PASSWORD" </dev/null >"$work/kubelogin-fill.json" ||
    die "kubelogin could not get a token from Dex"
fi

# --- both print an ExecCredential from the cache, without network ---------------------------
check() { # name, command...
  local name="$1"
  shift
  "$@" </dev/null >"$work/$name.json" 2>"$work/$name.err" || die "$name failed: $(cat "$work/$name.err")"
  python3 - "$work/$name.json" "$name" <<'PY' || die "$name printed no valid ExecCredential"
import json, sys, time, datetime
v = json.load(open(sys.argv[1]))
assert v["kind"] == "ExecCredential", v.get("kind")
st = v["status"]
assert st["token"].count(".") == 2
exp = datetime.datetime.fromisoformat(st["expirationTimestamp"].replace("Z", "+00:00")).timestamp()
left = exp - time.time()
assert left > 120, f"the token expires in {left:.0f} s: too soon for a benchmark"
print(f"[bench] {sys.argv[2]}: {v['apiVersion']} ExecCredential, token valid {left / 60:.0f} min more", file=sys.stderr)
PY
  if command -v strace >/dev/null; then
    strace -f -qq -e trace=connect,sendto -o "$work/$name.strace" "$@" </dev/null >/dev/null 2>&1 ||
      die "$name failed under strace"
    if grep -E 'AF_INET|AF_INET6' "$work/$name.strace" >/dev/null; then
      die "$name opened a network connection: $(grep -E 'AF_INET' "$work/$name.strace")"
    fi
    say "$name: no network connection (strace: $(grep -c 'connect(' "$work/$name.strace" || true) connect calls, none AF_INET/AF_INET6)"
  else
    say "strace not found: not checking that $name stays off the network"
  fi
}
check gatehouse "${gatehouse_cmd[@]}"
if [[ -n "${KUBELOGIN:-}" ]]; then check kubelogin "${kubelogin_cmd[@]}"; fi

# --- hyperfine ------------------------------------------------------------------------------
hf=(hyperfine --shell=none --warmup "$WARMUP" --runs "$RUNS" --style basic
  --export-json "$out/token-latency.json" --export-markdown "$out/token-latency.md"
  -n "gatehouse token" "$(printf '%q ' "${gatehouse_cmd[@]}")")
if [[ -n "${KUBELOGIN:-}" ]]; then
  hf+=(-n "kubelogin get-token" "$(printf '%q ' "${kubelogin_cmd[@]}")")
fi
say "hyperfine: $WARMUP warm-up and $RUNS measured runs per command"
"${hf[@]}"

# --- peak RSS -------------------------------------------------------------------------------
rss() { # name, command...: median and max of "Maximum resident set size" over RSS_RUNS runs
  local name="$1"
  shift
  local vals=()
  for _ in $(seq 1 "$RSS_RUNS"); do
    /usr/bin/time -v -o "$work/time.txt" "$@" </dev/null >/dev/null 2>&1
    vals+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")")
  done
  printf '%s\n' "${vals[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "%s\t%d\t%d\n", n, a[int((NR+1)/2)], a[NR]}'
}
if [[ -x /usr/bin/time ]]; then
  {
    printf 'command\tmedian_kib\tmax_kib\n'
    rss "gatehouse token" "${gatehouse_cmd[@]}"
    if [[ -n "${KUBELOGIN:-}" ]]; then rss "kubelogin get-token" "${kubelogin_cmd[@]}"; fi
  } >"$out/peak-rss.tsv"
else
  say "/usr/bin/time not found: no peak RSS"
fi

# --- summary --------------------------------------------------------------------------------
{
  echo "gatehouse: $("$GATEHOUSE" --version) ($(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- Cargo.toml Cargo.lock ':(glob)crates/*/Cargo.toml' ':(glob)crates/*/src/**' || echo ', source modified'))"
  if [[ -n "${KUBELOGIN:-}" ]]; then echo "kubelogin: $("$KUBELOGIN" --version 2>&1 | head -1)"; fi
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
  echo "hyperfine: $(hyperfine --version), warmup $WARMUP, runs $RUNS, --shell=none"
} >"$out/environment.txt"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
res = {r["command"]: r for r in json.load(open(os.path.join(out, "token-latency.json")))["results"]}
print()
print(open(os.path.join(out, "environment.txt")).read().rstrip())
print()
for name, r in res.items():
    print(f"{name:22} mean {r['mean']*1e3:7.2f} ms  ±{r['stddev']*1e3:5.2f}  median {r['median']*1e3:7.2f} ms  min {r['min']*1e3:6.2f}  max {r['max']*1e3:6.2f}")
rss = os.path.join(out, "peak-rss.tsv")
if os.path.exists(rss):
    print()
    for line in open(rss).read().splitlines()[1:]:
        n, med, mx = line.split("\t")
        print(f"{n:22} peak RSS median {int(med)/1024:6.1f} MiB  max {int(mx)/1024:6.1f} MiB")
g, k = res.get("gatehouse token"), res.get("kubelogin get-token")
if g and k:
    ratio = g["mean"] / k["mean"]
    ratio_med = g["median"] / k["median"]
    verdict = "met" if ratio <= 0.25 else "NOT met"
    print()
    print(f"gatehouse / kubelogin wall time: {ratio:.3f} (mean), {ratio_med:.3f} (median); "
          f"kubelogin takes {1/ratio:.1f}x as long. Goal <= 0.25: {verdict}")
    with open(os.path.join(out, "ratio.txt"), "w") as f:
        f.write(f"mean_ratio={ratio:.4f}\nmedian_ratio={ratio_med:.4f}\ngoal_met={'yes' if ratio <= 0.25 else 'no'}\n")
else:
    print()
    print("gatehouse only (KUBELOGIN not set): no ratio")
print(f"\nresults: {out}/token-latency.json, token-latency.md, peak-rss.tsv, environment.txt")
PY
