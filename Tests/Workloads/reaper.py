#!/usr/bin/env python3
"""reaper.py COMMAND... — run COMMAND as a child subreaper and reap every
orphan below it. A checkpoint kills a process tree; its children become
orphans, and on hosts whose init reaps slowly their zombies keep the pids
the restore needs. Exits with COMMAND's status."""
import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])


def forward(sig, _frame):
    """TERM/INT/HUP (e.g. from `timeout`) go to COMMAND, which cleans up; the reaper waits for it."""
    try:
        os.kill(child, sig)
    except ProcessLookupError:
        pass


for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, forward)
status = 1
while True:
    try:
        pid, st = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if pid == child:
        status = os.waitstatus_to_exitcode(st)
        break
sys.exit(status if status >= 0 else 128 - status)
