#!/usr/bin/env python3
"""Watch benchmark: N concurrent watches through gatehouse against N straight at the
kube-apiserver (docs/benchmarks.md, "Watches").

Run it with `bench/watches` (which builds what it needs and raises the descriptor limit). It
reuses proxy.py's helpers: the test bed's env, namespace `bench` with ServiceAccount
`bench/reader` that alice maps to, Dex tokens, gatehouse's process. Then, per repeat and
protocol, `bench-watch watch` (bench/watch) opens the watches on ConfigMap `bench/watched`
through gatehouse (alice's Dex token) and directly (a token of bench/reader), patches the
ConfigMap K times at the kube-apiserver and times every delivery; for gatehouse it reads the
process's RSS and descriptors before, with all watches open, and after they closed. The paths
are interleaved within each repeat, and every gatehouse run is a fresh process. Results: JSON, and docs/benchmarks.md between the
`watch-bench` markers.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

import proxy  # bench/proxy.py, beside this file
from proxy import ROOT, Proc, die, say

BEGIN = "<!-- watch-bench:begin (written by bench/watches; edits here are overwritten) -->"
END = "<!-- watch-bench:end -->"
GOAL_KIB_PER_WATCH = 40


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def gatehouse_config(tb, port, work, extra=""):
    path = os.path.join(work, "gatehouse.yaml")
    ca = tb["TESTBED_CA_FILE"]
    with open(path, "w") as f:
        f.write(
            f"listen: 127.0.0.1:{port}\n"
            f"tls: {{certFile: '{tb['GATEHOUSE_TLS_CERT']}', keyFile: '{tb['GATEHOUSE_TLS_KEY']}'}}\n"
            f"kubernetes: {{kubeconfig: '{tb['GATEHOUSE_KUBECONFIG']}'}}\n"
            f"oidc: {{issuerUrl: '{tb['DEX_ISSUER']}', clientId: gatehouse,"
            f" cliClientId: {tb['DEX_CLI_CLIENT_ID']}, caFile: '{ca}',"
            f" audiences: [gatehouse, {tb['DEX_CLI_CLIENT_ID']}]}}\n"
            f"{extra}")
    return path


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_tool(cfg, tb, url, token, proto, pid):
    pki = os.path.dirname(tb["KUBECONFIG_ADMIN"])
    cmd = [cfg["tool"], "watch", "--url", url, "--ca", tb["TESTBED_CA_FILE"],
           "--admin-url", tb["KUBE_APISERVER_URL"],
           "--admin-cert", os.path.join(pki, "admin.crt"),
           "--admin-key", os.path.join(pki, "admin.key"),
           "--watches", str(cfg["watches"]), "--protocol", proto,
           "--streams-per-connection", str(cfg["streams_per_connection"]),
           "--events", str(cfg["events"]), "--settle-secs", str(cfg["settle"])]
    if pid:
        cmd += ["--pid", str(pid)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "BENCH_TOKEN": token})
    if r.returncode != 0:
        die(f"bench-watch failed: {r.stderr.strip()[:800]}")
    return json.loads(r.stdout)


def summarize(raw, path, proto, rep):
    lat = raw["latencies_ms"]
    row = {"path": path, "protocol": proto, "repeat": rep, "watches": raw["watches"],
           "opened": raw["opened"], "open_errors": raw["open_errors"],
           "retries_429": raw.get("retries_429"),
           "open_error_sample": raw.get("open_error_sample"),
           "connections": raw["connections"], "open_seconds": raw["open_seconds"],
           "missed": raw["missed"], "deliveries": len(lat),
           "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": lat[-1] if lat else None}
    b, o, a = raw.get("before"), raw.get("open"), raw.get("after")
    if b and o and a and b.get("rss_kib") is not None:
        n = max(raw["opened"], 1)
        row.update({
            "rss_before_kib": b["rss_kib"], "rss_open_kib": o["rss_kib"], "rss_after_kib": a["rss_kib"],
            "fds_before": b["fds"], "fds_open": o["fds"], "fds_after": a["fds"],
            "kib_per_watch": (o["rss_kib"] - b["rss_kib"]) / n,
            "fds_per_watch": (o["fds"] - b["fds"]) / n,
        })
    return row


def main():
    cfg = json.loads(os.environ["BENCH_SETTINGS"])
    nofile = raise_nofile()
    tb = proxy.testbed_env()
    work = tempfile.mkdtemp(prefix="gatehouse-watch-bench-")
    proxy.prepare_cluster(tb, 0)
    proxy.kubectl(tb, "apply", "--server-side", "-f", "-", input_text=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "watched", "namespace": "bench"}, "data": {"seq": "0"}}))
    say("getting tokens (Dex password grant for alice; a token of bench/reader)")
    alice = proxy.dex_token(tb, tb["ALICE_EMAIL"], tb["ALICE_PASSWORD"])
    sa_token = proxy.kubectl(tb, "create", "token", "reader", "-n", "bench", "--duration=2h").strip()
    port = proxy.free_port()
    gh_cfg = gatehouse_config(tb, port, work, "serviceAccounts: {namespaces: [bench]}\n")
    url = f"https://127.0.0.1:{port}"
    results, logs = [], []
    try:
        for rep in range(cfg["repeats"]):
            for proto in cfg["protocols"]:
                order = ["gatehouse", "direct"] if rep % 2 == 0 else ["direct", "gatehouse"]
                for name in order:
                    say(f"repeat {rep + 1}: {cfg['watches']} watches, {proto}, {name}")
                    if name == "direct":
                        raw = run_tool(cfg, tb, tb["KUBE_APISERVER_URL"], sa_token, proto, None)
                    else:
                        # A fresh gatehouse per run: its memory is measured from its own
                        # baseline, not from what an earlier run left in the allocator.
                        gh = Proc("gatehouse", [cfg["gatehouse"], "serve", "--config", gh_cfg],
                                  work, url)
                        try:
                            proxy.wait_ready(url, alice, tb["TESTBED_CA_FILE"], "gatehouse")
                            raw = run_tool(cfg, tb, url, alice, proto, gh.p.pid)
                        finally:
                            gh.stop()
                            logs.append(open(os.path.join(work, "gatehouse.log")).read())
                    row = summarize(raw, name, proto, rep)
                    say("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in row.items() if k not in ("path", "protocol", "repeat")))
                    row["raw"] = raw
                    results.append(row)
    finally:
        proxy.kubectl(tb, "delete", "configmap", "watched", "-n", "bench", "--ignore-not-found")
    gh_log = "\n".join(logs)
    machine = {
        "cpus": os.cpu_count(), "kernel": os.uname().release,
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "kube_apiserver": tb["KUBECTL"].rsplit("-", 1)[-1], "nofile": nofile,
    }
    out = {"settings": cfg, "machine": machine, "results": results}
    os.makedirs(cfg["out"], exist_ok=True)
    with open(os.path.join(cfg["out"], "results.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(cfg["out"], "gatehouse.log"), "w") as f:
        f.write(gh_log)
    say(f"raw results: {cfg['out']}/results.json")
    if cfg.get("write_docs"):
        write_docs(out)


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def cell(rows, key, digits=2):
    m, lo, hi = med(rows, key)
    if m is None:
        return "–"
    if len(rows) == 1 or lo == hi:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def added(results, proto, key):
    by = {}
    for r in results:
        if r["protocol"] == proto and r.get(key) is not None:
            by.setdefault(r["repeat"], {})[r["path"]] = r[key]
    diffs = [v["gatehouse"] - v["direct"] for v in by.values() if "gatehouse" in v and "direct" in v]
    return (statistics.median(diffs), min(diffs), max(diffs)) if diffs else (None, None, None)


def write_docs(out):
    results, m, s = out["results"], out["machine"], out["settings"]
    lines = [BEGIN, "",
             f"Commit `{m['commit']}`, {m['cpus']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
             f"kube-apiserver {m['kube_apiserver']} (test bed), descriptor limit {m['nofile']}; "
             f"`{s['command']}`: {s['repeats']} repeats, {s['watches']} watches per run, "
             f"{s['events']} patches per run, HTTP/2 with {s['streams_per_connection']} streams "
             "per connection (HTTP/1.1: one connection per watch); gatehouse and direct "
             "interleaved. Cells are medians over the repeats with (min–max); latency "
             "percentiles are over every delivery of a run (watches × patches).", "",
             "| protocol | path | opened | open s | p50 ms | p99 ms | max ms | missed |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for proto in s["protocols"]:
        for path in ("direct", "gatehouse"):
            rows = [r for r in results if r["protocol"] == proto and r["path"] == path]
            if rows:
                lines.append(f"| {proto} | {path} | {cell(rows, 'opened', 0)} | {cell(rows, 'open_seconds')} | "
                             f"{cell(rows, 'p50_ms')} | {cell(rows, 'p99_ms')} | {cell(rows, 'max_ms')} | "
                             f"{cell(rows, 'missed', 0)} |")
    lines += ["", "Added by gatehouse (gatehouse minus direct within each repeat, then the median):", "",
              "| protocol | added p50 ms | added p99 ms | added max ms |", "|---|---:|---:|---:|"]
    for proto in s["protocols"]:
        vals = [added(results, proto, k) for k in ("p50_ms", "p99_ms", "max_ms")]
        lines.append(f"| {proto} | " + " | ".join(
            "–" if v[0] is None else f"{v[0]:.2f} ({v[1]:.2f}–{v[2]:.2f})" for v in vals) + " |")
    lines += ["", "gatehouse's process (RSS from `/proc/PID/status`, descriptors from `/proc/PID/fd`):", "",
              "| protocol | RSS before MiB | RSS open MiB | KiB per open watch | fds per watch | RSS after close MiB | fds before → open → after | goal ≤ 40 KiB |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for proto in s["protocols"]:
        rows = [r for r in results if r["protocol"] == proto and r["path"] == "gatehouse" and "kib_per_watch" in r]
        if not rows:
            continue
        for r in rows:
            r["rss_before_mib"] = r["rss_before_kib"] / 1024
            r["rss_open_mib"] = r["rss_open_kib"] / 1024
            r["rss_after_mib"] = r["rss_after_kib"] / 1024
        per = med(rows, "kib_per_watch")[0]
        fds = " / ".join(f"{r['fds_before']} → {r['fds_open']} → {r['fds_after']}" for r in rows)
        lines.append(f"| {proto} | {cell(rows, 'rss_before_mib', 1)} | {cell(rows, 'rss_open_mib', 1)} | "
                     f"{cell(rows, 'kib_per_watch', 1)} | {cell(rows, 'fds_per_watch', 2)} | "
                     f"{cell(rows, 'rss_after_mib', 1)} | {fds} | "
                     f"{'met' if per is not None and per <= GOAL_KIB_PER_WATCH else '**missed**'} |")
    lines += ["", END]
    docs = os.path.join(ROOT, "docs/benchmarks.md")
    text = open(docs).read()
    section = "\n".join(lines)
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip() + "\n\n## Watches: measured\n\n" + section + "\n"
    with open(docs, "w") as f:
        f.write(text)
    say("wrote docs/benchmarks.md (watch-bench section)")


if __name__ == "__main__":
    main()
