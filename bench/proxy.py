#!/usr/bin/env python3
"""Proxy benchmarks: gatehouse against the kube-apiserver directly, kube-oidc-proxy and a bare
pass-through, side by side in one run (docs/benchmarks.md, "The proxy").

Run it with `bench/run` (which checks the tools and builds what it needs); see that script for
the options. This file does the work:

1. prepares the test bed: namespace `bench` with one ConfigMap `one` and 500 more, a
   ServiceAccount `bench/reader` that alice maps to (annotation), read rights for it and for
   bob (`oidc:bob@example.com`, whom the kube-apiserver trusts through Dex);
2. gets the tokens: alice's and bob's Dex ID tokens (password grant), a token of
   `bench/reader` (`kubectl create token`);
3. starts the contenders on free ports: gatehouse (release build), kube-oidc-proxy (when
   KUBE_OIDC_PROXY names a binary: once plain, once with --token-passthrough), and
   bench-passthrough;
4. runs every scenario (GET of one ConfigMap, LIST of 500) at every concurrency over HTTP/2
   and HTTP/1.1 with oha, contenders interleaved within each repeat, and reads each process's
   CPU time (utime + stime from /proc/PID/stat) and the kube-apiserver's around each run;
5. writes the raw results (JSON), the table and the goals into docs/benchmarks.md (between
   its `proxy-bench` markers) and the plots (matplotlib, SVG) into docs/benchmarks/.

Figures are medians over the repeats with the spread (min..max); ratios are between contenders
measured in the same repeat.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import ssl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def die(msg):
    say(f"error: {msg}")
    sys.exit(1)


def testbed_env():
    path = os.environ.get("TESTBED_STATE_DIR", os.path.join(ROOT, "testbed/.state")) + "/env"
    if not os.path.exists(path):
        die(f"no {path}: start the test bed first (testbed/up)")
    out = subprocess.run(["bash", "-c", 'set -a; . "$1"; env -0', "bash", path],
                         capture_output=True, check=True, env={}).stdout
    return dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(tb, *args, input_text=None):
    cmd = [tb["KUBECTL"], "--kubeconfig", tb["KUBECONFIG_ADMIN"], *args]
    r = subprocess.run(cmd, input=input_text, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"kubectl {' '.join(args[:3])} failed: {r.stderr.strip()}")
    return r.stdout


def prepare_cluster(tb, lists):
    say(f"preparing namespace bench (1 + {lists} ConfigMaps, ServiceAccount reader, rights)")
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "reader", "namespace": "bench",
                      "annotations": {"gatehouse.dev/claim.email": tb["ALICE_EMAIL"]}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "configmap-reader", "namespace": "bench"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "readers", "namespace": "bench"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "configmap-reader"},
         "subjects": [
             {"kind": "ServiceAccount", "name": "reader", "namespace": "bench"},
             {"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
              "name": f"oidc:{tb['BOB_EMAIL']}"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "namespace": "bench"},
         "data": {"greeting": "hello"}},
        # kube-oidc-proxy's own identity: it impersonates any user and group (and extras) and
        # sends TokenReviews in passthrough mode, rights gatehouse's identity does not have.
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "kube-oidc-proxy", "namespace": "bench"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "bench-kube-oidc-proxy"},
         "rules": [{"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
                    "verbs": ["impersonate"]},
                   {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/*", "uids"],
                    "verbs": ["impersonate"]},
                   {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
                    "verbs": ["create"]},
                   {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                    "verbs": ["create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "bench-kube-oidc-proxy"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "bench-kube-oidc-proxy"},
         "subjects": [{"kind": "ServiceAccount", "name": "kube-oidc-proxy",
                       "namespace": "bench"}]},
    ]
    for i in range(lists):
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"item-{i:04d}", "namespace": "bench",
                                  "labels": {"bench": "list"}},
                     "data": {"index": str(i), "text": "x" * 200}})
    kubectl(tb, "apply", "--server-side", "-f", "-",
            input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def dex_token(tb, email, password):
    ctx = ssl.create_default_context(cafile=tb["TESTBED_CA_FILE"])
    body = urllib.parse.urlencode({
        "grant_type": "password", "client_id": tb["DEX_CLI_CLIENT_ID"],
        "username": email, "password": password,
        # The cluster's audience too (Dex cross-client), as a real installation asks for it:
        # the kube-apiserver accepts only `kubernetes` (fall-through is judged by it).
        "scope": f"openid email groups audience:server:client_id:{tb['DEX_PEER_CLIENT_ID']}",
    }).encode()
    with urllib.request.urlopen(tb["DEX_TOKEN_URL"], body, context=ctx, timeout=30) as r:
        return json.load(r)["id_token"]


def jwt_claims(token):
    """The payload of a JWT, unverified: only to send the same extras gatehouse sends."""
    import base64
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Proc:
    """A contender's process, its log in the work folder."""

    def __init__(self, name, cmd, work, url):
        self.name, self.url = name, url
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def cpu(self):
        return cpu_seconds(self.p.pid)

    def rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_ready(url, token, ca, what, seconds=60):
    ctx = ssl.create_default_context(cafile=ca)
    deadline = time.time() + seconds
    last = ""
    while time.time() < deadline:
        try:
            req = urllib.request.Request(url + "/api/v1/namespaces/bench/configmaps/one",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = str(e)
        time.sleep(0.5)
    die(f"{what} is not serving the bench ConfigMap at {url}: {last}")


def check_once(url, extra, ca, what, oha_bin):
    """One request of a contender that oha drives with its own headers and certificate."""
    summary = oha(url + "/api/v1/namespaces/bench/configmaps/one", None, 1, False, 1, oha_bin,
                  extra)
    codes = summary.get("statusCodeDistribution", {})
    if set(codes) != {"200"}:
        die(f"{what}: the kube-apiserver answered {codes} (expected only 200)")


def oha(url, token, concurrency, http2, seconds, oha_bin, extra=()):
    cmd = [oha_bin, "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
           "-c", str(concurrency), "--insecure", *extra]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if http2:
        cmd += ["--http2"]
    r = subprocess.run(cmd + [url], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"oha failed: {r.stderr.strip()[:500]}")
    return json.loads(r.stdout)


def main():
    cfg = json.loads(os.environ["BENCH_SETTINGS"])
    tb = testbed_env()
    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    prepare_cluster(tb, cfg["list_size"])
    say("getting tokens (Dex password grant for alice and bob; a token of bench/reader)")
    alice = dex_token(tb, tb["ALICE_EMAIL"], tb["ALICE_PASSWORD"])
    bob = dex_token(tb, tb["BOB_EMAIL"], tb["BOB_PASSWORD"])
    sa_token = kubectl(tb, "create", "token", "reader", "-n", "bench", "--duration=2h").strip()
    ca = tb["TESTBED_CA_FILE"]
    cert, key = tb["GATEHOUSE_TLS_CERT"], tb["GATEHOUSE_TLS_KEY"]
    kube_pid = int(open(os.path.join(tb["TESTBED_STATE"], "run/kube-apiserver.pid")).read())

    procs = []
    # (name, url, bearer token or None, process measured or None, extra oha arguments)
    contenders = [("direct", tb["KUBE_APISERVER_URL"], sa_token, None, [])]
    # The kube-apiserver's own cost of impersonation, without any proxy: gatehouse's identity
    # (its client certificate) sending exactly the headers gatehouse sends for alice, and only
    # the user (what "fewer extras" would cost the cluster).
    pki = os.path.join(tb["TESTBED_STATE"], "pki")
    client = ["--cert", os.path.join(pki, "gatehouse-client.crt"),
              "--key", os.path.join(pki, "gatehouse-client.key")]
    claims = jwt_claims(alice)
    as_reader = ["-H", "Impersonate-User: system:serviceaccount:bench:reader"]
    extras = []
    for extra_key, value in [("subject", claims["sub"]), ("username", claims["email"]),
                       ("issuer", claims["iss"])]:
        extras += ["-H", f"Impersonate-Extra-gatehouse.dev%2f{extra_key}: {value}"]
    contenders += [
        ("direct-impersonated", tb["KUBE_APISERVER_URL"], None, None, client + as_reader + extras),
        ("direct-impersonated-user-only", tb["KUBE_APISERVER_URL"], None, None,
         client + as_reader),
    ]
    gh_port = free_port()
    gh_cfg = os.path.join(work, "gatehouse.yaml")
    with open(gh_cfg, "w") as f:
        f.write(
            f"listen: 127.0.0.1:{gh_port}\n"
            f"tls: {{certFile: '{cert}', keyFile: '{key}'}}\n"
            f"kubernetes: {{kubeconfig: '{tb['GATEHOUSE_KUBECONFIG']}'}}\n"
            f"oidc: {{issuerUrl: '{tb['DEX_ISSUER']}', clientId: gatehouse,"
            f" cliClientId: {tb['DEX_CLI_CLIENT_ID']}, caFile: '{ca}',"
            f" audiences: [gatehouse, {tb['DEX_CLI_CLIENT_ID']}]}}\n"
            "serviceAccounts: {namespaces: [bench]}\n"
            "fallThrough: {enabled: true}\n")
    gh = Proc("gatehouse", [cfg["gatehouse"], "serve", "--config", gh_cfg], work,
              f"https://127.0.0.1:{gh_port}")
    procs.append(gh)
    contenders += [("gatehouse-mapped", gh.url, alice, gh, []),
                   ("gatehouse-fallthrough", gh.url, bob, gh, [])]
    pt_port = free_port()
    pt = Proc("passthrough", [cfg["passthrough"], f"127.0.0.1:{pt_port}", cert, key,
                              tb["KUBE_APISERVER_URL"], ca], work, f"https://127.0.0.1:{pt_port}")
    procs.append(pt)
    contenders.append(("passthrough", pt.url, sa_token, pt, []))
    if cfg.get("kube_oidc_proxy"):
        kop_token = kubectl(tb, "create", "token", "kube-oidc-proxy", "-n", "bench",
                            "--duration=4h").strip()
        kop_kubeconfig = os.path.join(work, "kube-oidc-proxy.kubeconfig")
        with open(kop_kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config",
                       "clusters": [{"name": "c", "cluster": {
                           "server": tb["KUBE_APISERVER_URL"], "certificate-authority": ca}}],
                       "users": [{"name": "u", "user": {"token": kop_token}}],
                       "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                       "current-context": "x"}, f)
        # --token-passthrough sends a TokenReview per request through client-go, whose rate
        # limiter (default 5/s, burst 10) would otherwise be what is measured: raised so that
        # the kube-apiserver, not a client-side limit, sets the pace.
        for name, extra, token in [
                ("kube-oidc-proxy", [], bob),
                ("kube-oidc-proxy-passthrough",
                 ["--token-passthrough", "--kube-client-qps=10000", "--kube-client-burst=10000"],
                 sa_token)]:
            port = free_port()
            p = Proc(name, [cfg["kube_oidc_proxy"], f"--secure-port={port}",
                            "--bind-address=127.0.0.1", f"--tls-cert-file={cert}",
                            f"--tls-private-key-file={key}",
                            f"--kubeconfig={kop_kubeconfig}",
                            f"--oidc-issuer-url={tb['DEX_ISSUER']}",
                            f"--oidc-client-id={tb['DEX_CLI_CLIENT_ID']}",
                            f"--oidc-ca-file={ca}", "--oidc-username-claim=email",
                            "--oidc-username-prefix=oidc:", "--oidc-groups-claim=groups",
                            "--oidc-groups-prefix=oidc:", *extra], work,
                     f"https://127.0.0.1:{port}")
            procs.append(p)
            contenders.append((name, p.url, token, p, []))
    try:
        for name, url, token, _, extra in contenders:
            if extra:
                check_once(url, extra, ca, name, cfg["oha"])
            else:
                wait_ready(url, token, ca, name)
        results = run(cfg, contenders, kube_pid)
    finally:
        for p in procs:
            p.stop()
    machine = {
        "cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "oha": subprocess.run([cfg["oha"], "--version"], capture_output=True,
                              text=True).stdout.strip(),
    }
    out = {"settings": cfg, "machine": machine, "results": results}
    os.makedirs(cfg["out"], exist_ok=True)
    with open(os.path.join(cfg["out"], "results.json"), "w") as f:
        json.dump(out, f, indent=1)
    say(f"raw results: {cfg['out']}/results.json")
    if cfg.get("smoke"):
        # The test run's leak scan reads every gatehouse log kept in target/e2e-logs.
        logs = os.path.join(ROOT, "target/e2e-logs")
        os.makedirs(logs, exist_ok=True)
        shutil.copy(os.path.join(work, "gatehouse.log"), os.path.join(logs, "bench-smoke.log"))
        # In the form scripts/test counts: every cell answered only 200 (else die() above).
        print(f"{len(results)} passed, 0 failed")
    if cfg.get("write_docs"):
        import report  # bench/report.py, beside this file
        report.write(out, ROOT)
    shutil.rmtree(work, ignore_errors=True)


def run(cfg, contenders, kube_pid):
    scenarios = {
        "get": "/api/v1/namespaces/bench/configmaps/one",
        "list": "/api/v1/namespaces/bench/configmaps?labelSelector=bench%3Dlist",
    }
    results = []
    for scenario in cfg["scenarios"]:
        for proto in cfg["protocols"]:
            for c in cfg["concurrency"]:
                for rep in range(cfg["repeats"]):
                    # Rotate the order so no contender always runs first (warm caches, turbo).
                    order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
                    for name, url, token, proc, extra in order:
                        say(f"{scenario} {proto} c={c} repeat {rep + 1}: {name}")
                        cpu0 = proc.cpu() if proc else None
                        kube0 = cpu_seconds(kube_pid)
                        summary = oha(url + scenarios[scenario], token, c, proto == "h2",
                                      cfg["seconds"], cfg["oha"], extra)
                        kube1 = cpu_seconds(kube_pid)
                        cpu1 = proc.cpu() if proc else None
                        codes = summary.get("statusCodeDistribution", {})
                        total = sum(int(v) for v in codes.values())
                        ok = int(codes.get("200", 0))
                        # gatehouse and the floors must answer every request; a peer that
                        # fails under load is recorded with its error rate (and its latency
                        # figures are left out of the goals), not allowed to stop the run.
                        if total == 0 or (ok != total and not name.startswith("kube-oidc-proxy")):
                            die(f"{name} {scenario}: answers {codes} (expected only 200)")
                        if ok != total:
                            say(f"  {name}: {total - ok} of {total} answers were not 200: {codes}")
                        p = summary["latencyPercentiles"]
                        results.append({
                            "scenario": scenario, "protocol": proto, "concurrency": c,
                            "repeat": rep, "contender": name, "requests": total,
                            "errors": total - ok, "codes": codes,
                            "rps": summary["summary"]["requestsPerSec"],
                            "mean_ms": summary["summary"]["average"] * 1000,
                            "p50_ms": p["p50"] * 1000, "p99_ms": p["p99"] * 1000,
                            "p999_ms": p["p99.9"] * 1000,
                            "proxy_cpu_per_1000": None if proc is None
                            else (cpu1 - cpu0) * 1000 / total,
                            "kube_cpu_per_1000": (kube1 - kube0) * 1000 / total,
                            "proxy_rss_kib": proc.rss_kib() if proc else None,
                        })
    return results


if __name__ == "__main__":
    main()
