"""Titan uploads end to end: a Python ssl client sends
titan://host/path;size=N;mime=T;token=X and its body to the real xitzin
over real TLS, which passes it on as the request body: to an SCGI backend
in the document's style (a socket, a netstring, then CONTENT_LENGTH bytes
of body), to a WSGI app under uWSGI reading wsgi.input, and to a sh CGI
script reading stdin. A 50 MiB upload passes through SCGI in constant
server memory; refusals (not enabled, too large, no size) are 59s; an
upload cut short is dropped and logged.

No Debian package ships a command-line Gemini client that speaks Titan
(amfora, elpher and kristall do not; Lagrange is a GUI), so the client
here is Python's ssl module, as a Titan client writes it."""

import hashlib
import signal
import socket
import ssl
import threading
import time

import pytest

from conftest import SLOW, SERVE_FOREVER, client_context, measured_env
from conftest import free_port
from test_scgi import wait_connectable

PYTHON = "/usr/bin/python3"
MIB = 1024 * 1024

# The document's "Simple Python SCGI Server", grown to read a body: it
# parses the netstring, then reads CONTENT_LENGTH bytes (hashing them as
# they come: a 50 MiB upload is never held) and answers with what it got.
BODY_BACKEND = r'''
import hashlib, socket, sys, threading

def parse_scgi_request(data):
    colon = data.index(b":")
    length = int(data[:colon])
    headers = data[colon + 1:colon + 1 + length]
    parts = headers.split(b"\x00")
    env = {parts[i].decode(): parts[i + 1].decode()
           for i in range(0, len(parts) - 1, 2)}
    return env, data[colon + 1 + length + 1:]

def serve(c):
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            c.close()
            return
        data += d
        if b":" in data:
            n = int(data[:data.index(b":")])
            if len(data) >= data.index(b":") + 1 + n + 1:
                break
    env, body = parse_scgi_request(data)
    left = int(env["CONTENT_LENGTH"]) - len(body)
    h = hashlib.sha256(body)
    size = len(body)
    while left > 0:
        d = c.recv(min(left, 1 << 20))
        if not d:
            break
        h.update(d)
        size += len(d)
        left -= len(d)
    answer = "%d %s %s %s %s %s" % (
        size, h.hexdigest(), env.get("CONTENT_TYPE"),
        env.get("REQUEST_METHOD"), env.get("TITAN_TOKEN", "-"),
        env.get("PATH_INFO"))
    c.sendall(("20 text/plain\r\n" + answer).encode())
    c.close()
''' + SERVE_FOREVER

# A WSGI app as a framework user writes one: the upload is wsgi.input.
WSGI_APP = r'''
import hashlib

def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    h, size = hashlib.sha256(), 0
    while size < length:
        d = environ["wsgi.input"].read(min(65536, length - size))
        if not d:
            break
        h.update(d)
        size += len(d)
    body = "%s %d %s %s %s" % (environ["REQUEST_METHOD"], size,
                               h.hexdigest(), environ.get("CONTENT_TYPE"),
                               environ.get("TITAN_TOKEN", "-"))
    start_response("20 text/plain", [])
    return [body.encode()]
'''

CGI_SCRIPT = r'''#!/bin/sh
sum=$(head -c "$CONTENT_LENGTH" | sha256sum | cut -d' ' -f1)
printf '20 text/plain\r\n%s %s %s %s' "$CONTENT_LENGTH" "$sum" \
    "$CONTENT_TYPE" "${TITAN_TOKEN:--}"
'''


def pattern(size):
    """size bytes of a pattern, as chunks of at most 1 MiB, and its sha256."""
    block = bytes((i * 7 + i // 251) & 0xff for i in range(MIB))
    h = hashlib.sha256()
    chunks, left = [], size
    while left > 0:
        c = block[:min(left, MIB)]
        h.update(c)
        chunks.append(c)
        left -= len(c)
    return chunks, h.hexdigest()


def titan_upload(port, path, chunks, size=None, mime=None, token=None,
                 timeout=60, send=None):
    """Sends a Titan request and its body (chunks) over TLS; returns
    (status, meta, body). size defaults to the chunks' length; send (if
    given) runs between chunks."""
    if size is None:
        size = sum(len(c) for c in chunks)
    url = f"titan://localhost{path};size={size}"
    if mime is not None:
        url += f";mime={mime}"
    if token is not None:
        url += f";token={token}"
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=timeout * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(url.encode() + b"\r\n")
            try:
                for c in chunks:
                    s.sendall(c)
                    if send is not None:
                        send()
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused early: the answer is still there to read
            data = b""
            while True:
                try:
                    d = s.recv(65536)
                except (ConnectionResetError, OSError):
                    break
                if not d:
                    break
                data += d
    head, _, body = data.partition(b"\r\n")
    head = head.decode()
    return int(head[:2]), head[3:], body


@pytest.fixture
def backends(tmp_path):
    """Starts backend processes; stops each by its PID at the end."""
    import subprocess

    procs = []

    def start(argv, stop=signal.SIGTERM, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=open(tmp_path / "backend.err", "w"),
                             text=True, start_new_session=True, **kw)
        procs.append((p, stop))
        return p

    yield start
    for p, stop in procs:
        if p.poll() is None:
            p.send_signal(stop)
            try:
                p.wait(timeout=10)
            except Exception:
                p.kill()
                p.wait()
        p.stdout.close()


@pytest.fixture
def body_backend(backends, tmp_path):
    script = tmp_path / "body_backend.py"
    script.write_text(BODY_BACKEND)
    p = backends([PYTHON, str(script)])
    line = p.stdout.readline()
    assert line.startswith("ready "), line
    return int(line.split()[1])


def test_scgi_python_backend_reads_the_body(xitzin, body_backend):
    s = xitzin(f"[scgi /api]\nhost = 127.0.0.1\nport = {body_backend}\n"
               "titan = true\ninherit_environment = false\n")
    chunks, digest = pattern(3 * MIB + 11)
    status, meta, body = titan_upload(s.port, "/api/files/a.bin", chunks,
                                      mime="image/png", token="s3cret")
    assert (status, meta) == (20, "text/plain"), body
    assert body.decode() == (f"{3 * MIB + 11} {digest} image/png POST "
                             "s3cret /files/a.bin")
    # The token is a password: the access line shows "token=-".
    time.sleep(0.2)
    access = [l for l in s.log().splitlines() if "/api/files/a.bin" in l
              and '" 20 ' in l]
    assert access and all("s3cret" not in l for l in access), access
    assert "token=-" in access[0]
    # A delete: size 0, no body.
    status, _, body = titan_upload(s.port, "/api/files/a.bin", [])
    assert status == 20
    assert body.decode().startswith("0 " + hashlib.sha256().hexdigest() +
                                    " text/gemini POST -")


def test_scgi_50_mib_upload_in_constant_memory(xitzin, body_backend):
    size = 50 * MIB
    s = xitzin(f"[scgi /api]\nhost = 127.0.0.1\nport = {body_backend}\n"
               "titan = true\nmax_upload_size = 64M\n"
               "inherit_environment = false\n", env=measured_env())
    chunks, digest = pattern(size)
    base = s.rss_kib()
    peak = [base]

    def sample():
        peak[0] = max(peak[0], s.rss_kib())

    start = time.monotonic()
    status, _, body = titan_upload(s.port, "/api/big", chunks, send=sample)
    took = time.monotonic() - start
    sample()
    assert status == 20, body
    assert body.decode().startswith(f"{size} {digest} ")
    growth = (peak[0] - base) / 1024
    print(f"\n50 MiB Titan upload through SCGI: server RSS {base} KiB -> "
          f"peak {peak[0]} KiB (+{growth:.1f} MiB), {took:.2f} s")
    assert growth < 32, f"RSS grew {growth:.1f} MiB"


@pytest.fixture
def uwsgi_app(backends, tmp_path):
    app = tmp_path / "upload_app.py"
    app.write_text(WSGI_APP)
    port = free_port()
    p = backends(["uwsgi", "--plugin", "python3", "--scgi-socket",
                  f"127.0.0.1:{port}", "--wsgi-file", str(app)],
                 cwd=tmp_path, stop=signal.SIGINT)  # INT stops uWSGI
    wait_connectable(("127.0.0.1", port), p)
    return port


def test_uwsgi_wsgi_app_reads_wsgi_input(xitzin, uwsgi_app):
    s = xitzin(f"[scgi /wsgi]\nhost = 127.0.0.1\nport = {uwsgi_app}\n"
               "titan = true\ninherit_environment = false\n")
    chunks, digest = pattern(5 * MIB + 3)
    status, meta, body = titan_upload(s.port, "/wsgi/up", chunks,
                                      mime="text/plain", token="t")
    assert (status, meta) == (20, "text/plain"), body
    assert body.decode() == f"POST {5 * MIB + 3} {digest} text/plain t"


def test_cgi_sh_script_reads_stdin(xitzin, tmp_path):
    root = tmp_path / "cgi-bin"
    root.mkdir()
    script = root / "up"
    script.write_text(CGI_SCRIPT)
    script.chmod(0o755)
    s = xitzin(f"[cgi /cgi-bin]\nroot = {root}\ntitan = true\n"
               "inherit_environment = false\n")
    chunks, digest = pattern(2 * MIB + 1)
    status, _, body = titan_upload(s.port, "/cgi-bin/up", chunks,
                                   mime="application/octet-stream")
    assert status == 20, body
    assert body.decode() == (f"{2 * MIB + 1} {digest} "
                             "application/octet-stream -")


def test_refusals_over_tls(xitzin, body_backend, tmp_path):
    s = xitzin(f"[scgi /api]\nhost = 127.0.0.1\nport = {body_backend}\n"
               "titan = true\nmax_upload_size = 1K\n"
               f"[scgi /ro]\nhost = 127.0.0.1\nport = {body_backend}\n")
    assert titan_upload(s.port, "/ro/x", [b"abc"])[:2] == (
        59, "Titan not accepted here")
    assert titan_upload(s.port, "/elsewhere", [b"abc"])[:2] == (
        59, "Titan not accepted here")
    assert titan_upload(s.port, "/api/x", [b"a" * 1025])[:2] == (
        59, "Upload larger than 1024 bytes")
    assert titan_upload(s.port, "/api/x", [b"a" * 1024])[0] == 20
    r = s.raw(b"titan://localhost/api/x;mime=text/plain\r\n")
    assert (r.status, r.meta) == (59, "Bad request")


def test_upload_cut_short_is_dropped_and_logged(xitzin, body_backend):
    s = xitzin(f"[scgi /api]\nhost = 127.0.0.1\nport = {body_backend}\n"
               "titan = true\n[server]\nrequest_timeout = 1\n")
    ctx = client_context()
    # The client stops sending half way and waits: request_timeout.
    with socket.create_connection(("127.0.0.1", s.port),
                                  timeout=30 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(b"titan://localhost/api/x;size=1000\r\n" + b"x" * 500)
            # Dropped: no answer, and no close_notify either.
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                t.recv(100)
    # The client closes half way.
    with socket.create_connection(("127.0.0.1", s.port),
                                  timeout=30 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(b"titan://localhost/api/y;size=1000\r\n" + b"x" * 10)
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline and s.log().count("upload dropped") < 2:
        time.sleep(0.1)
    log = s.log()
    assert "upload dropped: 500 of 1000 bytes within 1s" in log, log
    assert "upload dropped: 10 of 1000 bytes, then" in log, log
    # The server goes on serving.
    assert titan_upload(s.port, "/api/z", [b"ok"])[0] == 20
