"""The micro benchmarks' report (bench/micro): reads criterion's results
(`<criterion home>/**/new/estimates.json` and the `benchmark.json` beside each), and writes the
table, the issue's goals met or missed with their ratios, the machine, the commit and the
command into docs/benchmarks.md (between the `micro-bench` markers, in the section "The
proxy's hot paths (criterion)"), and the plot of index lookup time against the number of
ServiceAccounts into docs/benchmarks/index-lookup.svg.

    python3 bench/micro_report.py --criterion DIR [--since UNIX_TIME] [--command TEXT] [--no-docs]

Every figure is criterion's median point estimate with its 95% confidence interval (from the
bootstrap), in the time of one call."""

import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- micro-bench:begin (written by bench/micro; edits here are overwritten) -->"
END = "<!-- micro-bench:end -->"
SECTION = "## The proxy's hot paths (criterion)"
BEFORE = "## Reproducing"
PLOT = "index-lookup.svg"

# (criterion id, what it measures), in the table's order.
ROWS = [
    ("decision_cached/one_candidate",
     "cached decision, one candidate ServiceAccount: token -> cached principal -> plan"),
    ("decision_cached/two_candidates_reviewed",
     "cached decision, two candidates decided by cached reviews"),
    ("authn/cache_hit", "the authentication half alone: SHA-256 of the token, cache probe"),
    ("verify/uncached/rs256", "RS256 ID token, uncached: gatehouse-oidc's verification"),
    ("verify/signature/rs256", "RS256: the signature check alone (jsonwebtoken, aws-lc-rs)"),
    ("verify/uncached/es256", "ES256 ID token, uncached: gatehouse-oidc's verification"),
    ("verify/signature/es256", "ES256: the signature check alone (jsonwebtoken, aws-lc-rs)"),
    ("index_lookup/match_one/1000", "index lookup, 1,000 ServiceAccounts, claims match one"),
    ("index_lookup/match_none/1000", "index lookup, 1,000 ServiceAccounts, claims match none"),
    ("index_lookup/match_one/10000", "index lookup, 10,000 ServiceAccounts, match one"),
    ("index_lookup/match_none/10000", "index lookup, 10,000 ServiceAccounts, match none"),
    ("index_lookup/match_one/100000", "index lookup, 100,000 ServiceAccounts, match one"),
    ("index_lookup/match_none/100000", "index lookup, 100,000 ServiceAccounts, match none"),
    ("review_cache/hit", "SubjectAccessReview cache hit: two candidates, two cached answers"),
    ("session_cookie/seal", "session cookie sealed (JSON, AES-256-GCM, base64, Set-Cookie)"),
    ("session_cookie/open", "session cookie opened from a Cookie header with other cookies"),
]

US = 1000.0  # ns


def load(home, since):
    """Criterion's results by full id: median point estimate and 95% interval, in ns."""
    out = {}
    for folder, _dirs, files in os.walk(home):
        if os.path.basename(folder) != "new" or "estimates.json" not in files:
            continue
        est_path = os.path.join(folder, "estimates.json")
        if since and os.path.getmtime(est_path) < since:
            continue
        with open(os.path.join(folder, "benchmark.json")) as f:
            bench = json.load(f)
        with open(est_path) as f:
            median = json.load(f)["median"]
        ci = median["confidence_interval"]
        out[bench["full_id"]] = {
            "median": median["point_estimate"],
            "lower": ci["lower_bound"],
            "upper": ci["upper_bound"],
            "level": ci["confidence_level"],
        }
    return out


def fmt_time(ns):
    if ns < 1000:
        return f"{ns:.0f} ns"
    if ns < 10_000:
        return f"{ns / US:.2f} µs"
    if ns < 1_000_000:
        return f"{ns / US:.1f} µs"
    return f"{ns / 1e6:.2f} ms"


def ratio_range(num, den):
    """The ratio of the medians, and its range from the two intervals (widest combination)."""
    return (num["median"] / den["median"], num["lower"] / den["upper"],
            num["upper"] / den["lower"])


def goals(r):
    """Rows: goal, what, measured, verdict."""
    rows = []

    def limit(goal, bench_id, what, bound_ns):
        e = r.get(bench_id)
        if e is None:
            rows.append((goal, what, "not measured", "–"))
            return
        ratio = e["median"] / bound_ns
        verdict = "**met**" if e["median"] <= bound_ns else "**missed**"
        rows.append((goal, what,
                     f"{fmt_time(e['median'])} ({fmt_time(e['lower'])}–{fmt_time(e['upper'])})",
                     f"{verdict}: {ratio:.2f} of the limit"))

    limit("cached decision ≤ 2 µs", "decision_cached/one_candidate", "one candidate", 2 * US)
    limit("cached decision ≤ 2 µs", "decision_cached/two_candidates_reviewed",
          "two candidates, cached reviews", 2 * US)
    limit("index lookup ≤ 5 µs at 100,000", "index_lookup/match_one/100000", "claims match one",
          5 * US)
    limit("index lookup ≤ 5 µs at 100,000", "index_lookup/match_none/100000",
          "claims match none", 5 * US)
    for alg in ("rs256", "es256"):
        goal = "uncached verification ≤ 1.3x the signature check"
        num, den = r.get(f"verify/uncached/{alg}"), r.get(f"verify/signature/{alg}")
        if num is None or den is None:
            rows.append((goal, alg.upper(), "not measured", "–"))
            continue
        ratio, lo, hi = ratio_range(num, den)
        verdict = "**met**" if ratio <= 1.3 else "**missed**"
        rows.append((goal, alg.upper(),
                     f"{fmt_time(num['median'])} / {fmt_time(den['median'])}",
                     f"{verdict}: {ratio:.2f}x ({lo:.2f}–{hi:.2f}x)"))
    return rows


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
        cpu = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")),
                   cpu)
        if any(l.startswith("flags") and " hypervisor" in l for l in info):
            cpu += ", virtual machine"
    except OSError:
        pass

    def run(*cmd):
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    commit = run("git", "rev-parse", "--short", "HEAD")
    if run("git", "status", "--porcelain", "--untracked-files=no", "--", "crates",
           "Cargo.toml", "Cargo.lock"):
        commit += " (with uncommitted changes)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "rustc": run("rustc", "--version"),
        "commit": commit,
    }


def table(r):
    lines = ["| benchmark | what | median | 95% interval |", "|---|---|---:|---:|"]
    for bench_id, what in ROWS:
        e = r.get(bench_id)
        if e is None:
            lines.append(f"| `{bench_id}` | {what} | not measured | |")
            continue
        lines.append(f"| `{bench_id}` | {what} | {fmt_time(e['median'])} | "
                     f"{fmt_time(e['lower'])}–{fmt_time(e['upper'])} |")
    return lines


def plot(r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams["svg.hashsalt"] = "gatehouse-micro-bench"
    sizes = [1000, 10000, 100000]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, label, marker in (("match_one", "claims match one ServiceAccount", "o"),
                               ("match_none", "claims match none", "s")):
        points = [(n, r.get(f"index_lookup/{key}/{n}")) for n in sizes]
        points = [(n, e) for n, e in points if e is not None]
        if not points:
            continue
        xs = [n for n, _ in points]
        ys = [e["median"] for _, e in points]
        err = [[e["median"] - e["lower"] for _, e in points],
               [e["upper"] - e["median"] for _, e in points]]
        ax.errorbar(xs, ys, yerr=err, marker=marker, capsize=3, label=label)
    ax.axhline(5000, color="grey", linestyle="--", linewidth=1, label="goal: 5 µs at 100,000")
    ax.set_xscale("log")
    ax.set_xticks(sizes, ["1,000", "10,000", "100,000"])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("ServiceAccounts in the index")
    ax.set_ylabel("lookup time, ns (median, 95% interval)")
    ax.set_title("ServiceAccountIndex::lookup_fresh")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def section(r, m, command, load_avg):
    lines = [BEGIN, "",
             f"Commit `{m['commit']}`, {m['rustc']}, the `bench` profile (optimised, as "
             f"`cargo bench` builds it); {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}; "
             f"load average {load_avg} when the run started.",
             f"Command: `{command}`. Each figure is criterion's median time of one call with "
             "its 95% confidence interval.", ""]
    lines += table(r)
    lines += ["", "Goals (issue 13):", "", "| goal | case | measured | |", "|---|---|---:|---|"]
    lines += [f"| {g} | {w} | {m_} | {v} |" for g, w, m_, v in goals(r)]
    lines += ["", f"![Index lookup time against the number of ServiceAccounts](benchmarks/{PLOT})",
              "", END]
    return "\n".join(lines)


def write_docs(text):
    docs = os.path.join(ROOT, "docs/benchmarks.md")
    with open(docs) as f:
        current = f.read()
    if BEGIN in current and END in current:
        a = current.index(BEGIN)
        b = current.index(END) + len(END)
        current = current[:a] + text + current[b:]
    elif BEFORE in current:
        a = current.index(BEFORE)
        current = current[:a] + SECTION + "\n\n" + text + "\n\n" + current[a:]
    else:
        current = current.rstrip() + "\n\n" + SECTION + "\n\n" + text + "\n"
    with open(docs, "w") as f:
        f.write(current)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--criterion", required=True, help="criterion's results folder")
    p.add_argument("--since", type=float, default=0,
                   help="ignore results older than this (unix time): another run's")
    p.add_argument("--command", default="bench/micro")
    p.add_argument("--load", default="unknown", help="the load average when the run started")
    p.add_argument("--no-docs", action="store_true", help="print the report only")
    a = p.parse_args()
    r = load(a.criterion, a.since)
    if not r:
        print(f"[micro] error: no criterion results in {a.criterion}", file=sys.stderr)
        return 1
    text = section(r, machine(), a.command, a.load)
    print(text)
    missing = [b for b, _ in ROWS if b not in r]
    if missing:
        print(f"[micro] not measured in this run: {', '.join(missing)}", file=sys.stderr)
    if not a.no_docs:
        write_docs(text)
        os.makedirs(os.path.join(ROOT, "docs/benchmarks"), exist_ok=True)
        plot(r, os.path.join(ROOT, "docs/benchmarks", PLOT))
        print(f"[micro] wrote docs/benchmarks.md and docs/benchmarks/{PLOT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
