#!/usr/bin/env python3
"""Checkpoint/restore benchmark: ferry (and CRIU, when CRIU=/path/to/criu is set)
on anon_pattern workloads of several sizes, side by side in one run.

Environment:
  FERRY      ferry binary              (default .build/release/ferry)
  WL         workload directory        (default .build/workloads)
  SIZES      MiB per workload          (default "16 256 1024")
  RUNS       runs per size and tool    (default 5)
  CRIU       criu binary; unset: CRIU is not measured (said in the output)
  RUN_AFTER  seconds the restored process runs before its verdict (0.5)
  FERRY_CKPT_ARGS  extra arguments for `ferry checkpoint` (e.g. --direct-io)

One run, per tool: start wl_anon_pattern CTLDIR MiB, wait for `ready`,
checkpoint (timed, peak RSS by /usr/bin/time -f %M), reap the killed workload
(it is our child), du the image, restore (timed until the restored pid is
known; peak RSS), let it run, touch `stop`, read `result`. The workload runs in
its own session, so CRIU needs no --shell-job (and no tty): `criu dump -t PID
-D IMG --display-stats`, `criu restore -D IMG -d`. A run counts only
if the result is PASS; statistics are over the passing runs. Images live in
/tmp and are removed; nothing is left running. Exit status 1 if any run failed.
"""
import os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

FERRY = os.environ.get("FERRY", ".build/release/ferry")
WL = os.environ.get("WL", ".build/workloads")
SIZES = [int(s) for s in os.environ.get("SIZES", "16 256 1024").split()]
RUNS = int(os.environ.get("RUNS", "5"))
CRIU = os.environ.get("CRIU", "")
RUN_AFTER = float(os.environ.get("RUN_AFTER", "0.5"))
FERRY_CKPT_ARGS = os.environ.get("FERRY_CKPT_ARGS", "").split()
TIME = "/usr/bin/time"

live = {"ctl": set(), "pids": set()}   # what cleanup() must remove / kill


def ensure_time():
    if os.access(TIME, os.X_OK):
        return
    print("installing GNU time (apt)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "time"], check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)


def ours(pid, ctl):
    """True if pid is still a workload running on ctl (never kill a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return ctl.encode() in f.read()
    except OSError:
        return False


def become_subreaper():
    """Restored processes outlive ferry/criu restore: as a child subreaper this
    script becomes their parent and reaps them (no zombies left under init)."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: PR_SET_CHILD_SUBREAPER failed; restored processes are reaped by init")


def reap(pid, block):
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:        # not (or no longer) our child
        pass


def cleanup():
    for pid, ctl in list(live["pids"]):
        alive = ours(pid, ctl)
        if alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reap(pid, alive)
    live["pids"].clear()
    while True:                      # any other orphan handed to us
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    for d in list(live["ctl"]):
        shutil.rmtree(d, ignore_errors=True)
    live["ctl"].clear()


def wait_for(path, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def timed(argv, rssfile, pid_re=None, cpu=None):
    """Runs argv under /usr/bin/time. Returns (seconds, stdout+stderr, rc, KiB):
    KiB is the peak RSS. With pid_re, seconds is until a line matching it
    appears (the restored pid). With a dict `cpu`, cpu["s"] gets the tool's
    user + system CPU seconds, its waited-for children included."""
    t0 = time.monotonic()
    p = subprocess.Popen([TIME, "-f", "%M %U %S", "-o", rssfile] + argv,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, lines = None, []
    try:
        for line in p.stdout:
            lines.append(line)
            if pid_re and seen is None and re.search(pid_re, line):
                seen = time.monotonic() - t0
        rc = p.wait()
    except BaseException:            # interrupted: stop the tool too
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise
    total = time.monotonic() - t0
    kib = None
    try:
        fields = open(rssfile).read().split()[-3:]
        kib = int(fields[0])
        if cpu is not None:
            cpu["s"] = float(fields[1]) + float(fields[2])
    except (OSError, ValueError, IndexError):
        pass
    return (seen if seen is not None else total), "".join(lines), rc, kib


def du_mib(path):
    out = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) / 2**20


class Fail(Exception):
    pass


def tree_pids(pid):
    """pid and its descendants, from /proc/PID/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def tree_cpu(pids):
    """CPU seconds (user + system) the processes `pids` have used, from
    /proc/PID/stat; a zombie not yet reaped still shows its totals. What a
    tool's code does inside the process (CRIU's parasite and restorer,
    ferry's injected syscalls) is charged there, not to the tool."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


def reap_all(pids, seconds=10):
    """Reaps every pid of a killed tree (reparented to this subreaper) so the
    restore gets them back free."""
    left, end = set(pids), time.monotonic() + seconds
    while left and time.monotonic() < end:
        try:
            got, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if got == 0:
            left = {p for p in left if os.path.exists(f"/proc/{p}")}
            time.sleep(0.01)
        else:
            left.discard(got)


def one_run(tool, mib, workload=None, label=None, limits=None):
    """One checkpoint → restore → verdict cycle. Returns a dict of measurements.
    `workload`: the workload's command after CTLDIR (default wl_anon_pattern
    MIB); `limits`: {resource: value} set in the workload before exec."""
    workload = workload or [os.path.join(WL, "wl_anon_pattern"), str(mib)]
    ctl = tempfile.mkdtemp(prefix=f"ferry_bench_{tool}_{label or mib}_", dir="/tmp")
    live["ctl"].add(ctl)
    img, rss = os.path.join(ctl, "image"), os.path.join(ctl, "rss")
    os.mkdir(img)
    # Its own session (setsid), for both tools: CRIU without --shell-job
    # requires the dumped tree to own its session and process group, and
    # --shell-job needs a controlling tty, which `make bench` may not have.
    def set_limits():
        import resource
        for res, value in (limits or {}).items():
            resource.setrlimit(res, (value, value))
    wl = subprocess.Popen([workload[0], ctl] + workload[1:],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True, preexec_fn=set_limits if limits else None)
    pid = wl.pid
    live["pids"].add((pid, ctl))
    r = {}
    try:
        if not wait_for(os.path.join(ctl, "ready"), 60):
            raise Fail("workload not ready within 60 s")
        time.sleep(0.3)
        tree = tree_pids(pid)
        before = tree_cpu(tree)
        if tool == "ferry":
            argv = [FERRY, "checkpoint", str(pid), "-o", img] + FERRY_CKPT_ARGS
        else:
            argv = [CRIU, "dump", "-t", str(pid), "-D", img, "--display-stats"]
        cpu = {}
        r["ckpt_s"], out, rc, r["ckpt_kib"] = timed(argv, rss, cpu=cpu)
        r["ckpt_cpu"] = cpu.get("s", 0) + max(0.0, tree_cpu(tree) - before)
        if rc != 0:
            raise Fail(f"checkpoint rc {rc}: {out.strip()[-300:]}")
        m = re.search(r"frozen (\d+) ms", out)                # ferry
        r["frozen_s"] = int(m.group(1)) / 1000 if m else None
        m = re.search(r"^Frozen time: (\d+) us", out, re.M)   # criu --display-stats
        if m:
            r["frozen_s"] = int(m.group(1)) / 1e6
        wl.wait()                      # reap: the pids must be free for restore
        reap_all(tree)
        live["pids"].discard((pid, ctl))
        r["img_mib"] = du_mib(img)
        live["pids"].add((pid, ctl))   # the restored process gets this pid back
        if tool == "ferry":
            argv, pid_re = [FERRY, "restore", img], r"^restored pid \d+"
        else:
            # -d: criu exits once the tree runs; the restored root is
            # reparented to this script (child subreaper) and reaped here.
            argv, pid_re = [CRIU, "restore", "-D", img, "-d"], None
        cpu = {}
        r["rst_s"], out, rc, r["rst_kib"] = timed(argv, rss, pid_re, cpu=cpu)
        r["rst_cpu"] = cpu.get("s")
        if rc != 0:
            raise Fail(f"restore rc {rc}: {out.strip()[-300:]}")
        restored = pid
        if tool == "ferry":
            m = re.search(r"^restored pid (\d+)", out, re.M)
            if not m:
                raise Fail(f"restore printed no pid: {out.strip()[-300:]}")
            restored = int(m.group(1))
        live["pids"].add((restored, ctl))
        r["rst_cpu"] = r["rst_cpu"] + tree_cpu(tree_pids(restored)) if r["rst_cpu"] is not None else None
        time.sleep(RUN_AFTER)
        open(os.path.join(ctl, "stop"), "w").close()
        if not wait_for(os.path.join(ctl, "result"), 60):
            alive = ours(restored, ctl)
            raise Fail(f"no result within 60 s (restored pid {restored} {'still running' if alive else 'died'})")
        res = open(os.path.join(ctl, "result")).read().strip()
        if res != "PASS":
            raise Fail(res)
        end = time.monotonic() + 10       # it exits by itself after the verdict
        while ours(restored, ctl) and time.monotonic() < end:
            time.sleep(0.02)
            reap(restored, False)
        return r
    finally:
        cleanup()


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt(st, scale=1.0, digits=2):
    if st is None:
        return "-"
    med, lo, hi = (v * scale for v in st)
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def main():
    ensure_time()
    become_subreaper()
    for path in (FERRY, os.path.join(WL, "wl_anon_pattern")):
        if not os.access(path, os.X_OK):
            sys.exit(f"missing {path} (build ferry in release mode and the workloads first)")
    tools = ["ferry"] + (["criu"] if CRIU else [])
    if CRIU and not os.access(CRIU, os.X_OK):
        sys.exit(f"CRIU={CRIU} is not executable")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"ferry: {FERRY} {' '.join(FERRY_CKPT_ARGS)}   sizes (MiB): {' '.join(map(str, SIZES))}   runs: {RUNS}")
    print(f"CRIU: {CRIU}" if CRIU else "CRIU: not set (CRIU=/path/to/criu to compare) — CRIU not measured")
    results = {(t, s): [] for t in tools for s in SIZES}
    failures = {(t, s): [] for t in tools for s in SIZES}
    try:
        for size in SIZES:
            for i in range(RUNS):
                for tool in tools:      # interleaved: same machine state for both
                    try:
                        r = one_run(tool, size)
                        results[(tool, size)].append(r)
                        print(f"  {tool:5} {size:5} MiB run {i + 1}/{RUNS}: PASS  checkpoint {r['ckpt_s']:.3f} s"
                              f" ({r['ckpt_kib'] / 1024:.1f} MiB RSS)  restore {r['rst_s']:.3f} s"
                              f" ({r['rst_kib'] / 1024:.1f} MiB RSS)  image {r['img_mib']:.1f} MiB"
                              f"  load {os.getloadavg()[0]:.1f}", flush=True)
                    except Fail as e:
                        failures[(tool, size)].append(str(e))
                        print(f"  {tool:5} {size:5} MiB run {i + 1}/{RUNS}: FAIL  {e}", flush=True)
    finally:
        cleanup()

    print("\nmedian (min–max) over passing runs; times in s, sizes in MiB; RSS = peak RSS of the tool")
    head = ["tool", "MiB", "pass", "checkpoint s", "frozen s", "restore s", "image MiB", "ckpt RSS MiB", "rst RSS MiB"]
    rows = []
    for size in SIZES:
        for tool in tools:
            rs = results[(tool, size)]
            g = lambda k: stats([r[k] for r in rs])
            rows.append([tool, str(size), f"{len(rs)}/{RUNS}", fmt(g("ckpt_s")), fmt(g("frozen_s")),
                         fmt(g("rst_s")), fmt(g("img_mib"), digits=1),
                         fmt(g("ckpt_kib"), 1 / 1024, 1), fmt(g("rst_kib"), 1 / 1024, 1)])
    print_table(head, rows)
    if CRIU:
        print("\nratios ferry/CRIU of the medians (< 1: ferry is faster / smaller;"
              " frozen: ferry's ends when the image is complete, CRIU's is its own 'Frozen time')")
        rows = []
        for size in SIZES:
            f, c = results[("ferry", size)], results[("criu", size)]
            def ratio(k):
                a, b = stats([r[k] for r in f]), stats([r[k] for r in c])
                return f"{a[0] / b[0]:.2f}" if a and b and b[0] else "-"
            rows.append([str(size), ratio("ckpt_s"), ratio("frozen_s"), ratio("rst_s"), ratio("img_mib"),
                         ratio("ckpt_kib"), ratio("rst_kib")])
        print_table(["MiB", "checkpoint", "frozen", "restore", "image", "ckpt RSS", "rst RSS"], rows)
    else:
        print("\nCRIU not measured: CRIU is unset (see /work/shared/tools/build-criu-peer.sh).")
    nfail = sum(len(v) for v in failures.values())
    for (tool, size), errs in failures.items():
        for e in errs:
            print(f"FAIL {tool} {size} MiB: {e}")
    print(f"{sum(len(v) for v in results.values())} runs passed, {nfail} failed")
    return 1 if nfail else 0


def print_table(head, rows):
    w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    sys.exit(main())
