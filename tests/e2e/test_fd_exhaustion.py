"""Out of file descriptors: the real program started with a low
RLIMIT_NOFILE and held by more idle TCP connections than it has
descriptors. Accepting must pause rather than spin (CPU and log stay
bounded), the server must answer again once the connections close, and
the default max_connections (derived from the limit) must refuse at
accept before the descriptors run out.

Each test prints a FIGURE line (CPU of the server over the window, log
lines it wrote) before asserting, so the same script measures any build:
  XITZIN_BIN=... python3 -m pytest -q -s tests/e2e/test_fd_exhaustion.py
"""

import os
import re
import resource
import select
import socket
import time

from conftest import SLOW

FD_LIMIT = 64  # the server's RLIMIT_NOFILE, soft and hard
HELD = 80      # idle connections: more than the server has descriptors
WINDOW = 5.0   # seconds over which CPU and log lines are measured


def static(capsule, extra=""):
    return f"[server]\n{extra}\n[static /]\nroot = {capsule}\n"


def low_fd_limit():
    # Soft and hard: xitzin raises its soft limit to the hard one.
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is stat's field 3 (state): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_lines(s):
    return s.log_path.read_bytes().count(b"\n")


def measure(s):
    """(CPU % of one core, log lines written) over WINDOW seconds."""
    lines0, cpu0, t0 = log_lines(s), cpu_seconds(s.proc.pid), time.time()
    time.sleep(WINDOW)
    cpu1, t1, lines1 = cpu_seconds(s.proc.pid), time.time(), log_lines(s)
    return 100.0 * (cpu1 - cpu0) / (t1 - t0), lines1 - lines0


def open_idle(s, n):
    """n TCP connections that never send a byte."""
    return [socket.create_connection(("127.0.0.1", s.port), timeout=10 * SLOW)
            for _ in range(n)]


def served(s):
    r = s.get("/hello.txt")
    return (r.status, r.body, r.close_notify) == (20, b"hello\n", True)


def served_again(s):
    """True once a normal request is answered (retried for a while: the
    server first takes and drops what waited in its backlog)."""
    deadline = time.time() + 20 * SLOW
    while time.time() < deadline:
        try:
            if served(s):
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def count_dropped(socks, expected):
    """How many of socks the server closed: waits until expected have
    been, then a little longer to catch any more."""
    live = {c.fileno(): c for c in socks}
    dropped = 0
    deadline = time.time() + 20 * SLOW
    grace = None
    while live and time.time() < (grace or deadline):
        ready, _, _ = select.select(list(live), [], [], 0.2)
        for fd in ready:
            try:
                gone = live[fd].recv(1) == b""
            except ConnectionResetError:
                gone = True
            if gone:
                dropped += 1
                del live[fd]
        if dropped >= expected and grace is None:
            grace = time.time() + 1.0
    return dropped


def test_out_of_descriptors_pauses_accepting(xitzin, capsule):
    # max_connections above what 64 descriptors hold: exhaustion happens.
    s = xitzin(static(capsule, "max_connections = 1000\n"
                               "request_timeout = 300"),
               preexec_fn=low_fd_limit)
    held = open_idle(s, HELD)
    deadline = time.time() + 20 * SLOW
    while b"Too many open files" not in s.log_path.read_bytes():
        assert time.time() < deadline, "accept never ran out:\n" + s.log()
        time.sleep(0.1)
    cpu, lines = measure(s)
    print(f"\nFIGURE fd exhaustion ({FD_LIMIT} fds, {HELD} idle "
          f"connections): CPU {cpu:.1f}% of one core, {lines} log lines "
          f"in {WINDOW:.0f} s")
    assert cpu < 30, cpu    # busy-spinning is 100% per worker
    assert lines <= 3, lines  # one line per 10 s, with a count
    for c in held:
        c.close()
    assert served_again(s), s.log()[-2000:]
    assert "working again" in s.log()


def test_default_cap_refuses_before_descriptors_run_out(xitzin, capsule):
    s = xitzin(static(capsule, "request_timeout = 300"),
               preexec_fn=low_fd_limit)
    m = re.search(r"at most (\d+) connections", s.log())
    assert m, s.log()
    cap = int(m.group(1))
    assert 1 <= cap < FD_LIMIT // 2, cap
    # One short of the cap, a request still finds a descriptor for its
    # file: the cap leaves the handlers room.
    held = open_idle(s, cap - 1)
    time.sleep(0.5)
    assert served(s)
    # Over the cap, connections are closed as soon as they are accepted.
    more = open_idle(s, HELD - len(held))
    dropped = count_dropped(held + more, HELD - cap)
    cpu, lines = measure(s)
    print(f"\nFIGURE default cap {cap} ({FD_LIMIT} fds, {HELD} idle "
          f"connections): {dropped} refused at accept, CPU {cpu:.1f}% of "
          f"one core, {lines} log lines in {WINDOW:.0f} s")
    assert dropped == HELD - cap
    assert "Too many open files" not in s.log()
    assert cpu < 30, cpu
    assert lines <= 3, lines
    for c in held + more:
        c.close()
    assert served_again(s)
