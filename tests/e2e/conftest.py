"""End-to-end fixtures: the real xitzin program on loopback, over real TLS.

Each test that needs a server starts its own (on a free port chosen by the
kernel: the config says port 0 and the server logs the port it got), and
stops it by PID with SIGTERM, asserting a clean exit: exit status 0 and,
under the sanitizer build, no ASan/UBSan/LSan report in its log.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("XITZIN_BIN", str(ROOT / "build" / "xitzin"))
# Where the example programs built beside xitzin are (the SCGI backends).
BUILD_DIR = Path(os.environ.get("XITZIN_BUILD_DIR", Path(BIN).parent))
SANITIZED = os.environ.get("XITZIN_SANITIZED") == "1"
# Under ASan everything is slower: give timeouts room, never shrink them.
SLOW = 4.0 if SANITIZED else 1.0

SANITIZER_REPORT = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:"
)


def measured_env():
    """The environment for a server whose memory a test measures. ASan
    keeps freed memory in a quarantine (256 MiB by default) that would
    count every buffer ever freed: keep it small, so that RSS measures
    what the server holds."""
    env = dict(os.environ)
    if SANITIZED:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":quarantine_size_mb=8"
                               ":thread_local_quarantine_size_kb=256")
    return env


# The end of the tests' small Python SCGI backends: each script defines
# serve(c) for one connection, imports socket and threading, and ends
# with this loop, which prints the port it listens on.
SERVE_FOREVER = '''
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(1024)
print("ready %d" % s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


class Reply:
    """A Gemini response: status, meta, body, and whether TLS closed cleanly."""

    def __init__(self, raw, close_notify):
        self.raw = raw
        self.close_notify = close_notify
        head, sep, body = raw.partition(b"\r\n")
        self.header = head.decode("utf-8", "replace") if sep else None
        self.body = body
        self.status = None
        self.meta = None
        if self.header is not None and len(self.header) >= 2:
            self.status = int(self.header[:2]) if self.header[:2].isdigit() else None
            self.meta = self.header[3:] if len(self.header) > 2 else ""

    def __repr__(self):
        return f"Reply({self.header!r}, {len(self.body)} bytes)"


def client_context(cert=None, key=None, tls_max=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # Gemini: TOFU, self-signed
    # OpenSSL 3 as Python sets it up ignores a TCP end without
    # close_notify; we want to see it.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if tls_max is not None:
        ctx.maximum_version = tls_max
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def gemini_raw(port, line, host="127.0.0.1", cert=None, key=None,
               timeout=10, tls_max=None):
    """Sends line (bytes, CRLF included by the caller) and reads to the end."""
    ctx = client_context(cert, key, tls_max)
    with socket.create_connection((host, port), timeout=timeout * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             suppress_ragged_eofs=False) as s:
            s.sendall(line)
            chunks = []
            close_notify = True
            while True:
                try:
                    data = s.recv(65536)
                except (ssl.SSLEOFError, ConnectionResetError):
                    close_notify = False  # TCP ended without close_notify
                    break
                except ssl.SSLError as e:
                    if "UNEXPECTED_EOF" not in str(e):
                        raise
                    close_notify = False
                    break
                if not data:
                    break
                chunks.append(data)
            return Reply(b"".join(chunks), close_notify)


class Server:
    def __init__(self, proc, log_path, conf_path, port, tmp):
        self.proc = proc
        self.log_path = log_path
        self.conf_path = conf_path
        self.port = port
        self.tmp = tmp

    def url(self, path="/"):
        return f"gemini://localhost{path}"

    def get(self, path="/", **kw):
        return gemini_raw(self.port, (self.url(path) + "\r\n").encode(), **kw)

    def raw(self, line, **kw):
        return gemini_raw(self.port, line, **kw)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def _status_kib(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def rss_kib(self):
        """Resident memory, file pages (mapped static files) included."""
        return self._status_kib("VmRSS")

    def anon_kib(self):
        """The server's own memory: heap and stacks, not the page cache
        of files it maps to send them."""
        return self._status_kib("RssAnon")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("xitzin did not stop on SIGTERM")
        return self.proc.returncode


def write_config(tmp, body, hostname="localhost"):
    """A config on 127.0.0.1 port 0 with throwaway certificates in tmp."""
    conf = tmp / "xitzin.conf"
    server = (
        "[server]\n"
        "listen = 127.0.0.1:0\n"
        f"hostname = {hostname}\n"
        "cert = certs/test.crt\n"
        "key = certs/test.key\n"
        "workers = 2\n"
    )
    # Keys of a [server] section in body replace ours of the same name (a
    # key given twice is an error) and join the others.
    extra, rest, in_server = [], [], False
    for line in body.splitlines(keepends=True):
        if line.startswith("["):
            in_server = line.strip() == "[server]"
            if in_server:
                continue
        (extra if in_server else rest).append(line)
    given = {l.split("=")[0].strip() for l in extra if "=" in l}
    server = "".join(l + "\n" for l in server.splitlines()
                     if l.split("=")[0].strip() not in given)
    conf.write_text(server + "".join(extra) + "\n" + "".join(rest))
    return conf


def start_server(tmp, body, args=(), env=None, preexec_fn=None):
    conf = write_config(tmp, body)
    log_path = tmp / "xitzin.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([BIN, "-c", str(conf), *args], stdout=log,
                            stderr=subprocess.STDOUT, env=env,
                            preexec_fn=preexec_fn)
    deadline = time.time() + 30 * SLOW
    port = None
    while time.time() < deadline:
        text = log_path.read_text(errors="replace")
        m = re.search(r"listening on \S+ port (\d+)", text)
        if m:
            port = int(m.group(1))
            break
        if proc.poll() is not None:
            raise AssertionError(f"xitzin exited {proc.returncode}:\n{text}")
        time.sleep(0.02)
    if port is None:
        proc.kill()
        raise AssertionError("xitzin did not start:\n" + log_path.read_text())
    return Server(proc, log_path, conf, port, tmp)


@pytest.fixture
def xitzin(tmp_path):
    """A factory: xitzin(config_body) -> a running Server, stopped after."""
    servers = []

    def start(body, **kw):
        s = start_server(tmp_path, body, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.stop()
        log = s.log()
        assert not SANITIZER_REPORT.search(log), log
        assert rc == 0, f"xitzin exited {rc}:\n{log}"


@pytest.fixture
def capsule(tmp_path):
    """A small capsule: index, text, binary, subdirectory, a symlink out."""
    root = tmp_path / "capsule"
    (root / "sub").mkdir(parents=True)
    (root / "index.gmi").write_text("# Home\n")
    (root / "hello.txt").write_text("hello\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "sub" / "index.gmi").write_text("# Sub\n")
    (root / "sub" / "page.gmi").write_text("# Page\n")
    (root / "nodir").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    (root / "escape.txt").symlink_to(secret)
    (root / "inside.txt").symlink_to("hello.txt")
    (root / "sub" / "up.txt").symlink_to("../hello.txt")
    # Absolute links are refused even when they point inside (openat2
    # RESOLVE_BENEATH): the documented rule.
    (root / "absolute.txt").symlink_to(root / "hello.txt")
    return root


def make_client_cert(tmp, cn="alice"):
    """A self-signed client certificate made with openssl; returns paths."""
    crt, key = tmp / f"{cn}.crt", tmp / f"{cn}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
         str(crt), "-days", "30", "-subj", f"/CN={cn}"],
        check=True, capture_output=True)
    return crt, key


def free_port():
    """A port free on 127.0.0.1 now (another process may take it before
    it is bound: tests that can, bind 127.0.0.1:0 instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_from(port, source, path="/"):
    """A request for path from the local address source (127.0.0.N), for
    what is counted per client address."""
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW,
                                  source_address=(source, 0)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(f"gemini://localhost{path}\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    return Reply(data, True)


def python_backend(script):
    """Runs a Python backend script that prints "ready PORT" once it
    listens; yields the port, then kills it (a fixture's body)."""
    proc = subprocess.Popen([sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready "), line
        yield int(line.split()[1])
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
