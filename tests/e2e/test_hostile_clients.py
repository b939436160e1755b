"""Hostile clients against the real program: each scenario runs beside
legitimate requests, which must all be answered, and the server's memory
must stay bounded. Every loop here is bounded in count and time."""

import os
import resource
import socket
import ssl
import struct
import threading
import time

from conftest import SANITIZED, SLOW, client_context, measured_env

# Under ASan, memory is shadowed and quarantined: compare loosely.
RSS_SLACK_KIB = (256 if SANITIZED else 48) * 1024


def static(capsule, extra=""):
    return f"[server]\n{extra}\n[static /]\nroot = {capsule}\n"


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def assert_served(s):
    r = s.get("/hello.txt")
    assert (r.status, r.body, r.close_notify) == (20, b"hello\n", True)


def test_slowloris_is_dropped_at_the_request_timeout(xitzin, capsule):
    """2,000 connections that never finish their request line."""
    raise_nofile(8192)
    s = xitzin(static(capsule, "request_timeout = 2"))
    idle = []
    for i in range(2000):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"\x16\x03\x01")  # the start of a ClientHello, no more
        idle.append(c)
    # Others are still served while they hang.
    for _ in range(5):
        assert_served(s)
    print(f"FIGURE slowloris: 2000 held, RSS {s.rss_kib()} KiB, "
          f"anon {s.anon_kib()} KiB, 5/5 others answered")
    deadline = time.time() + 30 * SLOW
    dropped = 0
    for c in idle:
        c.settimeout(max(0.1, deadline - time.time()))
        try:
            if c.recv(1) == b"":
                dropped += 1
        except (ConnectionResetError, socket.timeout):
            pass
        c.close()
    assert dropped == 2000
    assert_served(s)


def test_non_tls_bytes(xitzin, capsule):
    # Some junk looks like the start of a long record (random bytes with
    # the high bit set read as an SSLv2 hello): that waits for the rest
    # until request_timeout, then is dropped like any silent client.
    s = xitzin(static(capsule, "request_timeout = 2"))
    for junk in [b"gemini://localhost/\r\n", b"GET / HTTP/1.0\r\n\r\n",
                 os.urandom(4096), b"\x00" * 100]:
        with socket.create_connection(("127.0.0.1", s.port)) as c:
            c.settimeout(10 * SLOW)
            c.sendall(junk)
            try:
                data = c.recv(4096)
            except ConnectionResetError:
                data = b""
            # At most a TLS alert record (type 21), never a Gemini answer.
            assert data == b"" or data[0] == 21, data[:20]
    assert_served(s)


def test_handshake_that_stops_halfway(xitzin, capsule):
    s = xitzin(static(capsule, "request_timeout = 1"))
    ctx = client_context()
    inbuf, outbuf = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inbuf, outbuf, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    with socket.create_connection(("127.0.0.1", s.port)) as c:
        c.sendall(outbuf.read())  # ClientHello only
        c.settimeout(10 * SLOW)
        got = c.recv(65536)
        assert got and got[0] == 22  # the server's flight
        # ... and then nothing: the server drops us at the timeout.
        while True:
            try:
                d = c.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
    assert_served(s)


def rst_close(sock):
    """Closes with a TCP reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def test_abrupt_resets_at_every_phase(xitzin, capsule):
    big = os.urandom(8 << 20)
    (capsule / "big.bin").write_bytes(big)
    s = xitzin(static(capsule))
    ctx = client_context()
    for phase in range(4):
        for _ in range(10):
            raw = socket.create_connection(("127.0.0.1", s.port))
            if phase == 0:  # before any byte
                rst_close(raw)
                continue
            if phase == 1:  # mid-handshake
                raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                rst_close(raw)
                continue
            c = ctx.wrap_socket(raw, server_hostname="localhost")
            if phase == 2:  # after the handshake, before the request
                rst_close(c)
                continue
            c.sendall(b"gemini://localhost/big.bin\r\n")  # mid-response
            c.recv(1000)
            rst_close(c)
    assert_served(s)


def test_clients_that_never_read(xitzin, capsule):
    """Memory stays bounded: the server does not buffer whole responses
    (files are mapped, not copied) and drops them at write_timeout."""
    big = os.urandom(32 << 20)
    (capsule / "big.bin").write_bytes(big)
    s = xitzin(static(capsule, "write_timeout = 2"), env=measured_env())
    assert_served(s)
    base = s.anon_kib()
    ctx = client_context()
    stuck = []
    for _ in range(50):
        raw = socket.create_connection(("127.0.0.1", s.port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c = ctx.wrap_socket(raw, server_hostname="localhost")
        c.sendall(b"gemini://localhost/big.bin\r\n")
        stuck.append(c)
    time.sleep(1)
    peak = s.anon_kib()
    assert_served(s)
    print(f"FIGURE never-read: 50 x 32 MiB, anon {base} -> {peak} KiB")
    assert peak - base < RSS_SLACK_KIB, (base, peak)
    # They are all dropped once they have taken nothing for write_timeout
    # (reading now would let them go on: so wait, reading nothing).
    deadline = time.time() + 30 * SLOW
    while s.log().count("write timeout") < 50 and time.time() < deadline:
        time.sleep(0.2)
    assert s.log().count("write timeout") == 50
    for c in stuck:
        c.close()
    assert_served(s)


def test_open_close_loop_returns_to_baseline(xitzin, capsule):
    """20,000 connections opened and closed; memory comes back."""
    s = xitzin(static(capsule), env=measured_env())
    assert_served(s)
    for _ in range(2000):  # warm the allocator first
        socket.create_connection(("127.0.0.1", s.port)).close()
    time.sleep(0.5)
    base = s.rss_kib()

    def churn(n):
        for _ in range(n):
            try:
                socket.create_connection(("127.0.0.1", s.port)).close()
            except OSError:
                pass

    threads = [threading.Thread(target=churn, args=(5000,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1)
    after = s.rss_kib()
    assert_served(s)
    print(f"FIGURE open-close: 20000 connections, RSS {base} -> {after} KiB")
    assert after - base < RSS_SLACK_KIB / 4, (base, after)


def wait_dropped(c):
    """True when the server closed c without a word."""
    c.settimeout(10 * SLOW)
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_global_connection_limit(xitzin, capsule):
    s = xitzin(static(capsule, "max_connections = 20\nrequest_timeout = 30"))
    held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(20)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", s.port))
    assert wait_dropped(extra)  # over the limit: closed at once
    extra.close()
    held.pop().close()
    time.sleep(0.3)
    assert_served(s)  # a place came free
    for c in held:
        c.close()


def test_per_address_limit(xitzin, capsule):
    s = xitzin(static(capsule, "max_connections_per_address = 5\n"
                               "request_timeout = 30"))
    held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(5)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", s.port))
    assert wait_dropped(extra)
    extra.close()
    # Another address (127.0.0.2 is loopback too) has its own count.
    other = socket.create_connection(("127.0.0.1", s.port),
                                     source_address=("127.0.0.2", 0))
    ctx = client_context()
    with ctx.wrap_socket(other, server_hostname="localhost") as c:
        c.sendall(b"gemini://localhost/hello.txt\r\n")
        assert c.recv(100).startswith(b"20 ")
    for c in held:
        c.close()
    time.sleep(0.3)
    assert_served(s)
