"""The demo (`make run`): its backends get the request's variables and
app state, never the server's environment (HOME, tokens, CA paths), which
inherit_environment would otherwise hand to each of them."""

import os
import re
import subprocess

from conftest import BUILD_DIR, ROOT, SLOW

EXAMPLES = ROOT / "examples"


def demo_conf(sock):
    """demo.conf without its [server], paths made absolute, socket moved."""
    out, in_server = [], False
    for line in (EXAMPLES / "demo.conf").read_text().splitlines():
        if line.startswith("["):
            in_server = line.strip() == "[server]"
        if in_server:
            continue
        m = re.match(r"(root|socket)\s*=\s*(\S+)", line)
        if m and m.group(1) == "socket":
            line = f"socket = {sock}"
        elif m:
            line = f"root = {EXAMPLES / m.group(2)}"
        out.append(line)
    return "\n".join(out) + "\n"


def test_every_demo_backend_turns_inheritance_off():
    sections = re.split(r"^\[", (EXAMPLES / "demo.conf").read_text(), flags=re.M)
    backends = [s for s in sections if s.startswith(("scgi ", "cgi "))]
    assert len(backends) == 2
    for s in backends:
        assert re.search(r"^inherit_environment = false$", s, re.M), s


def test_the_demo_api_and_cgi_pages_keep_the_servers_secrets(xitzin, tmp_path):
    sock = tmp_path / "echo.sock"
    backend = subprocess.Popen([str(BUILD_DIR / "scgi-echo-backend"),
                                f"unix:{sock}"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening on" in backend.stdout.readline()
        env = dict(os.environ, XZ_DEMO_SECRET="hunter2")
        s = xitzin(demo_conf(sock), env=env)
        for path in ("/api/", "/cgi-bin/env.py"):
            r = s.get(path)
            assert r.status == 20, (path, r)
            names = {l.split(b"=", 1)[0] for l in r.body.splitlines()}
            assert b"GEMINI_URL" in names, (path, r.body)
            assert b"hunter2" not in r.body, path
            assert not names & {b"HOME", b"PATH", b"XZ_DEMO_SECRET"}, path
        assert b"XITZIN_GREETING=Hello from [state]" in s.get("/api/").body
    finally:
        backend.kill()
        backend.wait(timeout=20 * SLOW)
