#!/usr/bin/env python3
"""shell_job_tty.py FERRY DIR — a job started from a "shell" on a pty (its
session led outside the tree, its stdio and controlling terminal that pty)
is checkpointed: refused naming --shell-job, then with --shell-job; it is
restored by a ferry that runs on a second pty, and must then read and write
that second terminal. Prints PASS or FAIL: reason."""
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time

ferry, image = sys.argv[1], sys.argv[2]
JOB = ("import os,sys\nos.closerange(3,1<<16)\nprint('ready',flush=True)\n"
       "for line in sys.stdin:\n    print('got:%s:%s' % (line.strip(), os.ttyname(0)), flush=True)\n")


def session_on_pty(argv):
    """Starts argv as the job of a new session (its leader, the "shell",
    stays and waits) whose controlling terminal is a new pty. Returns
    (master, slave name, job pid, shell pid)."""
    m, s = os.openpty()
    name = os.ttyname(s)
    r, w = os.pipe()
    shell = os.fork()
    if shell == 0:
        os.setsid()
        fcntl.ioctl(s, termios.TIOCSCTTY, 0)
        job = os.fork()
        if job == 0:
            for fd in (0, 1, 2):
                os.dup2(s, fd)
            os.closerange(3, 1 << 16)
            os.execv(argv[0], argv)
        os.write(w, str(job).encode())
        os.waitpid(job, 0)
        while True:
            time.sleep(60)
    os.close(s)
    os.close(w)
    job = int(os.read(r, 32))
    os.close(r)
    return m, name, job, shell


def read_until(m, text, seconds=20):
    out = b""
    end = time.time() + seconds
    while time.time() < end and text.encode() not in out:
        if select.select([m], [], [], 0.2)[0]:
            try:
                out += os.read(m, 4096)
            except OSError:
                break
    return out.decode(errors="replace")


def run(args):
    return subprocess.run([ferry] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True)


shells, jobs = [], []
try:
    m1, name1, job, shell1 = session_on_pty(["/usr/bin/python3", "-c", JOB])
    shells.append(shell1)
    jobs.append(job)
    if "ready" not in read_until(m1, "ready"):
        sys.exit(print("FAIL: the job did not start"))
    r = run(["checkpoint", str(job), "-o", image])
    if r.returncode == 0 or "--shell-job" not in r.stderr:
        sys.exit(print("FAIL: no refusal naming --shell-job: %r" % r.stderr))
    r = run(["checkpoint", str(job), "-o", image, "--shell-job"])
    if r.returncode != 0:
        sys.exit(print("FAIL: checkpoint --shell-job: %r" % r.stderr))
    # A restore whose stdin is not a terminal is refused.
    r = run(["restore", image])
    if r.returncode == 0 or "not a terminal" not in r.stderr:
        sys.exit(print("FAIL: a restore without a terminal was not refused: %r" % r.stderr))
    m2, name2, restorer, shell2 = session_on_pty([ferry, "restore", image])
    shells.append(shell2)
    screen = read_until(m2, "restored")
    if "restored" not in screen:
        sys.exit(print("FAIL: the restore did not finish: %r" % screen))
    time.sleep(0.5)
    os.write(m2, b"ping\n")
    screen = read_until(m2, "got:ping:" + name2)
    if "got:ping:" + name2 not in screen:
        sys.exit(print("FAIL: the restored job does not answer on %s: %r" % (name2, screen)))
    print("PASS")
finally:
    for p in jobs + shells:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
