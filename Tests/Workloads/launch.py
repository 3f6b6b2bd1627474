#!/usr/bin/env python3
"""launch.py PROGRAM ARGS... — exec PROGRAM with a clean slate: stdio on
/dev/null, no other descriptors, no blocked signals, default dispositions,
in a session of its own (a job of the runner's session could only be
checkpointed with --shell-job).
A test runner's own fds, signal mask and ignored signals are not the
workload's state (they are inherited across exec otherwise)."""
import os
import signal
import sys

os.closerange(3, 1 << 16)
signal.pthread_sigmask(signal.SIG_SETMASK, [])
for s in range(1, signal.NSIG):
    try:
        signal.signal(s, signal.SIG_DFL)
    except (OSError, ValueError, RuntimeError):
        pass
null = os.open("/dev/null", os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
os.close(null)
try:
    os.setsid()
except PermissionError:
    pass  # already a process group leader: its caller made it one
os.execv(sys.argv[1], sys.argv[1:])
