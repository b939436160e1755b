"""Half-closed clients are still answered (issue 11, point 2).

After its request a client may stop sending but go on reading: a TLS 1.3
close_notify (RFC 8446, 6.1: the other side may still write) or a TCP FIN
(shutdown(SHUT_WR)). Every handler must still deliver its whole answer
then: static files (small, and large enough to go out as the client takes
them), CGI, SCGI (held and streamed) and C routes, the asynchronous one
included. Only a reset or a failed write means the client is gone.

Python's SSLSocket cannot half-close (its shutdown() drops the TLS
object), so the client here drives an SSLObject over memory BIOs on a
plain socket: close_notify is written with unwrap() and the answer is
still read after it.
"""

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from conftest import BUILD_DIR, SLOW, client_context, SERVE_FOREVER

ROUTES = BUILD_DIR / "routes-server"
BIG = 2 * 1024 * 1024

# Reads one SCGI request, waits DELAY seconds (so that the client's
# half-close reaches the server first), then answers SIZE bytes of body.
SLOW_SCGI = r'''
import socket, sys, threading, time
delay, size = float(sys.argv[1]), int(sys.argv[2])

def serve(c):
    data = b""
    while b":" not in data:
        data += c.recv(65536)
    colon = data.index(b":")
    while len(data) < colon + 2 + int(data[:colon]):
        data += c.recv(65536)
    time.sleep(delay)
    c.sendall(b"20 application/octet-stream\r\n" + b"s" * size)
    c.close()

''' + SERVE_FOREVER


def half_closed_get(port, url, how, tls_max=None):
    """Sends the request line, half-closes (how: "close_notify" or "fin"),
    then reads the answer to its end. Returns (raw bytes, clean) where
    clean means the server ended with close_notify."""
    ctx = client_context(tls_max=tls_max)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", port), timeout=20 * SLOW)

    def pump_out():
        data = out.read()
        if data:
            sock.sendall(data)

    def pump_in():
        data = sock.recv(65536)
        if not data:
            inc.write_eof()
        else:
            inc.write(data)
        return bool(data)

    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump_out()
                pump_in()
        pump_out()
        obj.write((url + "\r\n").encode())
        pump_out()
        if how == "close_notify":
            try:
                obj.unwrap()  # writes close_notify, waits for the server's
            except ssl.SSLWantReadError:
                pass
            pump_out()
        else:
            sock.shutdown(socket.SHUT_WR)
        chunks, clean = [], False
        while True:
            try:
                d = obj.read(65536)
                if not d:
                    clean = True
                    break
                chunks.append(d)
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                clean = True
                break
            except (ssl.SSLEOFError, ssl.SSLError):
                break
            try:
                if not pump_in():
                    continue  # the BIO's EOF makes read() say how it ended
            except ConnectionResetError:
                break
        return b"".join(chunks), clean
    finally:
        sock.close()


def assert_answer(raw, clean, body, meta=None):
    head, _, got = raw.partition(b"\r\n")
    assert head.startswith(b"20"), raw[:200]
    if meta is not None:
        assert head == b"20 " + meta, head
    assert len(got) == len(body), (len(got), len(body))
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    assert clean, "the answer ended without close_notify"


HOWS = ["close_notify", "fin"]


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "capsule"
    root.mkdir()
    (root / "small.txt").write_bytes(b"small\n")
    (root / "big.bin").write_bytes(os.urandom(BIG))
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    script = cgi / "slow.sh"
    # The sleep lets the client's half-close arrive before the answer.
    script.write_text("#!/bin/sh\nsleep 0.3\n"
                      "printf '20 text/plain\\r\\n'\necho cgi\n")
    script.chmod(0o755)
    script = cgi / "big.sh"
    script.write_text("#!/bin/sh\nsleep 0.3\n"
                      "printf '20 text/plain\\r\\n'\n"
                      "head -c 1048576 /dev/zero\n")
    script.chmod(0o755)
    return tmp_path


@pytest.fixture
def slow_scgi(tmp_path):
    procs = []

    def start(delay, size):
        script = tmp_path / "slow_scgi.py"
        script.write_text(SLOW_SCGI)
        p = subprocess.Popen([sys.executable, str(script), str(delay),
                              str(size)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stdout.readline()
        assert line.startswith("ready"), line
        return int(line.split()[1])

    yield start
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        p.stdout.close()


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("tls", [ssl.TLSVersion.TLSv1_3,
                                 ssl.TLSVersion.TLSv1_2])
def test_static_files(xitzin, site, how, tls):
    s = xitzin(f"[static /]\nroot = {site / 'capsule'}\n")
    for name in ("small.txt", "big.bin"):
        raw, clean = half_closed_get(s.port, f"gemini://localhost/{name}",
                                     how, tls_max=tls)
        assert_answer(raw, clean, (site / "capsule" / name).read_bytes())
    assert "client went away" not in s.log()


@pytest.mark.parametrize("how", HOWS)
def test_cgi(xitzin, site, how):
    s = xitzin(f"[cgi /cgi-bin]\nroot = {site / 'cgi'}\n"
               f"[cgi /stream]\nroot = {site / 'cgi'}\n"
               "max_response_size = 0\n")
    raw, clean = half_closed_get(s.port, "gemini://localhost/cgi-bin/slow.sh",
                                 how)
    assert_answer(raw, clean, b"cgi\n", b"text/plain")
    raw, clean = half_closed_get(s.port, "gemini://localhost/stream/big.sh",
                                 how)
    assert_answer(raw, clean, bytes(1 << 20), b"text/plain")
    assert "client went away" not in s.log()


@pytest.mark.parametrize("how", HOWS)
def test_scgi_held_and_streamed(xitzin, slow_scgi, how):
    small = slow_scgi(0.3, 1000)
    big = slow_scgi(0.3, 3 << 20)
    s = xitzin(f"[scgi /held]\nhost = 127.0.0.1\nport = {small}\n"
               f"[scgi /stream]\nhost = 127.0.0.1\nport = {big}\n"
               "max_response_size = 0\n")
    raw, clean = half_closed_get(s.port, "gemini://localhost/held", how)
    assert_answer(raw, clean, b"s" * 1000)
    raw, clean = half_closed_get(s.port, "gemini://localhost/stream", how)
    assert_answer(raw, clean, b"s" * (3 << 20))
    assert "client went away" not in s.log()


@pytest.fixture
def routes(tmp_path):
    """The C routes server (tests/e2e/routes_server.c) on a free port."""
    crt, key = tmp_path / "r.crt", tmp_path / "r.key"
    log = open(tmp_path / "routes.log", "w")
    p = subprocess.Popen([str(ROUTES), "127.0.0.1:0", str(crt), str(key)],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()
    m = re.search(r"port (\d+)", line)
    assert m, line
    yield int(m.group(1)), tmp_path / "routes.log"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20 * SLOW) == 0
    p.stdout.close()
    log.close()
    text = (tmp_path / "routes.log").read_text()
    assert "Sanitizer" not in text and "runtime error" not in text, text


@pytest.mark.parametrize("how", HOWS)
def test_c_routes_sync_and_async(routes, how):
    port, log = routes
    raw, clean = half_closed_get(port, "gemini://localhost/sync", how)
    assert_answer(raw, clean, b"sync\n", b"text/gemini")
    raw, clean = half_closed_get(port, "gemini://localhost/later", how)
    assert_answer(raw, clean, b"later\n", b"text/gemini")
    raw, clean = half_closed_get(port, "gemini://localhost/big", how)
    assert_answer(raw, clean, b"b" * (1 << 20))
    assert "client went away" not in log.read_text()


def test_a_reset_still_cancels(routes):
    """A reset (not a half-close) ends the request: the async route is
    cancelled and the server goes on answering."""
    port, log = routes
    ctx = client_context()
    raw = socket.create_connection(("127.0.0.1", port))
    c = ctx.wrap_socket(raw, server_hostname="localhost")
    c.sendall(b"gemini://localhost/later\r\n")
    time.sleep(0.05)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    c.close()
    deadline = time.time() + 10 * SLOW
    while "reset" not in log.read_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "client went away (reset)" in log.read_text()
    raw, clean = half_closed_get(port, "gemini://localhost/sync", "fin")
    assert_answer(raw, clean, b"sync\n", b"text/gemini")


def open_half_closed(port, url, how):
    """A connection that sent url and then half-closed (how); returns the
    plain socket, for the caller to reset."""
    ctx = client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", port), timeout=20 * SLOW)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            inc.write(sock.recv(65536))
    sock.sendall(out.read())
    obj.write((url + "\r\n").encode())
    sock.sendall(out.read())
    time.sleep(0.2)  # the half-close comes on its own, after the request
    if how == "close_notify":
        try:
            obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(out.read())
    else:
        sock.shutdown(socket.SHUT_WR)
    return sock


@pytest.mark.parametrize("how", HOWS)
def test_a_reset_after_a_half_close_ends_the_request(xitzin, tmp_path, how):
    """Half-closed, then reset while the script still works and nothing
    is written: the reset is seen all the same, and the script killed."""
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    script = cgi / "long.sh"
    pidfile = tmp_path / "pid"
    script.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    script.chmod(0o755)
    s = xitzin(f"[cgi /cgi-bin]\nroot = {cgi}\ntimeout = 120\n")
    sock = open_half_closed(s.port, "gemini://localhost/cgi-bin/long.sh",
                            how)
    deadline = time.time() + 10 * SLOW
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.time() < deadline, "the script never started"
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    time.sleep(0.3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    sock.close()
    deadline = time.time() + 15 * SLOW
    while "client went away (reset)" not in s.log():
        assert time.time() < deadline, s.log()
        time.sleep(0.1)
    while os.path.exists(f"/proc/{pid}"):
        assert time.time() < deadline, f"script {pid} still there"
        time.sleep(0.1)
