#!/usr/bin/env python3
"""Scaling sweeps: how checkpoint and restore cost grows with one dimension of
a process, ferry and CRIU interleaved in one run (docs/performance.md).

Sweeps (workload `wl_scale CTLDIR KIND N`, memory with wl_anon_pattern):
  memory    MiB of anonymous memory          16 → 1024 (8192 with SCALE_BIG=1)
  threads   threads in one process           1 → 1000
  procs     processes in one tree            1 → 500
  mappings  one-page mappings, RW/R alternating  10 → 50000
  fds       descriptors of /dev/null         10 → 50000
For every point and tool, RUNS cycles (checkpoint, restore, self-check) give
wall time, CPU seconds (user + system of the tool and the children it
waited for) and peak RSS; the median of the passing runs goes into
bench/results/scale-SWEEP.csv and one picture per sweep
(bench/results/scale-SWEEP.png and .svg; matplotlib, installed with pip when
missing). A table of ferry/CRIU ratios is printed per sweep.

Environment: FERRY, WL, CRIU (as bench/cr_bench.py), RUNS (3),
SWEEPS ("memory threads procs mappings fds"), POINTS_<SWEEP> (a space-separated
list overriding a sweep's points), SCALE_BIG=1 (adds 8192 MiB), RESULTS
(bench/results), HOGS (N CPU-bound processes beside the run: a run under load).
Exit status 1 if any run failed.
"""
import csv, os, resource, signal, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cr_bench as cb  # noqa: E402  (shares one_run, the clean-up and the tables)

RUNS = int(os.environ.get("RUNS", "3"))
RESULTS = os.environ.get("RESULTS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
HOGS = int(os.environ.get("HOGS", "0"))
DEFAULT_POINTS = {
    "memory": [16, 256, 1024] + ([8192] if os.environ.get("SCALE_BIG") else []),
    "threads": [1, 10, 100, 1000],
    "procs": [1, 10, 100, 500],
    "mappings": [10, 1000, 10000, 50000],
    "fds": [10, 1000, 10000, 50000],   # points above the hard RLIMIT_NOFILE are skipped, said so
}
SWEEPS = os.environ.get("SWEEPS", " ".join(DEFAULT_POINTS)).split()
UNITS = {"memory": "MiB", "threads": "threads", "procs": "processes", "mappings": "mappings", "fds": "descriptors"}
METRICS = [("ckpt_s", "checkpoint wall s"), ("rst_s", "restore wall s"), ("ckpt_cpu", "checkpoint CPU s"),
           ("rst_cpu", "restore CPU s"), ("ckpt_kib", "checkpoint peak RSS KiB"), ("rst_kib", "restore peak RSS KiB")]


def points(sweep):
    env = os.environ.get("POINTS_" + sweep.upper())
    return [int(x) for x in env.split()] if env else DEFAULT_POINTS[sweep]


def workload(sweep, n):
    if sweep == "memory":
        return [os.path.join(cb.WL, "wl_anon_pattern"), str(n)], None
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = n + 1024 if hard == resource.RLIM_INFINITY else min(n + 1024, hard)
    limits = {resource.RLIMIT_NOFILE: want} if sweep == "fds" else None
    return [os.path.join(cb.WL, "wl_scale"), sweep, str(n)], limits


def median(vals):
    st = cb.stats(vals)
    return st[0] if st else None


def run_sweep(sweep, tools, failures):
    rows = []
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for n in points(sweep):
        if sweep == "fds" and hard != resource.RLIM_INFINITY and n + 64 > hard:
            print(f"  fds {n}: skipped: the hard RLIMIT_NOFILE here is {hard} and raising it needs CAP_SYS_RESOURCE"
                  f" (ulimit -Hn {n + 1024} as a user who may)", flush=True)
            continue
        argv, limits = workload(sweep, n)
        got = {t: [] for t in tools}
        for i in range(RUNS):
            for tool in tools:          # interleaved: same machine state for both
                try:
                    r = cb.one_run(tool, n, workload=argv, label=f"{sweep}{n}", limits=limits)
                    got[tool].append(r)
                    print(f"  {sweep:8} {n:6} {tool:5} run {i + 1}/{RUNS}: PASS  checkpoint {r['ckpt_s']:.3f} s"
                          f" ({fmt_num(r.get('ckpt_cpu'))} CPU s)  restore {r['rst_s']:.3f} s"
                          f" ({fmt_num(r.get('rst_cpu'))} CPU s)  RSS {kib_mib(r['ckpt_kib'])}/{kib_mib(r['rst_kib'])} MiB"
                          f"  load {os.getloadavg()[0]:.1f}", flush=True)
                except cb.Fail as e:
                    failures.append(f"{sweep} {n} {tool}: {e}")
                    print(f"  {sweep:8} {n:6} {tool:5} run {i + 1}/{RUNS}: FAIL  {e}", flush=True)
        for tool in tools:
            row = {"sweep": sweep, "n": n, "tool": tool, "runs": RUNS, "passed": len(got[tool])}
            for key, _ in METRICS:
                row[key] = median([r.get(key) for r in got[tool]])
            rows.append(row)
    return rows


def fmt_num(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def kib_mib(v):
    return "-" if v is None else f"{v / 1024:.1f}"


def write_csv(sweep, rows):
    path = os.path.join(RESULTS, f"scale-{sweep}.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sweep", "n", "tool", "runs", "passed"] + [k for k, _ in METRICS])
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    print("installing matplotlib (pip)", flush=True)
    for extra in ([], ["--break-system-packages"]):
        if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"] + extra).returncode == 0:
            return True
    print("warning: matplotlib could not be installed; no pictures, only CSV")
    return False


def plot(sweep, rows, tools, stamp):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = [("wall time (s)", ["ckpt_s", "rst_s"], 1), ("CPU time (s)", ["ckpt_cpu", "rst_cpu"], 1),
              ("peak RSS (MiB)", ["ckpt_kib", "rst_kib"], 1 / 1024)]
    style = {"ferry": "-", "criu": "--"}
    colour = {"ckpt_s": "tab:blue", "rst_s": "tab:orange", "ckpt_cpu": "tab:blue", "rst_cpu": "tab:orange",
              "ckpt_kib": "tab:blue", "rst_kib": "tab:orange"}
    for ax, (title, keys, scale) in zip(axes, panels):
        for tool in tools:
            for key in keys:
                # Log axes: a CPU time below the clock tick (0) is left out.
                pts = [(r["n"], r[key] * scale) for r in rows if r["tool"] == tool and r[key]]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                what = "checkpoint" if key.startswith("ckpt") else "restore"
                ax.plot(xs, ys, style.get(tool, ":"), marker="o", color=colour[key], label=f"{tool} {what}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(UNITS[sweep])
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"ferry vs CRIU: cost against {UNITS[sweep]} (median of {RUNS}; {stamp})", fontsize=10)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(RESULTS, f"scale-{sweep}.{ext}"), dpi=110)
    plt.close(fig)


def ratio_table(sweep, rows):
    out = []
    for n in sorted({r["n"] for r in rows}):
        f = next((r for r in rows if r["n"] == n and r["tool"] == "ferry"), None)
        c = next((r for r in rows if r["n"] == n and r["tool"] == "criu"), None)
        cells = [str(n)]
        for key, _ in METRICS[:4]:
            a, b = (f or {}).get(key), (c or {}).get(key)
            cells.append(f"{a / b:.2f}" if a is not None and b else "-")
        out.append(cells)
    print(f"\n{sweep}: ratios ferry/CRIU of the medians (< 1: ferry costs less)")
    cb.print_table([UNITS[sweep], "checkpoint wall", "restore wall", "checkpoint CPU", "restore CPU"], out)


def value_table(sweep, rows):
    head = [UNITS[sweep], "tool", "pass", "ckpt s", "rst s", "ckpt CPU s", "rst CPU s", "ckpt RSS MiB", "rst RSS MiB"]
    out = [[str(r["n"]), r["tool"], f"{r['passed']}/{r['runs']}", fmt_num(r["ckpt_s"]), fmt_num(r["rst_s"]),
            fmt_num(r["ckpt_cpu"]), fmt_num(r["rst_cpu"]), kib_mib(r["ckpt_kib"]), kib_mib(r["rst_kib"])] for r in rows]
    print(f"\n{sweep}: medians of the passing runs")
    cb.print_table(head, out)


def start_hogs():
    hogs = []
    for _ in range(HOGS):
        hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True))
    return hogs


def main():
    cb.ensure_time()
    cb.become_subreaper()
    for path in (cb.FERRY, os.path.join(cb.WL, "wl_scale"), os.path.join(cb.WL, "wl_anon_pattern")):
        if not os.access(path, os.X_OK):
            sys.exit(f"missing {path} (build ferry in release mode and the workloads first)")
    unknown = [s for s in SWEEPS if s not in DEFAULT_POINTS]
    if unknown:
        sys.exit(f"unknown sweep {unknown[0]}: the sweeps are {' '.join(DEFAULT_POINTS)}")
    tools = ["ferry"] + (["criu"] if cb.CRIU else [])
    if cb.CRIU and not os.access(cb.CRIU, os.X_OK):
        sys.exit(f"CRIU={cb.CRIU} is not executable")
    os.makedirs(RESULTS, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp = subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    stamp = f"{stamp}, {os.cpu_count()} CPUs {cpu}, {os.uname().release}" + (f", {HOGS} CPU hogs" if HOGS else "")
    print(f"scaling sweeps: {' '.join(SWEEPS)}; runs per point {RUNS}; {stamp}")
    print(f"CRIU: {cb.CRIU}" if cb.CRIU else "CRIU: not set (CRIU=/path/to/criu to compare) — CRIU not measured")
    plots = ensure_matplotlib()
    failures = []
    hogs = start_hogs()
    try:
        for sweep in SWEEPS:
            rows = run_sweep(sweep, tools, failures)
            print(f"wrote {write_csv(sweep, rows)}")
            value_table(sweep, rows)
            if cb.CRIU:
                ratio_table(sweep, rows)
            if plots:
                plot(sweep, rows, tools, stamp)
                print(f"wrote {os.path.join(RESULTS, f'scale-{sweep}.png')} and .svg")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        cb.cleanup()
    for f in failures:
        print(f"FAIL {f}")
    print(f"{len(failures)} runs failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
