"""examples/hello.c, built against the installed library with pkg-config
(`make example`), serving the document's "Combine with Regular Routes"."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

from conftest import ROOT, SLOW, gemini_raw
from conftest import free_port

HELLO = os.environ.get("XITZIN_HELLO", str(ROOT / "build" / "stage" / "hello"))


def test_routes_and_scgi_mount_side_by_side(tmp_path):
    assert os.path.exists(HELLO), "run `make example` first"
    backend_port = free_port()
    backend = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "scgi" / "simple_server.py"),
         str(backend_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    hello = subprocess.Popen([HELLO, "127.0.0.1:0", str(backend_port)],
                             cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        line = hello.stdout.readline()
        port = int(re.search(r"port (\d+)", line).group(1))
        # The backend prints a line once it listens.
        backend.stdout.readline()
        r = gemini_raw(port, b"gemini://localhost/\r\n")
        assert (r.status, r.meta) == (20, "text/gemini")
        assert b"=> /api/ API (SCGI backend)" in r.body
        assert gemini_raw(port, b"gemini://localhost/about\r\n").body == b"# About"
        r = gemini_raw(port, b"gemini://localhost/api/users/123?x=1\r\n")
        assert r.status == 20, r
        assert b"Path: /users/123" in r.body and b"Query: x=1" in r.body
    finally:
        hello.send_signal(signal.SIGTERM)
        assert hello.wait(timeout=20 * SLOW) == 0
        backend.kill()
        backend.wait()
