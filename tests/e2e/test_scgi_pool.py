"""SCGI pools end to end: the real xitzin over real TLS in front of real
backends it shares out requests to. Failover with one of two backends
killed (SIGKILL) under load, 16 clients and 1,000 requests, none lost; a
backend that hangs on connect; recovery after fail_timeout; max_conns
with its queue answering 44; a pool of TCP and Unix backends (the
document's Python server and Perl's SCGI module); and `-t` on bad
backend lines."""

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from conftest import BIN, ROOT, SLOW, gemini_raw
from conftest import free_port

EXAMPLES = ROOT / "examples" / "scgi"
PYTHON = "/usr/bin/python3"

# A threaded SCGI backend: argv ADDR NAME DELAY. ADDR is HOST:PORT or
# unix:PATH; each request is answered "20 text/plain" with NAME after
# DELAY seconds, or, when DELAY is gate:PATH, once PATH exists (each
# request then adds a line to PATH.log as it arrives), or, when DELAY is
# mute, closes without a word. Prints "ready" once listening.
BACKEND = r'''
import os, socket, sys, threading, time

addr, name, delay = sys.argv[1], sys.argv[2].encode(), sys.argv[3]

def wait():
    if not delay.startswith("gate:"):
        return time.sleep(float(delay))
    with open(delay[5:] + ".log", "a") as f:
        f.write("request\n")
    while not os.path.exists(delay[5:]):
        time.sleep(0.02)

def serve(c):
    data = b""
    while b":" not in data:
        d = c.recv(65536)
        if not d:
            return c.close()
        data += d
    colon = data.index(b":")
    need = colon + 1 + int(data[:colon]) + 1
    while len(data) < need:
        d = c.recv(65536)
        if not d:
            return c.close()
        data += d
    pairs = data[colon + 1:need - 1].split(b"\0")
    need += int(dict(zip(pairs[::2], pairs[1::2]))[b"CONTENT_LENGTH"])
    while len(data) < need:  # the body (Titan), read whole
        d = c.recv(65536)
        if not d:
            return c.close()
        data += d
    if delay == "mute":  # a backend that dies before answering
        return c.close()
    wait()
    c.sendall(b"20 text/plain\r\n" + name)
    c.close()

if addr.startswith("unix:"):
    s = socket.socket(socket.AF_UNIX)
    if os.path.exists(addr[5:]):
        os.unlink(addr[5:])
    s.bind(addr[5:])
else:
    host, port = addr.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
s.listen(1024)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


@pytest.fixture
def backend(tmp_path):
    """backend(addr, name, delay=0) -> Popen; each stopped by PID."""
    script = tmp_path / "backend.py"
    script.write_text(BACKEND)
    procs = []

    def start(addr, name, delay=0.0):
        p = subprocess.Popen([PYTHON, str(script), addr, name, str(delay)],
                             stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()


def get(server, path, timeout=30):
    return gemini_raw(server.port, f"gemini://localhost{path}\r\n".encode(),
                      timeout=timeout)


def pool(prefix, addrs, **keys):
    return (f"[scgi {prefix}]\n" + "".join(f"backend = {a}\n" for a in addrs)
            + "".join(f"{k} = {v}\n" for k, v in keys.items()))


def load(server, path, total, clients, during=None):
    """total requests from clients threads; during(done_count) runs once
    when a third are done. Returns the replies, in no order."""
    replies, lock, next_i = [], threading.Lock(), [0]
    fired = threading.Event()

    def worker():
        while True:
            with lock:
                if next_i[0] >= total:
                    return
                next_i[0] += 1
            try:
                r = get(server, path)
            except OSError as e:  # counted as a failure, never raised
                r = e
            with lock:
                replies.append(r)
                third = len(replies) >= total // 3
            if third and during is not None and not fired.is_set():
                fired.set()
                during()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def test_one_of_two_killed_under_load_loses_nothing(xitzin, backend):
    """SIGKILL of one backend with 16 clients at work: the requests it
    held (read, not answered), those in its listen queue (reset), and
    the connects it refuses afterwards all go to the other: 0 of 1,000
    fail."""
    pa, pb = free_port(), free_port()
    a = backend(f"127.0.0.1:{pa}", "A", 0.02)
    backend(f"127.0.0.1:{pb}", "B", 0.02)
    s = xitzin(pool("/app", [f"127.0.0.1:{pa}", f"127.0.0.1:{pb}"],
                    fail_timeout=60))
    start = time.time()
    replies = load(s, "/app/x", 1000, 16, during=a.kill)
    took = time.time() - start
    a.wait()
    failed = [r for r in replies
              if isinstance(r, Exception) or r.status != 20]
    by = {}
    for r in replies:
        if not isinstance(r, Exception) and r.status == 20:
            by[r.body] = by.get(r.body, 0) + 1
    log = s.log()
    retried = log.count("before answering")
    refused = len(re.findall(r"scgi 127\.0\.0\.1:\d+: .*: connect", log))
    refused += log.count("sending the request")
    print(f"\nkill -9 of 1 of 2 backends under load: {len(replies)} "
          f"requests, {len(failed)} failed, A answered {by.get(b'A', 0)}, "
          f"B {by.get(b'B', 0)}; {retried} taken back unanswered and "
          f"{refused} refused (connect or send) passed on; {took:.1f}s")
    assert len(replies) == 1000
    assert failed == [], failed[:3]
    assert by.get(b"A", 0) > 0 and by.get(b"B", 0) > by.get(b"A", 0)


def test_hanging_connect_fails_over_after_connect_timeout(xitzin, backend,
                                                          tmp_path):
    """A backend whose accept queue is full drops our SYNs: the connect
    hangs. After connect_timeout the request goes to the other backend,
    and the hanging one rests (no second wait)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    hang = lsock.getsockname()
    fillers = []
    while len(fillers) < 16:  # fill the queue until a connect hangs
        f = socket.socket()
        f.setblocking(False)
        fillers.append(f)
        try:
            f.connect(hang)
        except BlockingIOError:
            pass
        import select
        _, w, _ = select.select([], [f], [], 0.3)
        if not w:
            break
    else:
        raise AssertionError("the accept queue never filled")
    pb = free_port()
    backend(f"127.0.0.1:{pb}", "B")
    try:
        s = xitzin(pool("/app", [f"127.0.0.1:{hang[1]}", f"127.0.0.1:{pb}"],
                        balance="round_robin", connect_timeout=1,
                        timeout=60))
        times = []
        for _ in range(4):
            t = time.time()
            r = get(s, "/app/x")
            times.append(time.time() - t)
            assert (r.status, r.body) == (20, b"B"), r
        slow = [t for t in times if t >= 0.9]
        print(f"\nhanging backend: request times {[round(t, 2) for t in times]}")
        # One request waited the connect_timeout (not the 60 s timeout);
        # the others found the hanging backend resting.
        assert len(slow) == 1 and slow[0] < 30 * SLOW
        assert "connect timed out after 1s" in s.log()
    finally:
        for f in fillers:
            f.close()
        lsock.close()


def test_recovery_after_fail_timeout(xitzin, backend):
    """A killed backend rests fail_timeout; restarted, it gets requests
    again once the rest is over."""
    pa, pb = free_port(), free_port()
    a = backend(f"127.0.0.1:{pa}", "A")
    backend(f"127.0.0.1:{pb}", "B")
    s = xitzin(pool("/app", [f"127.0.0.1:{pa}", f"127.0.0.1:{pb}"],
                    fail_timeout=1))
    assert {get(s, "/app/x").body for _ in range(4)} == {b"A", b"B"}
    a.kill()
    a.wait()
    bodies = [get(s, "/app/x") for _ in range(6)]
    assert all((r.status, r.body) == (20, b"B") for r in bodies), bodies
    backend(f"127.0.0.1:{pa}", "A")
    seen, deadline = set(), time.time() + 20 * SLOW
    while b"A" not in seen and time.time() < deadline:
        r = get(s, "/app/x")
        assert r.status == 20, r
        seen.add(r.body)
        time.sleep(0.1)
    assert b"A" in seen, "A never came back"
    assert "resting for 1s after failures" in s.log()


def wait_lines(path, n):
    deadline = time.time() + 20 * SLOW
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path}: never {n} requests")


def queue_raw(server, path):
    """A request over TLS whose answer is never read."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(f"gemini://localhost{path}\r\n".encode())
    return s


def reset(s):
    """Ends s with a TCP reset (SO_LINGER 0): the server sees an error."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    s.close()
    return True


def test_max_conns_and_queue_answer_44(xitzin, backend, tmp_path):
    """max_conns 1, queue_size 1: one request at the backend (held there
    until the test opens its gate), one waiting, a third is 44 at once
    with the seconds to wait; the waiting one's client goes away, and
    the next request waits in its place and gets the slot when it frees.
    Elsewhere, a wait past queue_timeout is 44 too."""
    gate_a, gate_b = tmp_path / "gate-a", tmp_path / "gate-b"
    pa, pb = free_port(), free_port()
    backend(f"127.0.0.1:{pa}", "a", f"gate:{gate_a}")
    backend(f"127.0.0.1:{pb}", "b", f"gate:{gate_b}")
    s = xitzin(pool("/a", [f"127.0.0.1:{pa}"], max_conns=1, queue_size=1,
                    queue_timeout=60)
               + pool("/b", [f"127.0.0.1:{pb}"], max_conns=1, queue_size=1,
                      queue_timeout=1))
    replies = {}

    def fetch(path):
        replies[path] = get(s, path, timeout=60)

    def start(path):
        t = threading.Thread(target=fetch, args=(path,))
        t.start()
        return t

    # /a: one at the backend, one queued, the third refused at once.
    threads = [start("/a/1")]
    wait_lines(tmp_path / "gate-a.log", 1)
    queued = queue_raw(s, "/a/2")
    time.sleep(1.0 * SLOW)  # time to reach the queue
    t = time.time()
    third = get(s, "/a/3")
    fast = time.time() - t
    assert (third.status, third.meta) == (44, "60"), third
    assert fast < 5 * SLOW, "a full queue answers at once"
    again = get(s, "/a/3")  # answered as well, not logged again
    assert (again.status, again.meta) == (44, "60"), again
    # The queued client resets its connection: its place is given up,
    # and the next request waits there instead of being refused.
    client_reset = reset(queued)
    threads.append(start("/a/4"))
    time.sleep(1.0 * SLOW)
    gate_a.touch()
    for th in threads:
        th.join()
    assert (replies["/a/1"].status, replies["/a/1"].body) == (20, b"a")
    assert client_reset
    assert (replies["/a/4"].status, replies["/a/4"].body) == (20, b"a")
    assert len((tmp_path / "gate-a.log").read_text().splitlines()) == 2
    # /b: the queued one waits queue_timeout (1 s), then 44.
    threads = [start("/b/1")]
    wait_lines(tmp_path / "gate-b.log", 1)
    t = time.time()
    queued = get(s, "/b/2")
    waited = time.time() - t
    assert (queued.status, queued.meta) == (44, "1"), queued
    assert waited >= 0.9
    gate_b.touch()
    threads[0].join()
    assert replies["/b/1"].status == 20
    print(f"\nqueue: full answered in {fast:.3f}s, timed out after "
          f"{waited:.2f}s")
    log = s.log()
    assert log.count("queue full, answered 44 (1 since the last such "
                     "line; logged once a minute)") == 1, log
    assert "waited queue_timeout for a free backend, answered 44" in log


def test_no_retry_once_an_upload_went_out(xitzin, backend):
    """A backend that closes without a word: a Gemini request goes on to
    the next backend, a Titan upload whose body went out does not (it
    cannot be sent again): 43."""
    pm, pg = free_port(), free_port()
    backend(f"127.0.0.1:{pm}", "mute", "mute")
    backend(f"127.0.0.1:{pg}", "good")
    # Round robin starts at the first backend: the mute one.
    s = xitzin(pool("/app", [f"127.0.0.1:{pm}", f"127.0.0.1:{pg}"],
                    balance="round_robin", max_fails=0, titan="true"))
    body = b"u" * 100000
    r = s.raw(b"titan://localhost/app/x;size=100000\r\n" + body)
    assert (r.status, r.meta) == (43, "SCGI backend error"), r
    r = s.raw(b"titan://localhost/app/x;size=100000\r\n" + body)
    assert (r.status, r.body) == (20, b"good"), r
    r = get(s, "/app/x")  # the mute one first again, then the good one
    assert (r.status, r.body) == (20, b"good"), r
    assert "before answering" in s.log()


def test_tcp_and_unix_in_one_pool(xitzin, tmp_path):
    """The document's simple Python server (TCP) and a Perl SCGI server
    (Unix socket) behind one mount: both answer."""
    port = free_port()
    sock = tmp_path / "perl.sock"
    procs = [subprocess.Popen([PYTHON, str(EXAMPLES / "simple_server.py"),
                               str(port)], stdout=subprocess.PIPE, text=True),
             subprocess.Popen(["perl", str(EXAMPLES / "perl_backend.pl"),
                               str(sock)], stdout=subprocess.PIPE, text=True)]
    try:
        for p in procs:
            assert "listening on" in p.stdout.readline()
        s = xitzin(pool("/app", [f"127.0.0.1:{port}", f"unix:{sock}"]))
        bodies = [get(s, "/app/page").body for _ in range(8)]
        assert any(b"# SCGI Response" in b for b in bodies), bodies
        assert any(b"# Hello from Perl" in b for b in bodies), bodies
        assert all(b"Path: /page" in b for b in bodies)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
            p.stdout.close()


BROKEN = [
    ("backend = nocolon\n",
     ":3: backend nocolon: not host:port, [address]:port or unix:PATH"),
    ("backend = 127.0.0.1:0\n", ":3: backend 127.0.0.1:0: port not in"),
    ("backend = unix:\n", ":3: backend unix:: socket path empty"),
    ("backend = 127.0.0.1:4000\nhost = 127.0.0.1\nport = 4000\n",
     ":2: [scgi /app]: give backend keys, or host and port, or socket"),
    ("backend = 127.0.0.1:4000\nmax_conns = -1\n",
     ":4: max_conns: invalid value '-1'"),
    ("backend = 127.0.0.1:4000\nbalance = random\n",
     ":4: balance: invalid value 'random'"),
    ("backend = 127.0.0.1:4000\nqueue_timeout = 0\n",
     ":4: queue_timeout: invalid value '0'"),
    ("backend = nosuch.invalid:4000\n", ":2: [scgi /app]: host "
     "nosuch.invalid does not resolve"),
]


@pytest.mark.parametrize("body,want", BROKEN)
def test_config_check(tmp_path, body, want):
    conf = tmp_path / "x.conf"
    conf.write_text("[server]\n[scgi /app]\n" + body)
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert f"x.conf{want}" in r.stderr, r.stderr


def test_config_check_good_pool(tmp_path):
    conf = tmp_path / "x.conf"
    conf.write_text("[server]\n[scgi /app]\nbackend = 127.0.0.1:4000\n"
                    "backend = unix:app.sock\nbackend = [::1]:4001\n"
                    "balance = round_robin\nmax_fails = 2\nfail_timeout = 5\n"
                    "connect_timeout = 2\nmax_conns = 10\nqueue_size = 20\n"
                    "queue_timeout = 3\n")
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_failures_counted_per_backend_in_metrics(xitzin, backend):
    """A pool's dead member is counted by name in the metrics; the live
    one, which answered everything, shows no failure."""
    from test_metrics import metrics_port, scrape_when, value

    live, dead = free_port(), free_port()  # nothing listens on dead
    backend(f"127.0.0.1:{live}", "L")
    s = xitzin("[server]\nmetrics_listen = 127.0.0.1:0\n" +
               pool("/app", [f"127.0.0.1:{dead}", f"127.0.0.1:{live}"]))
    mport = metrics_port(s)
    replies = [get(s, "/app/x") for _ in range(5)]
    assert all((r.status, r.body) == (20, b"L") for r in replies), replies

    def counted(smp):
        return value(smp, "xitzin_requests_total", mount="/app",
                     status="20") == 5

    _, _, smp = scrape_when(mport, counted)
    assert counted(smp)
    name = "xitzin_backend_failures_total"
    # max_fails = 1: one refused connect, then it rests (fail_timeout 10).
    assert value(smp, name, backend=f"127.0.0.1:{dead}", kind="connect") == 1
    assert value(smp, name, backend=f"127.0.0.1:{live}", kind="connect") == 0


def test_silent_backend_rests_after_its_timeout(xitzin, backend):
    """A backend that takes requests and never answers costs the request
    it had (43 after timeout: too late to try another), then rests for
    fail_timeout like one that refuses: the next requests go to the
    other."""
    ps, pg = free_port(), free_port()
    backend(f"127.0.0.1:{ps}", "silent", 60)
    backend(f"127.0.0.1:{pg}", "good")
    s = xitzin(pool("/app", [f"127.0.0.1:{ps}", f"127.0.0.1:{pg}"],
                    timeout=1, fail_timeout=60))
    replies = [get(s, "/app/x") for _ in range(6)]
    assert [r.status for r in replies].count(43) == 1, replies
    assert all(r.body == b"good" for r in replies if r.status == 20)
    assert f"scgi 127.0.0.1:{ps}: resting for 60s after failures" in s.log()
