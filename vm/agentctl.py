#!/usr/bin/env python3
"""agentctl.py PORT MODE ...: the host side of vm/guest/agent.c.

  agentctl.py PORT run CMD [TIMEOUT]   run CMD in the guest; print its output;
                                       exit with its status (124 on timeout)
  agentctl.py PORT stream CMD [TIMEOUT]
                                       CMD's stdin is our stdin, its stdout is
                                       our stdout (raw bytes); exit 0 when the
                                       guest closes, 124 on timeout
  agentctl.py PORT wait SECONDS        until `true` runs in the guest; 0 or 1

The agent listens behind qemu's hostfwd on 127.0.0.1:PORT."""
import os
import select
import socket
import sys
import time


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(None)
    return s


def run(port, cmd, timeout):
    s = connect(port)
    s.sendall(b"R " + cmd.encode() + b"\n")
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stdout.buffer.write(data)
            print(f"agentctl: timeout after {timeout}s: {cmd}", file=sys.stderr)
            return 124
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    text, sep, tail = data.rpartition(b"\n@@rc=")
    if not sep:
        sys.stdout.buffer.write(data)
        print("agentctl: the guest closed without a status", file=sys.stderr)
        return 125
    sys.stdout.buffer.write(text + (b"\n" if text and not text.endswith(b"\n") else b""))
    return int(tail.strip() or b"125")


def stream(port, cmd, timeout):
    s = connect(port)
    s.sendall(b"S " + cmd.encode() + b"\n")
    inp = sys.stdin.buffer.raw if os.isatty(0) is False else None
    fds = [s] + ([0] if inp is not None else [])
    out = sys.stdout.buffer
    deadline = time.monotonic() + timeout
    in_open = inp is not None
    if not in_open:
        s.shutdown(socket.SHUT_WR)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"agentctl: timeout after {timeout}s: {cmd}", file=sys.stderr)
            return 124
        r, _, _ = select.select(fds, [], [], left)
        if s in r:
            b = s.recv(1 << 16)
            if not b:
                break
            out.write(b)
            out.flush()
        if in_open and 0 in r:
            b = os.read(0, 1 << 16)
            if b:
                try:
                    s.sendall(b)
                except (BrokenPipeError, ConnectionResetError):
                    b = b""  # the guest command stopped reading (it failed): collect its output
            if not b:
                in_open = False
                fds.remove(0)
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    s.close()
    return 0


def wait(port, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            s = connect(port, timeout=2)
            s.sendall(b"R true\n")
            s.settimeout(5)
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
            s.close()
            if b"@@rc=0" in data:
                return 0
        except OSError:
            pass
        time.sleep(1)
    return 1


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "wait":
        return wait(port, float(sys.argv[3]))
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 120
    try:
        if mode == "run":
            return run(port, sys.argv[3], timeout)
        if mode == "stream":
            return stream(port, sys.argv[3], timeout)
    except OSError as e:
        print(f"agentctl: guest agent on 127.0.0.1:{port}: {e}", file=sys.stderr)
        return 126
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
