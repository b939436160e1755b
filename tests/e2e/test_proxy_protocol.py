"""PROXY protocol v1 and v2 on listeners that ask for it
(listen = ... proxy_protocol=v1|v2|any), through the real server and real
TLS: the header's client is REMOTE_ADDR/REMOTE_PORT, the access log's
address, the per-address connection count and the rate limit's key; the
ClientHello may come in the same segment as the header; a v2 LOCAL
(a health check) keeps the peer; a bad, cut or missing header closes the
connection with nothing written and one log line; a listener without
proxy_protocol treats a PROXY line as today (a failed handshake)."""

import re
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import SLOW, Reply, client_context
from conftest import free_port, get_from

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"

CGI = """#!/bin/sh
printf '20 text/plain\\r\\n'
echo "$REMOTE_ADDR $REMOTE_PORT"
"""


def v1(src, sport, dst=None, dport=1965):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("::1" if ":" in src else "127.0.0.1")
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, sport, dst=None, dport=1965, tlvs=b"", local=False):
    dst = dst or ("::1" if ":" in src else "127.0.0.1")
    if local:
        return V2SIG + b"\x20\x00" + struct.pack("!H", len(tlvs)) + tlvs
    if ":" in src:
        fam = b"\x21"
        addrs = socket.inet_pton(socket.AF_INET6, src) + \
            socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam = b"\x11"
        addrs = socket.inet_pton(socket.AF_INET, src) + \
            socket.inet_pton(socket.AF_INET, dst)
    block = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2SIG + b"\x21" + fam + struct.pack("!H", len(block)) + block


def proxied(port, header, path="/cgi-bin/env", split=False, hold=False):
    """header, then a TLS request over a memory BIO, so that the
    ClientHello can go in the same segment as the header (split=False)
    or after a pause (split=True). hold: return the socket and TLS object
    after the handshake, without a request."""
    ctx = client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    try:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        if split:
            sock.sendall(header)
            time.sleep(0.1)
            sock.sendall(hello)
        else:
            sock.sendall(header + hello)
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            inc.write(data)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            finally:
                if out.pending:
                    sock.sendall(out.read())
        if out.pending:
            sock.sendall(out.read())
        if hold:
            return sock, tls
        tls.write(f"gemini://localhost{path}\r\n".encode())
        sock.sendall(out.read())
        chunks, close_notify = [], False
        while True:
            try:
                data = tls.read(65536)
                if not data:   # close_notify
                    close_notify = True
                    break
                chunks.append(data)
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                close_notify = True
                break
            data = sock.recv(65536)
            if not data:
                break
            inc.write(data)
        return Reply(b"".join(chunks), close_notify)
    finally:
        if not hold:
            sock.close()


def refused(port, data, shut=False, wait=10):
    """Sends data; returns what came back before the server closed, and
    how long that took."""
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=wait * SLOW) as s:
        if data:
            s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except ConnectionResetError:
            pass
    return got, time.time() - t0


def ports(s):
    return [int(p) for p in
            re.findall(r"listening on \S+ port (\d+)", s.log())]


def wait_log(s, pattern, count=1):
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline:
        found = re.findall(pattern, s.log())
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} x{count} not in the log:\n{s.log()}")


@pytest.fixture
def server(xitzin, tmp_path):
    """Listeners: v1, v2, any, and one without a PROXY header."""
    root = tmp_path / "cgi-bin"
    root.mkdir()
    (root / "env").write_text(CGI)
    (root / "env").chmod(0o755)

    def start(extra="", args=()):
        s = xitzin("[server]\n"
                   "listen = 127.0.0.1:0 proxy_protocol=v1\n"
                   "listen = 127.0.0.1:0 proxy_protocol=v2\n"
                   "listen = 127.0.0.1:0 proxy_protocol=any\n"
                   "listen = 127.0.0.1:0\n" + extra +
                   f"[cgi /cgi-bin]\nroot = {root}\n", args=args)
        deadline = time.time() + 10 * SLOW
        while len(ports(s)) < 4 and time.time() < deadline:
            time.sleep(0.02)
        s.p1, s.p2, s.pany, s.plain = ports(s)
        return s
    return start


@pytest.mark.parametrize("split", [False, True])
def test_v1_and_v2_headers_give_the_client_address(server, split):
    s = server()
    cases = [
        (s.p1, v1("192.0.2.7", 56324), "192.0.2.7 56324"),
        (s.p1, v1("2001:db8::7", 443), "2001:db8::7 443"),
        (s.p2, v2("198.51.100.9", 40000), "198.51.100.9 40000"),
        (s.p2, v2("2001:db8::9", 1), "2001:db8::9 1"),
        # TLVs (ALPN, authority, NOOP) are skipped.
        (s.p2, v2("203.0.113.5", 5, tlvs=b"\x01\x00\x06gemini"
                  b"\x02\x00\x09localhost\x04\x00\x00"), "203.0.113.5 5"),
        (s.pany, v1("192.0.2.8", 8), "192.0.2.8 8"),
        (s.pany, v2("192.0.2.9", 9), "192.0.2.9 9"),
    ]
    for port, header, want in cases:
        r = proxied(port, header, split=split)
        assert r.status == 20 and r.close_notify, (header, r)
        assert r.body.decode().strip() == want, (header, r.body)
    # The access log has the header's client, not the proxy's.
    for addr in ("192.0.2.7", "2001:db8::7", "198.51.100.9", "203.0.113.5"):
        wait_log(s, re.escape(addr) + r' "gemini://localhost/cgi-bin/env" 20')
    assert "bad PROXY header" not in s.log()


def test_v1_unknown_and_v2_local_keep_the_peer(server):
    s = server()
    for port, header in ((s.p1, b"PROXY UNKNOWN\r\n"),
                         (s.p2, v2("", 0, local=True)),
                         (s.pany, v2("", 0, local=True))):
        r = proxied(port, header)
        assert r.status == 20, (header, r)
        addr, port_ = r.body.decode().split()
        assert addr == "127.0.0.1" and int(port_) > 0, r.body
    # A health check: LOCAL, then nothing; or connect and close. Quiet.
    assert refused(s.p2, v2("", 0, local=True), shut=True)[0] == b""
    assert refused(s.pany, b"", shut=True)[0] == b""
    time.sleep(0.3)
    assert "bad PROXY header" not in s.log()


def test_bad_headers_are_closed_with_nothing_written_and_logged_once(server):
    s = server()
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64
    bad = [
        (s.p1, b"GET / HTTP/1.0\r\n\r\n"),
        (s.p1, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
        (s.p1, b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
        (s.p1, v2("192.0.2.1", 1)),
        (s.p2, v1("192.0.2.1", 1)),
        (s.p2, V2SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12),   # UDP
        (s.p2, V2SIG + b"\x21\x11\x00\x0e" + b"\x00" * 14),   # TLV cut
        (s.p2, V2SIG + b"\x21\x11\xff\xff"),                  # too long
        (s.pany, hello),                                      # no header
        (s.pany, b"PROXY " + b"x" * 120),                     # no CRLF
        (s.pany, b"gemini://localhost/\r\n"),
    ]
    for port, data in bad:
        got, took = refused(port, data)
        assert got == b"", (data, got)
        assert took < 3 * SLOW, (data, took)   # at once, not a timeout
    lines = wait_log(s, r"bad PROXY header: .*", len(bad))
    assert len(lines) == len(bad), lines
    # Shown, never as raw bytes: text escaped, binary in hex.
    assert '(18 bytes: "GET / HTTP/1.0\\r\\n\\r\\n")' in s.log()
    assert "(75 bytes: 16030102000100" in s.log()
    assert "(126 bytes: \"PROXY xxx" in s.log()
    assert "\x16" not in s.log() and "\r" not in s.log()
    # The server still serves.
    assert proxied(s.p1, v1("192.0.2.7", 1)).status == 20


def test_cut_and_slow_headers(server):
    s = server("request_timeout = 1\n")
    # Cut: the client closes in the middle of the header.
    got, _ = refused(s.p1, b"PROXY TCP4 192.0.2.1 ", shut=True)
    assert got == b""
    wait_log(s, r"bad PROXY header: cut short \(21 bytes")
    got, _ = refused(s.p2, v2("192.0.2.1", 1)[:20], shut=True)
    assert got == b""
    wait_log(s, r"bad PROXY header: cut short \(20 bytes")
    # Slow: part of a header (or none), then nothing until request_timeout.
    for port, data in ((s.p1, b"PROXY TCP4 1"), (s.p2, V2SIG[:5]),
                       (s.pany, b"")):
        got, took = refused(port, data)
        assert got == b"", (data, got)
        assert 0.8 <= took < 5 * SLOW, (data, took)
    lines = wait_log(s, r"bad PROXY header: no whole header within "
                        r"request_timeout \((\d+) bytes", 3)
    assert sorted(lines) == ["0", "12", "5"], lines
    assert len(re.findall("bad PROXY header", s.log())) == 5
    # A header whose TLS never follows: the handshake's own timeout.
    sock = socket.create_connection(("127.0.0.1", s.p2))
    sock.sendall(v2("192.0.2.1", 1))
    sock.settimeout(5 * SLOW)
    assert sock.recv(10) == b""
    sock.close()


def test_plain_listener_refuses_a_proxy_line_as_before(server):
    s = server()
    got, took = refused(s.plain, v1("192.0.2.7", 1))
    # No Gemini answer: a TLS alert at most, then the end.
    assert not got or got[0] == 0x15, got
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        proxied(s.plain, v2("192.0.2.7", 1))
    assert "PROXY" not in s.log().split("connections)")[-1]


def test_per_address_limit_counts_the_header_address(server):
    s = server("max_connections_per_address = 2\nrequest_timeout = 20\n")
    held = [proxied(s.p2, v2("192.0.2.1", 1000 + i), hold=True)
            for i in range(2)]
    try:
        # A third from 192.0.2.1: closed before TLS.
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            proxied(s.p2, v2("192.0.2.1", 1002))
        # Another client behind the same proxy, and the proxy's own
        # address directly, are not 192.0.2.1.
        assert proxied(s.p1, v1("192.0.2.2", 1)).status == 20
        assert proxied(s.pany, v1("192.0.2.3", 1)).status == 20
        r = proxied(s.pany, v2("", 0, local=True))
        assert r.status == 20
    finally:
        for sock, _ in held:
            sock.close()
    # Once they close, 192.0.2.1 is served again.
    deadline = time.time() + 10 * SLOW
    while True:
        try:
            r = proxied(s.p2, v2("192.0.2.1", 1003))
            break
        except (ConnectionError, ssl.SSLError, OSError):
            assert time.time() < deadline
            time.sleep(0.1)
    assert r.status == 20 and r.body.decode().split()[0] == "192.0.2.1"


def test_rate_limit_is_per_header_address(server):
    s = server("rate_limit = 1/m\nrate_burst = 2\n")
    for _ in range(2):
        assert proxied(s.p2, v2("192.0.2.50", 1)).status == 20
    r = proxied(s.p2, v2("192.0.2.50", 2))
    assert r.status == 44, r
    # Another client behind the same proxy has its own bucket.
    assert proxied(s.p2, v2("192.0.2.51", 1)).status == 20
    assert proxied(s.p1, v1("192.0.2.52", 1)).status == 20


def test_through_haproxy(server, tmp_path):
    """Debian's haproxy in TCP mode: send-proxy-v2 to one listener,
    send-proxy (v1) to the other, health checks with check-send-proxy
    (v2 LOCAL) every 100 ms. The client connects from 127.0.0.5."""
    s = server(args=("-v",))   # the debug log names each LOCAL header
    fe = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend gemini
    bind 127.0.0.1:{fe}
    default_backend xitzin
backend xitzin
    balance roundrobin
    server v2 127.0.0.1:{s.p2} send-proxy-v2 check check-send-proxy inter 100ms
    server v1 127.0.0.1:{s.pany} send-proxy check check-send-proxy inter 100ms
""")
    log = open(tmp_path / "haproxy.log", "wb")
    hap = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 10 * SLOW
        while True:
            try:
                r = get_from(fe, "127.0.0.5", "/cgi-bin/env")
                break
            except OSError:
                assert hap.poll() is None, (tmp_path / "haproxy.log").read_text()
                assert time.time() < deadline
                time.sleep(0.1)
        for _ in range(20):
            r = get_from(fe, "127.0.0.5", "/cgi-bin/env")
            assert r.status == 20, r
            assert r.body.decode().split()[0] == "127.0.0.5", r.body
        # Health checks (LOCAL, then nothing) come, every 100 ms.
        wait_log(s, r"PROXY v2 LOCAL", 3)
    finally:
        hap.terminate()
        hap.wait(timeout=10)
    wait_log(s, r'127\.0\.0\.5 "gemini://localhost/cgi-bin/env" 20', 21)
    # They leave no warning.
    assert "bad PROXY header" not in s.log()
