"""Hostile backends: what a buggy or malicious SCGI backend may do, each
with its defined answer, while a well-behaved mount beside it keeps
answering. Every backend here is a real process on loopback, stopped by
PID (the `backends` fixture)."""

import socket
import ssl
import time

import pytest

from conftest import SLOW, client_context, measured_env, SERVE_FOREVER
from test_scgi import PYTHON, backends, get, scgi  # noqa: F401 (fixture)

# One connection, one act:
#   garbage       random bytes, then close
#   noeol         "20 " and then bytes with no line end, forever
#   driphead      the header one byte every 0.2 s, forever
#   drip          the header, then one body byte every 0.2 s, forever
#   deaf          never reads the request, never answers
#   flood         a header and an endless body, as fast as it can
#   badmeta HEX   that header, then close
#   reset-held    a header and 1000 bytes, then a TCP reset
HOSTILE = r'''
import os, socket, struct, sys, threading, time

mode, arg = sys.argv[1], sys.argv[2]

def read_request(c):
    data = b""
    while b"," not in data:
        d = c.recv(65536)
        if not d:
            return False
        data += d
    return True

def serve(c):
    try:
        if mode != "deaf" and not read_request(c):
            return
        if mode == "garbage":
            c.sendall(os.urandom(4096))
        elif mode == "noeol":
            c.sendall(b"20 ")
            while True:
                c.sendall(b"x" * 4096)
        elif mode == "driphead":
            while True:
                for b in b"20 text/gemini":
                    c.sendall(bytes([b]))
                    time.sleep(0.2)
        elif mode == "drip":
            c.sendall(b"20 text/gemini\r\n")
            while True:
                c.sendall(b".")
                time.sleep(0.2)
        elif mode == "deaf":
            time.sleep(3600)
        elif mode == "flood":
            c.sendall(b"20 application/octet-stream\r\n")
            chunk = b"f" * (1 << 20)
            while True:
                c.sendall(chunk)
        elif mode == "badmeta":
            c.sendall(bytes.fromhex(arg))
        elif mode == "reset-held":
            c.sendall(b"20 text/plain\r\n" + b"r" * 1000)
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
    except OSError:
        pass
    finally:
        c.close()

''' + SERVE_FOREVER


@pytest.fixture
def hostile(backends, tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)

    def start(mode, arg="-"):
        _, line = backends([PYTHON, str(script), mode, arg], ready="ready")
        return int(line.split()[1])

    return start


@pytest.fixture
def good(backends):
    """A well-behaved backend (the document's simple server)."""
    from conftest import ROOT
    port = _free_port()
    backends([PYTHON, str(ROOT / "examples" / "scgi" / "simple_server.py"),
              str(port)], ready="listening")
    return port


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def both(port, good_port, **keys):
    """The hostile mount at /api (held) and /stream (unlimited), and a good
    one at /good."""
    return (scgi("/api", host="127.0.0.1", port=port, **keys) +
            scgi("/stream", host="127.0.0.1", port=port,
                 max_response_size=0, **keys) +
            scgi("/good", host="127.0.0.1", port=good_port))


def assert_good_still_answers(s):
    r = get(s, "/good/x?y")
    assert r.status == 20 and b"Path: /x" in r.body, r


def test_garbage_is_43(xitzin, hostile, good):
    s = xitzin(both(hostile("garbage"), good))
    for path in ["/api/x", "/stream/x"]:
        r = get(s, path)
        assert (r.status, r.meta, r.body) == (43, "SCGI backend error", b"")
    assert_good_still_answers(s)


def test_header_with_no_line_end_is_cut_at_8_kib(xitzin, hostile, good):
    s = xitzin(both(hostile("noeol"), good))
    for path in ["/api/x", "/stream/x"]:
        r = get(s, path)
        assert (r.status, r.meta) == (43, "SCGI backend error")
    assert_good_still_answers(s)


def test_header_drip_is_bounded_by_max_duration(xitzin, hostile, good):
    s = xitzin(both(hostile("driphead"), good, timeout=1, max_duration=1.5))
    for path in ["/api/x", "/stream/x"]:
        r = get(s, path)
        assert (r.status, r.meta) == (43, "SCGI backend timeout")
    assert_good_still_answers(s)


def test_slow_drip_is_bounded_by_max_duration(xitzin, hostile, good):
    """One byte per 0.2 s never trips the 1 s per-wait timeout; the
    1.5 s max_duration ends it: a 43 before the header, a cut after."""
    s = xitzin(both(hostile("drip"), good, timeout=1, max_duration=1.5))
    r = get(s, "/api/x")  # held: the header never went out
    assert (r.status, r.meta) == (43, "SCGI backend timeout")
    assert r.close_notify
    r = get(s, "/stream/x")  # streamed: header out, then cut
    assert r.status == 20 and not r.close_notify
    assert "max_duration" in s.log()
    assert_good_still_answers(s)


def test_backend_that_never_reads_its_request(xitzin, hostile, good):
    s = xitzin(both(hostile("deaf"), good, timeout=0.5))
    r = get(s, "/api/x")
    assert (r.status, r.meta) == (43, "SCGI backend timeout")
    assert_good_still_answers(s)


@pytest.mark.parametrize("header", [
    b"20 text/\x00gemini\r\n",    # NUL in the meta
    b"20 text/gem\rini\r\n",      # a bare CR in the meta
    b"20 text\x1bgemini\r\n",     # another control byte
    b"Status: 20 a\x00b\r\n\r\n",  # the same through a CGI header block
    b"70 too high\r\n", b"00 too low\r\n", b"09 nope\r\n",
    b"GEMINI 99 x\r\n\r\n",
], ids=repr)
def test_bad_meta_or_status_never_passes(xitzin, hostile, good, header):
    s = xitzin(both(hostile("badmeta", header.hex()), good))
    for path in ["/api/x", "/stream/x"]:
        r = get(s, path)
        assert (r.status, r.meta) == (43, "SCGI backend error"), (path, r)
        assert r.body == b""


def test_reset_while_held_is_an_error_not_a_short_answer(xitzin, hostile,
                                                        good):
    s = xitzin(both(hostile("reset-held"), good))
    r = get(s, "/api/x")
    assert (r.status, r.meta) == (43, "SCGI backend error"), r
    assert_good_still_answers(s)


def test_flood_to_a_slow_client_keeps_memory_flat(xitzin, hostile, good):
    s = xitzin(both(hostile("flood"), good), env=measured_env())
    assert_good_still_answers(s)
    base = s.anon_kib()
    ctx = client_context()
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=30 * SLOW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    c = ctx.wrap_socket(raw, server_hostname="localhost")
    c.sendall(b"gemini://localhost/stream/flood\r\n")
    got, peak = 0, base
    deadline = time.time() + 3
    while time.time() < deadline:  # ~64 KiB every 20 ms: a slow reader
        got += len(c.recv(65536))
        peak = max(peak, s.anon_kib())
        time.sleep(0.02)
    c.close()
    print(f"FIGURE flood to slow client: got {got} B, anon {base} -> "
          f"peak {peak} KiB")
    assert got > 128 * 1024
    assert peak - base < 16 * 1024, (base, peak)  # KiB: flat, not growing
    assert_good_still_answers(s)
