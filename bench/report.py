"""The proxy benchmarks' report: medians with their spread, ratios within each repeat, the
issue's goals met or missed, a table into docs/benchmarks.md (between the `proxy-bench`
markers) and plots (matplotlib, SVG) into docs/benchmarks/. Used by bench/proxy.py, and on its
own to redo the report from a results file: `python3 bench/report.py results.json`."""

import json
import os
import statistics
import sys
from collections import defaultdict

BEGIN = "<!-- proxy-bench:begin (written by bench/run; edits here are overwritten) -->"
END = "<!-- proxy-bench:end -->"


def median_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def cell(values, digits=2):
    m, lo, hi = median_spread(values)
    if m is None:
        return "–"
    if len(values) == 1:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(lo, digits)}–{fmt(hi, digits)})"


def grouped(results):
    by = defaultdict(list)
    for r in results:
        by[(r["scenario"], r["protocol"], r["concurrency"], r["contender"])].append(r)
    return by


def ratio_per_repeat(results, key, num, den):
    """Median over repeats of num/den for `key`, each ratio within one repeat."""
    by = defaultdict(dict)
    for r in results:
        by[(r["scenario"], r["protocol"], r["concurrency"], r["repeat"])][r["contender"]] = r
    out = defaultdict(list)
    for (s, p, c, _), row in by.items():
        if num in row and den in row and row[den][key]:
            out[(s, p, c)].append(row[num][key] / row[den][key])
    return {k: statistics.median(v) for k, v in out.items()}


def added_per_repeat(results, key, num, base):
    by = defaultdict(dict)
    for r in results:
        by[(r["scenario"], r["protocol"], r["concurrency"], r["repeat"])][r["contender"]] = r
    out = defaultdict(list)
    for (s, p, c, _), row in by.items():
        if num in row and base in row:
            out[(s, p, c)].append(row[num][key] - row[base][key])
    return {k: statistics.median(v) for k, v in out.items()}


def failed_cells(results, name):
    """(scenario, protocol, concurrency) where `name` answered anything but 200."""
    return {(r["scenario"], r["protocol"], r["concurrency"]) for r in results
            if r["contender"] == name and r.get("errors")}


def goals(results):
    lines = []
    contenders = {r["contender"] for r in results}

    def verdict(ok):
        return "met" if ok else "**missed**"

    # Each goal also shows what the bare pass-through (a proxy that does no authentication at
    # all) reaches on the same measure: a goal the floor itself misses is out of any proxy's
    # reach on this machine.
    floor = "passthrough"
    for gh in ["gatehouse-mapped", "gatehouse-fallthrough"]:
        if gh not in contenders:
            continue
        who = gh.split("-", 1)[1]
        if "kube-oidc-proxy" in contenders:
            pt = ratio_per_repeat(results, "proxy_cpu_per_1000", floor, "kube-oidc-proxy")
            for k, v in sorted(ratio_per_repeat(results, "proxy_cpu_per_1000", gh, "kube-oidc-proxy").items()):
                lines.append(f"| CPU per request ≤ 0.25 × kube-oidc-proxy's | {who}, {k[0]} {k[1]} c={k[2]} | {v:.2f}× | {fmt(pt.get(k))}× | {verdict(v <= 0.25)} |")
        for k, v in sorted(ratio_per_repeat(results, "proxy_cpu_per_1000", gh, floor).items()):
            lines.append(f"| CPU per request ≤ 1.5 × bare pass-through's | {who}, {k[0]} {k[1]} c={k[2]} | {v:.2f}× | 1× | {verdict(v <= 1.5)} |")
        for key, label in [("mean_ms", "mean"), ("p99_ms", "p99")]:
            pt = added_per_repeat(results, key, floor, "direct")
            for k, v in sorted(added_per_repeat(results, key, gh, "direct").items()):
                if k[2] == 1:
                    lines.append(f"| added {label} latency at c=1 ≤ 0.3 ms | {who}, {k[0]} {k[1]} | {v:.3f} ms | {fmt(pt.get(k), 3)} ms | {verdict(v <= 0.3)} |")
        if "kube-oidc-proxy" in contenders:
            ours = added_per_repeat(results, "p99_ms", gh, "direct")
            floors = added_per_repeat(results, "p99_ms", floor, "direct")
            theirs = added_per_repeat(results, "p99_ms", "kube-oidc-proxy", "direct")
            broken = failed_cells(results, "kube-oidc-proxy")
            for k in sorted(ours):
                where = f"{who}, {k[0]} {k[1]} c={k[2]}"
                fl = f"{fmt(floors.get(k))} ms"
                if k in broken:
                    lines.append(f"| added p99 ≤ 0.5 × kube-oidc-proxy's | {where} | – | {fl} | not comparable: kube-oidc-proxy failed requests |")
                elif k in theirs and theirs[k] > 0:
                    r = ours[k] / theirs[k]
                    lines.append(f"| added p99 ≤ 0.5 × kube-oidc-proxy's | {where} | {ours[k]:.2f} vs {theirs[k]:.2f} ms ({r:.2f}×) | {fl} | {verdict(r <= 0.5)} |")
                elif k in theirs:
                    lines.append(f"| added p99 ≤ 0.5 × kube-oidc-proxy's | {where} | {ours[k]:.2f} vs {theirs[k]:.2f} ms | {fl} | {verdict(ours[k] <= 0)} |")
    return lines


def impersonation(results):
    """The kube-apiserver's cost of impersonation, measured without a proxy."""
    rows = ["| scenario | proto | c | impersonating | kube-apiserver CPU s/1000 over direct | added mean ms over direct |",
            "|---|---|---:|---|---:|---:|"]
    names = [("direct-impersonated", "user + 3 extras (what gatehouse sends)"),
             ("direct-impersonated-user-only", "user only")]
    cpu = {n: added_per_repeat(results, "kube_cpu_per_1000", n, "direct") for n, _ in names}
    lat = {n: added_per_repeat(results, "mean_ms", n, "direct") for n, _ in names}
    for k in sorted(set().union(*[set(v) for v in cpu.values()])):
        for n, label in names:
            if k in cpu[n]:
                rows.append(f"| {k[0]} | {k[1]} | {k[2]} | {label} | {cpu[n][k]:+.3f} | {lat[n].get(k, 0):+.3f} |")
    return rows if len(rows) > 2 else []


def errors(runs):
    bad = sum(r.get("errors", 0) for r in runs)
    total = sum(r["requests"] for r in runs)
    return "0" if bad == 0 else f"{bad} of {total} ({100 * bad / total:.1f} %)"


def table(results):
    by = grouped(results)
    order = ["direct", "direct-impersonated", "direct-impersonated-user-only", "passthrough",
             "gatehouse-mapped", "gatehouse-fallthrough", "kube-oidc-proxy",
             "kube-oidc-proxy-passthrough"]
    rows = ["| scenario | proto | c | contender | req/s | mean ms | p50 ms | p99 ms | p99.9 ms | proxy CPU s/1000 | kube-apiserver CPU s/1000 | not 200 |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    keys = sorted({k[:3] for k in by}, key=lambda k: (k[0], k[1], k[2]))
    for s, p, c in keys:
        for name in order:
            runs = by.get((s, p, c, name))
            if not runs:
                continue
            col = lambda key, d=2: cell([r[key] for r in runs], d)  # noqa: E731
            rows.append(f"| {s} | {p} | {c} | {name} | {col('rps', 0)} | {col('mean_ms', 3)} | {col('p50_ms', 3)} | {col('p99_ms', 3)} | {col('p999_ms', 3)} | {col('proxy_cpu_per_1000', 3)} | {col('kube_cpu_per_1000', 3)} | {errors(runs)} |")
    return rows


def plots(results, folder):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    by = grouped(results)
    names = []
    for scenario in sorted({r["scenario"] for r in results}):
        for proto in sorted({r["protocol"] for r in results}):
            for key, label in [("p99_ms", "p99 latency (ms)"),
                               ("proxy_cpu_per_1000", "proxy CPU seconds per 1,000 requests")]:
                fig, ax = plt.subplots(figsize=(7, 4))
                for name in sorted({r["contender"] for r in results}):
                    xs, ys, lo, hi = [], [], [], []
                    for c in sorted({r["concurrency"] for r in results}):
                        m, a, b = median_spread([r[key] for r in by.get((scenario, proto, c, name), [])])
                        if m is None:
                            continue
                        xs.append(c)
                        ys.append(m)
                        lo.append(m - a)
                        hi.append(b - m)
                    if xs:
                        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=name)
                ax.set_xscale("log", base=2)
                ax.set_xlabel("concurrency")
                ax.set_ylabel(label)
                ax.set_title(f"{scenario}, {proto}")
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=7)
                name = f"proxy-{scenario}-{proto}-{key.split('_')[0]}.svg"
                fig.tight_layout()
                fig.savefig(os.path.join(folder, name))
                plt.close(fig)
                names.append(name)
    return names


def write(out, root):
    results = out["results"]
    docs = os.path.join(root, "docs/benchmarks.md")
    figs = plots(results, os.path.join(root, "docs/benchmarks"))
    m, s = out["machine"], out["settings"]
    section = [BEGIN, "",
               f"Commit `{m['commit']}`, {m['cpus']} CPUs ({m['cpu']}), Linux {m['kernel']}, {m['oha']};",
               f"`{s['command']}`: {s['repeats']} repeat(s) of {s['seconds']} s per cell, contenders interleaved.",
               "Cells are medians over the repeats with (min–max).", ""]
    section += table(results)
    section += ["", "Goals (ratios and differences within each repeat, then the median):", "",
                "| goal | where | gatehouse | bare pass-through | |", "|---|---|---:|---:|---|"]
    section += goals(results) or ["| – | no goal could be computed from this run | | | |"]
    imp = impersonation(results)
    if imp:
        section += ["", "The kube-apiserver's own cost of impersonation (no proxy: gatehouse's "
                    "client certificate with the impersonation headers, against `direct`, within "
                    "each repeat):", ""] + imp
    section += [""] + [f"![{f}](benchmarks/{f})" for f in figs] + ["", END]
    text = open(docs).read()
    if BEGIN in text and END in text:
        a = text.index(BEGIN)
        b = text.index(END) + len(END)
        text = text[:a] + "\n".join(section) + text[b:]
    else:
        text = text.rstrip() + "\n\n## The proxy: measured\n\n" + "\n".join(section) + "\n"
    with open(docs, "w") as f:
        f.write(text)
    print(f"[bench] wrote docs/benchmarks.md and {len(figs)} plots", file=sys.stderr)


if __name__ == "__main__":
    data = json.load(open(sys.argv[1]))
    write(data, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
