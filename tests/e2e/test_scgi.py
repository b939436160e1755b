"""SCGI end to end: the real xitzin, over real TLS, in front of real SCGI
backends that each test starts itself and stops by PID: the document's
simple Python server, uWSGI (CGI-block and NPH shapes), Perl's SCGI module
over a Unix socket, the C echo backend, and a scripted Python backend for
the failures. Every row of the error table, the size limit at its edge,
unlimited streaming in constant memory, clients and backends that vanish
mid-stream, 500 concurrent requests, and the variable set as a backend
receives it from a TLS request with a client certificate."""

import asyncio
import hashlib
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (BUILD_DIR, ROOT, SLOW, Reply, client_context,
                      gemini_raw, make_client_cert, measured_env, SERVE_FOREVER)
from conftest import free_port

EXAMPLES = ROOT / "examples" / "scgi"
ECHO = BUILD_DIR / "scgi-echo-backend"
SCGI_APP = BUILD_DIR / "scgi-app"
PYTHON = "/usr/bin/python3"
MIB = 1024 * 1024

# A scripted backend for what well-behaved ones never do. It reads one
# whole SCGI request per connection (a thread each), then acts out MODE:
#   answer HEX    sends those bytes and closes
#   size N        sends an answer of exactly N bytes, header included
#   silent        says nothing, keeps the connection open
#   stall         sends a header and 100000 bytes, then says nothing
#   stream N      sends a header and N patterned bytes ("endless": no end)
#   die           sends a header and 1 MiB, then dies with a TCP reset
# A stream that could not be written to the end is noted in NOTES:
# "closed ERRNO". It prints "ready PORT" once listening.
BACKEND = r'''
import os, signal, socket, struct, sys, threading, time

mode, arg, notes = sys.argv[1], sys.argv[2], sys.argv[3]
HEAD = b"20 application/octet-stream\r\n"
CHUNK = bytes(range(256)) * 4096  # 1 MiB

def note(text):
    with open(notes, "a") as f:
        f.write(text + "\n")

def read_request(c):
    data = b""
    while b":" not in data:
        d = c.recv(65536)
        if not d:
            return None
        data += d
    colon = data.index(b":")
    need = colon + 1 + int(data[:colon]) + 1
    while len(data) < need:
        d = c.recv(65536)
        if not d:
            return None
        data += d
    return data

def stream(c, total):
    sent = 0
    view = memoryview(CHUNK)
    try:
        c.sendall(HEAD)
        while total < 0 or sent < total:
            n = len(CHUNK) if total < 0 else min(len(CHUNK), total - sent)
            c.sendall(view[:n])
            sent += n
        note("done %d" % sent)
    except OSError as e:
        note("closed %d" % e.errno)

def serve(c):
    if read_request(c) is None:
        c.close()
        return
    if mode == "answer":
        c.sendall(bytes.fromhex(arg))
    elif mode == "size":
        n = int(arg)
        head = b"20 text/plain\r\n"
        c.sendall(head + b"x" * (n - len(head)))
    elif mode in ("silent", "stall"):
        if mode == "stall":
            c.sendall(HEAD + b"s" * 100000)
        time.sleep(3600)
    elif mode in ("stream", "endless"):
        stream(c, int(arg) if mode == "stream" else -1)
    elif mode == "die":
        c.sendall(HEAD + CHUNK)
        time.sleep(0.2)
        # Linger 0: the kernel resets the connection as the process dies.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        os.kill(os.getpid(), signal.SIGKILL)
    c.close()

''' + SERVE_FOREVER


def get(server, path, cert=None, key=None):
    """GET path from server: a Reply whose close_notify can be trusted."""
    return gemini_raw(server.port, f"gemini://localhost{path}\r\n".encode(),
                      cert=cert, key=key, timeout=20)


def wait_connectable(addr, proc, family=socket.AF_INET, timeout=20):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        assert proc.poll() is None, f"backend exited {proc.returncode}"
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.connect(addr)
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"backend never listened on {addr}")


@pytest.fixture
def backends(tmp_path):
    """Starts backend processes; stops each by its PID at the end."""
    procs = []

    def start(argv, ready=None, stop=signal.SIGTERM, **kw):
        # Without a ready line to read, the output goes to a file: a
        # chatty backend must never block on a full pipe.
        out = subprocess.PIPE if ready is not None else open(
            tmp_path / f"backend{len(procs)}.log", "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True, **kw)
        procs.append((p, stop))
        line = ""
        if ready is not None:
            line = p.stdout.readline()
            assert ready in line, f"{argv[0]}: {line!r}"
        return p, line

    yield start
    for p, stop in procs:
        if p.poll() is None:
            os.kill(p.pid, stop)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        if p.stdout is not None:
            p.stdout.close()


@pytest.fixture
def scripted(backends, tmp_path):
    """scripted(mode, arg) -> (port, notes path) of a scripted backend."""
    script = tmp_path / "backend.py"
    script.write_text(BACKEND)
    count = [0]

    def start(mode, arg=""):
        count[0] += 1
        notes = tmp_path / f"notes{count[0]}.txt"
        notes.write_text("")
        _, line = backends([PYTHON, str(script), mode, str(arg),
                            str(notes)], ready="ready")
        return int(line.split()[1]), notes

    return start


@pytest.fixture
def echo(backends):
    """echo(where) -> the C echo backend's port (TCP) or None (unix:)."""
    def start(where="127.0.0.1:0"):
        _, line = backends([str(ECHO), where], ready="listening on")
        m = re.search(r"port (\d+)", line)
        return int(m.group(1)) if m else None

    return start


def scgi(prefix="/api", **keys):
    return f"[scgi {prefix}]\n" + "".join(f"{k} = {v}\n"
                                          for k, v in keys.items())


def env_of(reply):
    """The echo backend's answer: one NAME=value line per variable."""
    assert reply.status == 20, reply
    pairs = [l.split("=", 1) for l in reply.body.decode().splitlines()]
    names = [p[0] for p in pairs]
    assert len(names) == len(set(names)), "duplicate names"
    return dict(pairs)


def tls_request(port, line, cert=None, key=None):
    """(raw reply, TLS version, cipher) of one request."""
    ctx = client_context(cert, key)
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=20 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(line)
            chunks = []
            while True:
                d = s.recv(65536)
                if not d:
                    break
                chunks.append(d)
            return b"".join(chunks), s.version(), s.cipher()[0]


# The three shapes, from real SCGI servers.

def test_document_simple_server(xitzin, backends):
    """The document's "Simple Python SCGI Server", as printed."""
    port = free_port()
    backends([PYTHON, str(EXAMPLES / "simple_server.py"), str(port)],
             ready="SCGI server listening on 127.0.0.1")
    s = xitzin(scgi(host="127.0.0.1", port=port))
    r = get(s, "/api/users/123?search=hello")
    assert (r.status, r.meta) == (20, "text/gemini")
    assert r.body == (b"# SCGI Response\n\nPath: /users/123\n"
                      b"Query: search=hello\n")
    assert r.close_notify


def uwsgi(backends, flag, port):
    p, _ = backends(["uwsgi", "--plugin", "python3", flag,
                     f"127.0.0.1:{port}", "--wsgi-file",
                     str(EXAMPLES / "flup_app.py")], cwd=EXAMPLES,
                    stop=signal.SIGINT)  # uWSGI: INT stops, TERM reloads
    wait_connectable(("127.0.0.1", port), p)


@pytest.mark.parametrize("flag", ["--scgi-socket", "--scgi-nph-socket"])
def test_uwsgi_flup_app(xitzin, backends, flag):
    """The document's flup WSGI app under uWSGI: --scgi-socket answers
    with a CGI header block ("Status: 20 ..."), --scgi-nph-socket in the
    NPH shape ("GEMINI 20 ..."); the client gets a clean Gemini header."""
    port = free_port()
    uwsgi(backends, flag, port)
    s = xitzin(scgi(host="127.0.0.1", port=port))
    r = get(s, "/api/users/123?q=a%20b")
    assert (r.status, r.meta) == (20, "text/gemini"), r
    assert r.raw.startswith(b"20 text/gemini\r\n# Hello from SCGI!")
    assert b"Path: /users/123\nQuery: q=a%20b\n" in r.body
    assert r.close_notify


def test_perl_scgi_module_over_unix_socket(xitzin, backends, tmp_path):
    sock = tmp_path / "perl.sock"
    backends(["perl", str(EXAMPLES / "perl_backend.pl"), str(sock)],
             ready="listening on")
    crt, key = make_client_cert(tmp_path, "bob")
    s = xitzin(scgi("/app", socket=sock))
    r = get(s, "/app/page?x=1", cert=str(crt), key=str(key))
    assert (r.status, r.meta) == (20, "text/gemini"), r
    assert b"# Hello from Perl" in r.body
    assert b"Path: /page\nQuery: x=1\nMount: /app\nUser: bob\n" in r.body
    # The mount itself: PATH_INFO is empty, so it is left out, which a
    # strict parser needs.
    r = get(s, "/app")
    assert r.status == 20 and b"Path: \nQuery: \n" in r.body


def test_c_echo_backend_tcp_and_unix(xitzin, echo, tmp_path):
    port = echo()
    sock = tmp_path / "echo.sock"
    echo(f"unix:{sock}")
    s = xitzin(scgi(host="127.0.0.1", port=port) +
               scgi("/app", socket=sock))
    assert env_of(get(s, "/api/x"))["SCRIPT_NAME"] == "/api"
    assert env_of(get(s, "/app/y"))["PATH_INFO"] == "/y"


def test_ipv6_literal_host(xitzin, echo):
    port = echo("::1:0")
    s = xitzin(scgi(host="::1", port=port))
    assert env_of(get(s, "/api/v6"))["PATH_INFO"] == "/v6"


# The variable set, checked variable by variable.

def test_variable_set_from_a_tls_request(xitzin, echo, tmp_path):
    port = echo()
    s = xitzin(scgi(host="127.0.0.1", port=port))
    crt, key = make_client_cert(tmp_path, "alice")
    der = ssl.PEM_cert_to_DER_cert(crt.read_text())
    url = f"gemini://localhost:{s.port}/api/users/123?search=hello%20world"
    raw, version, cipher = tls_request(s.port, (url + "\r\n").encode(),
                                       str(crt), str(key))
    head, _, body = raw.partition(b"\r\n")
    assert head == b"20 text/plain"
    env = dict(l.split("=", 1) for l in body.decode().splitlines())
    want = {
        "CONTENT_LENGTH": "0",
        "SCGI": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "GEMINI",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": str(s.port),
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/users/123",
        "QUERY_STRING": "search=hello%20world",
        "GEMINI_URL": url,
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_HOST": "127.0.0.1",
        "TLS_CLIENT_AUTHORISED": "1",
        "TLS_CLIENT_HASH": "SHA256:" + hashlib.sha256(der).hexdigest(),
        "AUTH_TYPE": "CERTIFICATE",
        "REMOTE_USER": "alice",
        "TLS_CLIENT_SUBJECT": "CN=alice",
        "TLS_CLIENT_ISSUER": "CN=alice",
        "TLS_VERSION": version,
        "TLS_CIPHER": cipher,
    }
    for name, value in want.items():
        assert env.get(name) == value, (name, env.get(name), value)
    assert env["SERVER_SOFTWARE"].startswith("xitzin/")
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(stamp, env["TLS_CLIENT_NOT_BEFORE"])
    assert re.fullmatch(stamp, env["TLS_CLIENT_NOT_AFTER"])
    # CONTENT_LENGTH first and SCGI second, as the protocol says.
    assert body.decode().splitlines()[:2] == ["CONTENT_LENGTH=0", "SCGI=1"]


def test_no_certificate_and_decoded_path(xitzin, echo):
    port = echo()
    s = xitzin(scgi(host="127.0.0.1", port=port))
    env = env_of(get(s, "/api/caf%C3%A9/a%2Fb?x=%2F"))
    assert env["PATH_INFO"] == "/café/a/b"
    assert env["QUERY_STRING"] == "x=%2F"
    assert env["TLS_CLIENT_AUTHORISED"] == "0"
    for name in ["TLS_CLIENT_HASH", "AUTH_TYPE", "REMOTE_USER"]:
        assert name not in env, name
    env = env_of(get(s, "/api"))
    assert "PATH_INFO" not in env and "QUERY_STRING" not in env


def test_app_state_keys_from_state_section(xitzin, echo):
    port = echo()
    s = xitzin("[state]\ndb_url = postgres://localhost/mydb\n"
               "api_key = secret123\n\n" +
               scgi(host="127.0.0.1", port=port,
                    app_state_keys="db_url, api_key, missing"))
    env = env_of(get(s, "/api/"))
    assert env["XITZIN_DB_URL"] == "postgres://localhost/mydb"
    assert env["XITZIN_API_KEY"] == "secret123"
    assert "XITZIN_MISSING" not in env


def test_inherit_environment(xitzin, echo):
    port = echo()
    run_env = dict(os.environ, XZ_E2E_MARKER="inherited",
                   REMOTE_USER="mallory")
    s = xitzin(scgi(host="127.0.0.1", port=port) +
               scgi("/closed", host="127.0.0.1", port=port,
                    inherit_environment="false"), env=run_env)
    env = env_of(get(s, "/api/"))
    assert env["XZ_E2E_MARKER"] == "inherited"
    assert "REMOTE_USER" not in env  # the parent never forges identity
    env = env_of(get(s, "/closed/"))
    assert "XZ_E2E_MARKER" not in env and "PATH" not in env


# The error table.

def test_refused(xitzin):
    with socket.socket() as held:  # bound, never listening: refuses
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        s = xitzin(scgi(host="127.0.0.1", port=port))
        r = get(s, "/api/x")
        assert (r.status, r.meta) == (43, "Failed to connect to SCGI backend")
        assert r.body == b"" and r.close_notify
        time.sleep(0.2)
        # The details are in the server's log, never in the reply.
        assert f"127.0.0.1:{port}" in s.log()
        assert str(port).encode() not in r.raw


def test_missing_unix_socket(xitzin, tmp_path):
    s = xitzin(scgi(socket=tmp_path / "nobody.sock"))
    r = get(s, "/api/x")
    assert (r.status, r.meta) == (43, "Failed to connect to SCGI backend")


def full_listener():
    """A listener whose accept queue is full and that never accepts:
    further SYNs are dropped, so connects to it hang (works offline)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    fillers = []
    for _ in range(16):
        f = socket.socket()
        f.setblocking(False)
        fillers.append(f)
        try:
            f.connect(lsock.getsockname())
        except BlockingIOError:
            pass
        if not select.select([], [f], [], 0.3)[1]:
            return lsock, fillers
    raise AssertionError("the accept queue never filled")


def test_connect_timeout(xitzin):
    lsock, fillers = full_listener()
    try:
        s = xitzin(scgi(host="127.0.0.1", port=lsock.getsockname()[1],
                        timeout=0.5))
        r = get(s, "/api/x")
        assert (r.status, r.meta) == (43, "SCGI connection timeout")
    finally:
        for f in fillers:
            f.close()
        lsock.close()


def test_backend_silent_past_timeout(xitzin, scripted):
    port, _ = scripted("silent")
    s = xitzin(scgi(host="127.0.0.1", port=port, timeout=0.5))
    r = get(s, "/api/x")
    assert (r.status, r.meta) == (43, "SCGI backend timeout")
    assert r.close_notify


@pytest.mark.parametrize("answer", [
    b"hello\r\n\r\n", b"2 text/gemini\r\n", b"20  text/gemini\r\n",
    b"99 nope\r\n", b"", b"20 text/gemini", b"X-Only: 1\r\n\r\n",
    b"20 " + b"m" * 1025 + b"\r\n",
])
def test_malformed_header(xitzin, scripted, answer):
    port, _ = scripted("answer", answer.hex())
    s = xitzin(scgi(host="127.0.0.1", port=port) +
               scgi("/stream", host="127.0.0.1", port=port,
                    max_response_size=0))
    for path in ["/api/x", "/stream/x"]:
        r = get(s, path)
        assert (r.status, r.meta) == (43, "SCGI backend error"), (path, r)


@pytest.mark.parametrize("limit,size,status", [
    ("1000", 1000, 20), ("1000", 1001, 43),
    ("1K", 1024, 20), ("1K", 1025, 43),
])
def test_size_limit_at_the_edge(xitzin, scripted, limit, size, status):
    port, _ = scripted("size", size)
    s = xitzin(scgi(host="127.0.0.1", port=port, max_response_size=limit))
    r = get(s, "/api/x")
    if status == 20:
        assert (r.status, r.meta) == (20, "text/plain")
        assert r.body == b"x" * (size - len(b"20 text/plain\r\n"))
    else:
        assert (r.status, r.meta) == (43,
                                      "SCGI response exceeds maximum size")
        assert r.body == b""


@pytest.mark.parametrize("answer,status,meta", [
    (b"30 gemini://example.com/new\r\n", 30, "gemini://example.com/new"),
    (b"10 Enter your name:\r\n", 10, "Enter your name:"),
    (b"51 Not found\r\n", 51, "Not found"),
    (b"20 text/gemini\n# bare LF\n", 20, "text/gemini"),
])
def test_statuses_pass_verbatim(xitzin, scripted, answer, status, meta):
    port, _ = scripted("answer", answer.hex())
    s = xitzin(scgi(host="127.0.0.1", port=port))
    r = get(s, "/api/x")
    assert (r.status, r.meta) == (status, meta)
    assert r.raw.startswith(f"{status} {meta}\r\n".encode())


# Streaming, and peers that go away.

def stream_sha256(port, line, rss=None):
    """Reads a whole reply without keeping it: (header, size, sha256)."""
    ctx = client_context()
    h = hashlib.sha256()
    size, head, buf = 0, None, b""
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=60 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(line)
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                if head is None:
                    buf += d
                    if b"\r\n" not in buf:
                        continue
                    head, _, d = buf.partition(b"\r\n")
                h.update(d)
                size += len(d)
                if rss is not None:
                    rss()
    return head, size, h.hexdigest()


def test_unlimited_100_mib_in_constant_memory(xitzin, scripted):
    total = 100 * MIB
    port, _ = scripted("stream", total)
    env = measured_env()
    s = xitzin(scgi(host="127.0.0.1", port=port,
                    max_response_size="unlimited"), env=env)
    base = s.rss_kib()
    peak = [base]

    def sample():
        peak[0] = max(peak[0], s.rss_kib())

    head, size, digest = stream_sha256(
        s.port, b"gemini://localhost/api/big\r\n", sample)
    chunk = bytes(range(256)) * 4096
    want = hashlib.sha256(chunk * 100).hexdigest()
    assert head == b"20 application/octet-stream"
    assert size == total and digest == want
    growth = (peak[0] - base) / 1024
    print(f"\n100 MiB streamed: server RSS {base} KiB -> peak {peak[0]} KiB"
          f" (+{growth:.1f} MiB)")
    assert growth < 64, f"RSS grew {growth:.1f} MiB"


def test_client_gone_mid_stream_closes_the_backend(xitzin, scripted):
    port, notes = scripted("endless")
    s = xitzin(scgi(host="127.0.0.1", port=port, max_response_size=0))
    ctx = client_context()
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=20 * SLOW)
    c = ctx.wrap_socket(raw, server_hostname="localhost")
    c.sendall(b"gemini://localhost/api/endless\r\n")
    got = 0
    while got < 2 * MIB:
        got += len(c.recv(1 << 20))
    c.close()  # abruptly, mid-stream: no close_notify, unread bytes
    deadline = time.time() + 20 * SLOW
    while "closed" not in notes.read_text() and time.time() < deadline:
        time.sleep(0.05)
    # The backend's write failed: EPIPE or ECONNRESET.
    assert re.search(r"closed (32|104)", notes.read_text()), notes.read_text()


def test_backend_dies_mid_stream_no_close_notify(xitzin, scripted):
    port, _ = scripted("die")
    s = xitzin(scgi(host="127.0.0.1", port=port, max_response_size=0))
    r = get(s, "/api/x")
    assert (r.status, r.meta) == (20, "application/octet-stream")
    assert r.close_notify is False


def test_backend_stalls_mid_stream_no_close_notify(xitzin, scripted):
    port, _ = scripted("stall")
    s = xitzin(scgi(host="127.0.0.1", port=port, max_response_size=0,
                    timeout=0.5))
    r = get(s, "/api/x")
    assert r.status == 20 and r.body == b"s" * 100000
    assert r.close_notify is False


async def _one(port, ctx, i):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    writer.write(f"gemini://localhost/api/n/{i}?q={i}\r\n".encode())
    data = await reader.read()
    writer.close()
    return i, data


def test_500_concurrent_requests(xitzin, echo):
    port = echo()
    s = xitzin(scgi(host="127.0.0.1", port=port))
    ctx = client_context()
    peak = [s.rss_kib()]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], s.rss_kib())
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()

    async def run():
        return await asyncio.gather(*[_one(s.port, ctx, i)
                                      for i in range(500)])

    try:
        results = asyncio.run(run())
    finally:
        done.set()
        t.join()
    answered = 0
    for i, data in results:
        assert data.startswith(b"20 text/plain\r\n"), (i, data[:80])
        assert f"PATH_INFO=/n/{i}\n".encode() in data
        assert f"QUERY_STRING=q={i}\n".encode() in data
        answered += 1
    print(f"\n500 concurrent: {answered} answered, server peak RSS "
          f"{peak[0]} KiB")
    assert answered == 500


# The document's examples in C: examples/scgi/app.c.

def test_document_examples_in_c(echo, tmp_path):
    port = echo()
    sock = tmp_path / "myapp.sock"
    echo(f"unix:{sock}")
    app = subprocess.Popen([str(SCGI_APP), "127.0.0.1:0", str(port),
                            str(sock)], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        line = app.stdout.readline()
        gport = int(re.search(r"port (\d+)", line).group(1))

        def get(path):
            raw, _, _ = tls_request(gport,
                                    f"gemini://localhost{path}\r\n".encode())
            head, _, body = raw.partition(b"\r\n")
            return head.decode(), body.decode()

        assert get("/") == ("20 text/gemini",
                            "# Home\n\n=> /api/ API (SCGI backend)")
        assert get("/about") == ("20 text/gemini", "# About")
        for path, mount in [("/api/users/123", "/api"),
                            ("/app/x", "/app"),
                            ("/explicit/x", "/explicit"),
                            ("/explicit-unix/x", "/explicit-unix"),
                            ("/limited/x", "/limited"),
                            ("/full/x", "/full")]:
            head, body = get(path)
            assert head == "20 text/plain", path
            assert f"SCRIPT_NAME={mount}\n" in body, path
        assert "XITZIN_DB_URL=postgres://localhost/mydb" in get("/api/x")[1]
        assert "XITZIN_API_KEY=secret123" in get("/full/x")[1]
        assert "XITZIN_DB_URL" not in get("/explicit/x")[1]
        # The unix backend is gone: handle_proxy_errors logs the 43 and
        # answers with its fallback page instead, body included.
        os.unlink(sock)
        assert get("/app/x") == (
            "20 text/gemini",
            "# Temporarily unavailable\n\n/app is down; try again later."
            "\n\n=> / Home\n")
    finally:
        app.send_signal(signal.SIGTERM)
        out = app.communicate(timeout=20 * SLOW)[0]
    assert app.returncode == 0, out
    assert "Proxy error: Failed to connect to SCGI backend" in out
    assert "Request: /app/x" in out and "Response: 43" in out
