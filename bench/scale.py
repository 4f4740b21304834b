#!/usr/bin/env python3
"""Scale benchmark: gatehouse's start-up time and resident memory with 1,000, 10,000 and
100,000 ServiceAccounts in the cluster, every namespace watched (docs/benchmarks.md, "Scale").

Run it with `bench/scale`. Per size, `bench-watch create-sas` (bench/watch) tops the cluster up
to that many ServiceAccounts in namespaces `scale-000`..`scale-099` (a tenth of them with
gatehouse.dev/claim.* annotations); then, per repeat, a release gatehouse starts with
`serviceAccounts.allNamespaces` and is timed from its start to `/healthz` 200 (listening) and to
`/readyz` 200 (which includes `serviceaccount-watch-synced`: the index holds every
ServiceAccount), and its RSS is read after it settled. At the end the namespaces and their
ServiceAccounts are deleted (`bench-watch delete-namespaces`). Results: JSON,
docs/benchmarks.md between the `scale-bench` markers, docs/benchmarks/scale.svg.
"""

import json
import os
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.request

import proxy  # bench/proxy.py, beside this file
from proxy import ROOT, Proc, die, say
from watches import gatehouse_config, raise_nofile

BEGIN = "<!-- scale-bench:begin (written by bench/scale; edits here are overwritten) -->"
END = "<!-- scale-bench:end -->"
GOAL_MIB_AT_10K = 64


def tool(cfg, tb, *args):
    pki = os.path.dirname(tb["KUBECONFIG_ADMIN"])
    cmd = [cfg["tool"], *args, "--url", tb["KUBE_APISERVER_URL"], "--ca", tb["TESTBED_CA_FILE"],
           "--cert", os.path.join(pki, "admin.crt"), "--key", os.path.join(pki, "admin.key")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"bench-watch {args[0]} failed: {r.stderr.strip()[:800]}")
    return json.loads(r.stdout) if r.stdout.strip() else None


def count_sas(tb):
    out = proxy.kubectl(tb, "get", "serviceaccounts", "-A", "--no-headers", "-o",
                        "custom-columns=N:.metadata.name", "--chunk-size=5000")
    return len(out.split())


def poll(url, ctx, deadline):
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic()
        except Exception:  # noqa: BLE001 - not yet
            pass
        time.sleep(0.01)
    return None


def start_once(cfg, tb, work):
    port = proxy.free_port()
    path = gatehouse_config(tb, port, work, "serviceAccounts: {allNamespaces: true}\n")
    ctx = ssl.create_default_context(cafile=tb["TESTBED_CA_FILE"])
    url = f"https://127.0.0.1:{port}"
    t0 = time.monotonic()
    gh = Proc("gatehouse", [cfg["gatehouse"], "serve", "--config", path], work, url)
    try:
        deadline = time.time() + 300
        healthz = poll(url + "/healthz", ctx, deadline)
        readyz = poll(url + "/readyz", ctx, deadline)
        if readyz is None:
            die(f"gatehouse was not ready within 300 s (log: {work}/gatehouse.log)")
        rss_ready = gh.rss_kib()
        time.sleep(cfg["settle"])
        rss = gh.rss_kib()
        with open(f"/proc/{gh.p.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    finally:
        gh.stop()
    return {"healthz_s": healthz - t0 if healthz else None, "readyz_s": readyz - t0,
            "rss_ready_kib": rss_ready, "rss_kib": rss, "rss_peak_kib": hwm}


def main():
    cfg = json.loads(os.environ["BENCH_SETTINGS"])
    raise_nofile()
    tb = proxy.testbed_env()
    work = tempfile.mkdtemp(prefix="gatehouse-scale-bench-")
    others = count_sas(tb)
    say(f"{others} ServiceAccounts in the cluster before (outside scale-*)")
    results, created = [], []
    have = 0
    try:
        for size in cfg["sizes"]:
            if size > have:
                say(f"creating ServiceAccounts {have}..{size}")
                c = tool(cfg, tb, "create-sas", "--count", str(size - have), "--start", str(have),
                         "--namespaces", str(cfg["namespaces"]),
                         "--annotated-percent", str(cfg["annotated_percent"]))
                created.append({"from": have, "to": size, **c})
                say(f"  {c['created']} in {c['seconds']:.1f} s ({c['per_second']:.0f}/s)")
                have = size
            for rep in range(cfg["repeats"]):
                r = start_once(cfg, tb, work)
                r.update({"service_accounts": size, "total_in_cluster": size + others, "repeat": rep})
                say(f"  {size}: ready in {r['readyz_s']:.2f} s, RSS {r['rss_kib'] / 1024:.1f} MiB "
                    f"(peak {r['rss_peak_kib'] / 1024:.1f} MiB)")
                results.append(r)
    finally:
        say("deleting namespaces scale-* and their ServiceAccounts")
        tool(cfg, tb, "delete-namespaces", "--namespaces", str(cfg["namespaces"]))
    machine = {
        "cpus": os.cpu_count(), "kernel": os.uname().release,
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "kube_apiserver": tb["KUBECTL"].rsplit("-", 1)[-1], "others": others,
    }
    out = {"settings": cfg, "machine": machine, "created": created, "results": results}
    os.makedirs(cfg["out"], exist_ok=True)
    with open(os.path.join(cfg["out"], "results.json"), "w") as f:
        json.dump(out, f, indent=1)
    say(f"raw results: {cfg['out']}/results.json")
    if cfg.get("write_docs"):
        write_docs(out)


def stats(rows, key, scale=1.0):
    vals = [r[key] * scale for r in rows if r.get(key) is not None]
    return statistics.median(vals), min(vals), max(vals)


def cell(rows, key, scale=1.0, digits=2):
    m, lo, hi = stats(rows, key, scale)
    return f"{m:.{digits}f}" if len(rows) == 1 else f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def plot(results, sizes, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, scale, label in [(a, "rss_kib", 1 / 1024, "RSS after ready (MiB)"),
                                  (b, "readyz_s", 1.0, "start to /readyz 200 (s)")]:
        xs, ys, lo, hi = [], [], [], []
        for n in sizes:
            rows = [r for r in results if r["service_accounts"] == n]
            m, mn, mx = stats(rows, key, scale)
            xs.append(n)
            ys.append(m)
            lo.append(m - mn)
            hi.append(mx - m)
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3)
        if key == "rss_kib":
            ax.axhline(GOAL_MIB_AT_10K, color="grey", linestyle="--", linewidth=1,
                       label=f"goal at 10,000: {GOAL_MIB_AT_10K} MiB")
            ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("ServiceAccounts in the cluster (scale-*)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    fig.suptitle("gatehouse, serviceAccounts.allNamespaces")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_docs(out):
    results, m, s = out["results"], out["machine"], out["settings"]
    sizes = sorted({r["service_accounts"] for r in results})
    plot(results, sizes, os.path.join(ROOT, "docs/benchmarks/scale.svg"))
    lines = [BEGIN, "",
             f"Commit `{m['commit']}`, {m['cpus']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
             f"kube-apiserver {m['kube_apiserver']} (test bed, etcd on the same machine); "
             f"`{s['command']}`: {s['repeats']} starts per size, ServiceAccounts in "
             f"{s['namespaces']} namespaces, {s['annotated_percent']} % annotated, plus "
             f"{m['others']} others already in the cluster. Cells are medians over the starts "
             "with (min–max).", "",
             "| ServiceAccounts | start → /healthz s | start → /readyz s (index synced) | RSS at ready MiB | RSS settled MiB | peak RSS MiB |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        rows = [r for r in results if r["service_accounts"] == n]
        lines.append(f"| {n:,} | {cell(rows, 'healthz_s')} | {cell(rows, 'readyz_s')} | "
                     f"{cell(rows, 'rss_ready_kib', 1 / 1024, 1)} | {cell(rows, 'rss_kib', 1 / 1024, 1)} | "
                     f"{cell(rows, 'rss_peak_kib', 1 / 1024, 1)} |")
    at10k = [r for r in results if r["service_accounts"] == 10000]
    if at10k:
        v = stats(at10k, "rss_kib", 1 / 1024)[0]
        lines += ["", f"Goal: RSS ≤ {GOAL_MIB_AT_10K} MiB with 10,000 ServiceAccounts watched: "
                  f"{v:.1f} MiB, {'met' if v <= GOAL_MIB_AT_10K else '**missed**'}."]
    lines += ["", "Creating them (parallel POSTs over HTTP/2, admin client certificate): " + ", ".join(
        f"{c['from']:,}→{c['to']:,} in {c['seconds']:.0f} s ({c['per_second']:.0f}/s)" for c in out["created"]),
        "", "![RSS and start-up time against ServiceAccounts](benchmarks/scale.svg)", "", END]
    docs = os.path.join(ROOT, "docs/benchmarks.md")
    text = open(docs).read()
    section = "\n".join(lines)
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip() + "\n\n## Scale: measured\n\n" + section + "\n"
    with open(docs, "w") as f:
        f.write(text)
    say("wrote docs/benchmarks.md (scale-bench section) and docs/benchmarks/scale.svg")


if __name__ == "__main__":
    main()
