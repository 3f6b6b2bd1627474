#!/usr/bin/env python3
"""Random-time SIGKILL of ferry: the process it works on must run on and
verify itself (docs/kill-safety.md).

  bench/kill_random.py [MODE...]     MODE: leave-running, checkpoint, migrate (default: all three)

Environment:
  FERRY    ferry binary                  (default .build/debug/ferry)
  WL       workload directory            (default .build/workloads)
  WORKLOAD workload name                 (default clock_loop)
  TRIALS   trials per mode               (default 200)
  KILLS    if set: run trials until this many were real kills (ferry still
           working when SIGKILL came), at most 5 x KILLS trials; TRIALS is ignored

One trial: start the workload (launch.py under reaper.py, as the tests do),
start ferry on it, SIGKILL ferry after a delay drawn uniformly from
[0, 1.2 x the time an unkilled run takes] (measured first, median of 3),
then: if ferry had already finished, the trial is "completed" (for
`checkpoint` and `migrate` the process is then gone on purpose: nothing to
check; nor when a killed `checkpoint` had written a whole image: it kills
the process then); otherwise the process must exist with no tracer and no thread in a
stop, and on `stop` write PASS. Prints per mode: trials, killed, completed,
passed, failed (with the first few failures).
`migrate` runs `ferry serve --listen 127.0.0.1:PORT --new-pidns --insecure` beside; a
killed migrate whose source is gone but whose copy runs on the target went
through (completed); one where both run died in the ACK window
(docs/kill-safety.md) and is counted apart; the copy is killed.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.environ.get("FERRY", os.path.join(ROOT, ".build/debug/ferry"))
WL = os.environ.get("WL", os.path.join(ROOT, ".build/workloads"))
WORKLOAD = os.environ.get("WORKLOAD", "clock_loop")
TRIALS = int(os.environ.get("TRIALS", "200"))
KILLS = int(os.environ["KILLS"]) if os.environ.get("KILLS") else None
HERE = os.path.join(ROOT, "Tests/Workloads")


def wait_for(path, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def start_workload():
    ctl = tempfile.mkdtemp(prefix="ferry_kill.")
    reaper = subprocess.Popen(["python3", os.path.join(HERE, "reaper.py"), "python3", os.path.join(HERE, "launch.py"),
                               os.path.join(WL, "wl_" + WORKLOAD), ctl],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for(ctl + "/ready", 10):
        raise RuntimeError("workload did not start")
    time.sleep(0.1)
    pid = int(open(ctl + "/ready").read().strip())
    return ctl, reaper, pid


def untraced(pid):
    """None when every thread of the tree under pid runs untraced, else why not."""
    queue = [pid]
    while queue:
        p = queue.pop(0)
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except (FileNotFoundError, ProcessLookupError):
            return "process %d is gone" % p
        for t in tasks:
            try:
                fields = dict(l.split(":", 1) for l in open("/proc/%d/task/%s/status" % (p, t)) if ":" in l)
            except (FileNotFoundError, ProcessLookupError):
                continue
            state, tracer = fields["State"].strip(), fields["TracerPid"].strip()
            if tracer != "0" or state[0] in "tTZ":
                return "thread %s of %d: state %s, tracer %s" % (t, p, state, tracer)
        try:
            queue += [int(c) for c in open("/proc/%d/task/%d/children" % (p, p)).read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return None


def finish(ctl, reaper, pid):
    """Asks the workload for its verdict; returns None on PASS, else the reason."""
    open(ctl + "/stop", "w").close()
    if not wait_for(ctl + "/result", 15):
        running = os.path.exists("/proc/%d" % pid)
        if running:
            os.kill(pid, signal.SIGKILL)
        reaper.wait()
        return "no result (%s)" % ("still running" if running else "exited with status %d" % reaper.returncode)
    res = open(ctl + "/result").read().strip()
    reaper.wait()
    return None if res.startswith("PASS") else res


def command(mode, pid, ctl, port):
    if mode == "leave-running":
        return [FERRY, "checkpoint", str(pid), "-o", ctl + "/img", "--leave-running"]
    if mode == "checkpoint":
        return [FERRY, "checkpoint", str(pid), "-o", ctl + "/img"]
    return [FERRY, "migrate", str(pid), "--to", "127.0.0.1:%d" % port, "--insecure"]


def finished_image(ctl):
    """True when ferry wrote a whole image (`ferry inspect` accepts it)."""
    return subprocess.run([FERRY, "inspect", ctl + "/img"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def cleanup(ctl):
    subprocess.run(["rm", "-rf", ctl])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def copies(ctl, source):
    """Processes of the workload binary other than `source` with `ctl` in their command line
    (the migrated copy), zombies left out."""
    out = []
    binary = os.path.realpath(os.path.join(WL, "wl_" + WORKLOAD))
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == source:
            continue
        try:
            if (os.readlink("/proc/%s/exe" % p) == binary and ctl.encode() in open("/proc/%s/cmdline" % p, "rb").read()
                    and ") Z" not in open("/proc/%s/stat" % p).read()):
                out.append(int(p))
        except OSError:
            pass
    return out


def kill_copies(ctl, source):
    """Stops the migrated copies (on the target, our serve); returns how many there were."""
    found = copies(ctl, source)  # a copy is restored before the ACK, so before ferry migrate can finish or die after it
    for p in found:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(found)


def run_mode(mode):
    serve = None
    port = 0
    serve_log = None
    if mode == "migrate":
        port = free_port()
        serve_log = tempfile.mktemp(prefix="ferry_serve.")
        serve = subprocess.Popen([FERRY, "serve", "--listen", "127.0.0.1:%d" % port, "--new-pidns", "--insecure"],
                                 stdout=open(serve_log, "w"), stderr=subprocess.STDOUT)
        time.sleep(1)
    try:
        durations = []
        for _ in range(3):
            ctl, reaper, pid = start_workload()
            t0 = time.time()
            r = subprocess.run(command(mode, pid, ctl, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            durations.append(time.time() - t0)
            if r.returncode != 0:
                print("%s: an unkilled run failed: %s" % (mode, r.stderr.decode().strip()))
            if mode == "leave-running":
                finish(ctl, reaper, pid)
            else:
                reaper.wait()
                if mode == "migrate":
                    kill_copies(ctl, pid)
            cleanup(ctl)
        span = sorted(durations)[1] * 1.2
        killed = completed = passed = both = 0
        failures = []
        i = -1
        while True:
            i += 1
            if KILLS is None and i >= TRIALS or KILLS is not None and (killed >= KILLS or i >= 5 * KILLS):
                break
            ctl, reaper, pid = start_workload()
            p = subprocess.Popen(command(mode, pid, ctl, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(random.uniform(0, span))
            done = p.poll() is not None
            if not done:
                p.kill()
            p.wait()
            if done and mode != "leave-running":
                completed += 1
                reaper.wait()
                if mode == "migrate":
                    kill_copies(ctl, pid)
                cleanup(ctl)
                continue
            why = untraced(pid)
            if mode == "migrate":
                # A copy on the target: the migration went through (source gone: completed) or the
                # source ferry died in the ACK window (source running too: both run, docs/kill-safety.md).
                n = kill_copies(ctl, pid) if why is None else 0
                if why is not None and kill_copies(ctl, pid):
                    completed += 1
                    reaper.wait()
                    cleanup(ctl)
                    continue
                both += 1 if n else 0
            if why and not done and mode == "checkpoint" and finished_image(ctl):
                # Killed after the image was complete: ferry had sent the process its SIGKILL on purpose.
                done = True
                reaper.wait()
                completed += 1
                cleanup(ctl)
                continue
            if done:
                completed += 1
            else:
                killed += 1
            verdict = finish(ctl, reaper, pid)
            if (verdict == "no result (exited with status 137)" and not done and mode == "checkpoint"
                    and finished_image(ctl)):
                # Killed right after ferry sent the process its SIGKILL on purpose (the image complete).
                killed -= 1
                completed += 1
                cleanup(ctl)
                continue
            why = why or verdict
            if why is None:
                passed += 1
            else:
                failures.append("trial %d (%s): %s" % (i, "completed" if done else "killed", why))
            cleanup(ctl)
        print("%-14s trials %d  killed %d  completed %d  source verified PASS %d  failed %d  (kill window %.0f ms)"
              % (mode, i, killed, completed, passed, len(failures), span * 1000)
              + ("  source and target both running (ACK window) %d" % both if mode == "migrate" else ""))
        for f in failures[:10]:
            print("    " + f)
        return not failures
    finally:
        if serve:
            serve.kill()
            serve.wait()
        if serve_log:
            os.unlink(serve_log)


def main():
    modes = sys.argv[1:] or ["leave-running", "checkpoint", "migrate"]
    ok = all([run_mode(m) for m in modes])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
