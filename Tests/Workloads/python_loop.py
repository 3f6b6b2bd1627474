#!/usr/bin/env python3
"""python_loop: the "real program" case, same protocol as the C workloads.

State: a SHA-256 hash chain h[n] = sha256(h[n-1] + n), a Fibonacci pair
mod a prime, and a dict of every 1000th chain value. Each step advances the
state and checks the Fibonacci pair against the fast-doubling formula;
every 200 steps the chain is recomputed from the last saved dict entry. At
stop the whole chain is recomputed from scratch and compared, saved values
included.
"""
import hashlib
import os
import sys
import time

P = 1_000_000_007


def fib_pair(n):
    """(F(n), F(n+1)) mod P by fast doubling."""
    if n == 0:
        return 0, 1
    a, b = fib_pair(n // 2)
    c = a * ((2 * b - a) % P) % P
    d = (a * a + b * b) % P
    return (d, (c + d) % P) if n % 2 else (c, d)


def chain_from(h, start, end):
    for i in range(start + 1, end + 1):
        h = hashlib.sha256(h + i.to_bytes(8, "little")).digest()
    return h


def write_atomic(ctl, name, text):
    tmp = os.path.join(ctl, name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, text.encode())
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, os.path.join(ctl, name))


def main():
    if len(sys.argv) < 2:
        os.write(2, b"usage: wl_python_loop.py CTLDIR\n")
        sys.exit(2)
    ctl = sys.argv[1]
    stop = os.path.join(ctl, "stop")
    failure = None
    seed = b"ferry"
    n, h, fa, fb = 0, seed, 0, 1
    marks = {0: seed}

    def fail(reason):
        nonlocal failure
        if failure is None:
            failure = reason.replace("\n", " ")

    write_atomic(ctl, "ready", "%d\n" % os.getpid())
    while True:
        stopping = os.access(stop, os.F_OK)
        for _ in range(10):
            n += 1
            h = chain_from(h, n - 1, n)
            fa, fb = fb, (fa + fb) % P
            if n % 1000 == 0:
                marks[n] = h
        if (fa, fb) != fib_pair(n):
            fail("fibonacci state wrong at n=%d" % n)
        if n % 200 == 0 or stopping:
            base = max(k for k in marks if k <= n - 1) if n > 1 else 0
            if chain_from(marks[base], base, n) != h:
                fail("hash chain broken between %d and %d" % (base, n))
        if stopping:
            break
        time.sleep(0.002)
    g = seed
    for k in range(1, n + 1):
        g = chain_from(g, k - 1, k)
        if k in marks and marks[k] != g:
            fail("saved chain value %d changed" % k)
    if g != h:
        fail("hash chain differs from a recomputation over %d steps" % n)
    write_atomic(ctl, "result", "PASS\n" if failure is None else "FAIL: %s\n" % failure)
    sys.exit(0 if failure is None else 1)


if __name__ == "__main__":
    main()
