#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and presses Ctrl-C there, as a user at a terminal would.

The terminal's line discipline turns the ^C byte into SIGINT for the terminal's foreground
process group -- exactly what happens when a user presses Ctrl-C in front of mpirun or
launch/run-local -- so no process is signalled by pid.

  ctrl_c.py [--after REGEX] [--delay S] [--presses N] [--gap S] [--timeout S] -- CMD...

Waits until the output matches REGEX (default: any output), waits DELAY seconds more, presses
Ctrl-C N times GAP seconds apart, then waits for the command to end. Copies the command's output
to stdout, prints "ctrl_c: pressed at T, exit after S s" to stderr, and exits with the command's
exit status (128 + signal if a signal ended it; 124 on timeout, after killing it).
"""
import argparse
import os
import pty
import re
import select
import signal
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--after", default="")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--presses", type=int, default=1)
    ap.add_argument("--gap", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    pid, fd = pty.fork()
    if pid == 0:  # the child: session leader with the pty as its controlling terminal
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    pattern = re.compile(a.after) if a.after else None
    out = b""
    start = time.monotonic()
    armed_at = None  # when the pattern was seen
    presses = []
    status = None
    while True:
        now = time.monotonic()
        if now - start > a.timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.stdout.buffer.write(out)
            print("ctrl_c: timeout after %.0f s" % a.timeout, file=sys.stderr)
            return 124
        if armed_at is None and (pattern is None and out or pattern and pattern.search(out.decode(errors="replace"))):
            armed_at = now
        if armed_at is not None and len(presses) < a.presses:
            due = armed_at + a.delay + a.gap * len(presses)
            if now >= due:
                os.write(fd, b"\x03")
                presses.append(now)
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child side is closed
                chunk = b""
            if chunk:
                out += chunk
                continue
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            # drain what is left
            while True:
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r:
                    break
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            break
    end = time.monotonic()
    sys.stdout.buffer.write(out.replace(b"\r\n", b"\n"))
    sys.stdout.flush()
    if presses:
        print("ctrl_c: pressed Ctrl-C %d time(s), first at %.1f s; the command ended %.2f s later"
              % (len(presses), presses[0] - start, end - presses[0]), file=sys.stderr)
    else:
        print("ctrl_c: the command ended before Ctrl-C was pressed", file=sys.stderr)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
