"""CGI end to end: the real xitzin over real TLS, running real scripts in
sh, Python and Perl that each test writes into its own directory. The
variable set as a script sees it from a TLS request with a client
certificate, every failure status, the three answer shapes, binary and
streamed bodies, the size limit, and the processes themselves: a timeout,
a client that leaves or a full mount never leaves one behind."""

import concurrent.futures
import hashlib
import os
import re
import signal
import socket
import struct
import ssl
import sys
import time

from conftest import ROOT, SLOW, Reply, client_context, make_client_cert

PYTHON = sys.executable
MIB = 1024 * 1024


def write_script(root, name, body, mode=0o755):
    path = root / name
    path.write_text(body)
    path.chmod(mode)
    return path


def cgi_conf(root, extra="", prefix="/cgi-bin"):
    return f"[cgi {prefix}]\nroot = {root}\n{extra}"


def bin_dir(tmp_path):
    root = tmp_path / "cgi-bin"
    root.mkdir()
    return root


def tls_request(port, url, cert=None, key=None):
    """One request; returns the reply and the TLS version and cipher the
    client saw, to compare with what the script was told."""
    ctx = client_context(cert, key)
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=30 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             suppress_ragged_eofs=False) as s:
            s.sendall(url.encode() + b"\r\n")
            chunks, close_notify = [], True
            while True:
                try:
                    data = s.recv(65536)
                except ssl.SSLEOFError:
                    close_notify = False
                    break
                if not data:
                    break
                chunks.append(data)
            return (Reply(b"".join(chunks), close_notify), s.version(),
                    s.cipher()[0])


def env_of(reply):
    assert reply.status == 20, reply
    env = {}
    for line in reply.body.decode().splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return env


def proc_state(pid):
    """The one-letter state of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def wait_until(cond, what, limit=20):
    deadline = time.time() + limit * SLOW
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


def expect_reaped(pid):
    """A script's process: killed and reaped by the server (no zombie)."""
    wait_until(lambda: proc_state(pid) is None, f"process {pid} reaped")


def expect_dead(pid):
    """A script's child: killed. Orphaned, it is init's to reap, so a
    zombie counts as dead."""
    wait_until(lambda: proc_state(pid) in (None, "Z"), f"process {pid} dead")


def read_pid(path):
    wait_until(lambda: path.exists() and path.read_text().strip(),
               f"{path.name} written")
    return int(path.read_text())


HELLO_SH = "#!/bin/sh\nprintf '20 text/gemini\\r\\n# Hello from sh\\n'\n"
HELLO_PY = f"""#!{PYTHON}
import sys
sys.stdout.write("20 text/gemini\\r\\n# Hello from Python\\n")
"""
HELLO_PL = """#!/usr/bin/perl
print "20 text/gemini\\r\\n# Hello from Perl\\n";
"""
ENV_PY = f"""#!{PYTHON}
import os, sys
out = sys.stdout.buffer
out.write(b"20 text/plain\\r\\n")
for name in sorted(os.environb):
    out.write(name + b"=" + os.environb[name] + b"\\n")
"""
# A script that waits for its test, bounded so that it can never hang on.
WAIT_SH = """#!/bin/sh
echo $$ > ../wait.pid
i=0
while [ ! -e ../release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
printf '20 text/plain\\r\\nreleased'
"""
# Silent, with a child in the background: both must go.
HANG_SH = """#!/bin/sh
echo $$ > ../hang.pid
sleep 60 &
echo $! > ../hang.child
wait
"""


def test_hello_in_sh_python_and_perl(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "hello.sh", HELLO_SH)
    write_script(root, "hello.py", HELLO_PY)
    write_script(root, "hello.pl", HELLO_PL)
    s = xitzin(cgi_conf(root))
    for name, lang in [("sh", "sh"), ("py", "Python"), ("pl", "Perl")]:
        r = s.get(f"/cgi-bin/hello.{name}")
        assert (r.status, r.meta) == (20, "text/gemini"), r
        assert r.body == f"# Hello from {lang}\n".encode()
        assert r.close_notify


def test_environment_variable_by_variable(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "env.py", ENV_PY)
    crt, key = make_client_cert(tmp_path, "alice")
    parent = dict(os.environ, XZ_E2E_PARENT="inherited",
                  REMOTE_USER="forged", TLS_CLIENT_HASH="SHA256:forged")
    s = xitzin(cgi_conf(root, "app_state_keys = db_url, api_key\n") +
               "[state]\ndb_url = postgres://localhost/mydb\n",
               env=parent)
    url = "gemini://localhost/cgi-bin/env.py/a/b%20c?x=1&y=%20z"
    r, version, cipher = tls_request(s.port, url, crt, key)
    env = env_of(r)
    der = ssl.PEM_cert_to_DER_cert(crt.read_text())
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["PATH_INFO"] == "/a/b c"
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["SERVER_NAME"] == "localhost"
    assert env["SERVER_PORT"] == str(s.port)
    assert env["GEMINI_URL"] == url
    assert env["REMOTE_ADDR"] == env["REMOTE_HOST"] == "127.0.0.1"
    assert env["TLS_CLIENT_HASH"] == "SHA256:" + hashlib.sha256(der).hexdigest()
    assert env["TLS_CLIENT_AUTHORISED"] == "1"
    assert env["REMOTE_USER"] == "alice"
    assert env["AUTH_TYPE"] == "CERTIFICATE"
    assert env["TLS_CLIENT_SUBJECT"] == env["TLS_CLIENT_ISSUER"] == "CN=alice"
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(stamp, env["TLS_CLIENT_NOT_BEFORE"])
    assert re.fullmatch(stamp, env["TLS_CLIENT_NOT_AFTER"])
    assert env["TLS_VERSION"] == version == "TLSv1.3"
    assert env["TLS_CIPHER"] == cipher
    assert env["XITZIN_DB_URL"] == "postgres://localhost/mydb"
    assert "XITZIN_API_KEY" not in env  # a key that state does not have
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["SERVER_PROTOCOL"] == "GEMINI"
    assert env["SERVER_SOFTWARE"] == "xitzin/0.1.0"
    assert env["XZ_E2E_PARENT"] == "inherited"
    # Without a certificate nothing about one is said, nor inherited.
    r, _, _ = tls_request(s.port, "gemini://localhost/cgi-bin/env.py?")
    env = env_of(r)
    assert env["QUERY_STRING"] == ""  # an empty query: set, empty
    assert env["PATH_INFO"] == ""
    assert env["TLS_CLIENT_AUTHORISED"] == "0"
    for name in ["REMOTE_USER", "AUTH_TYPE", "TLS_CLIENT_HASH"]:
        assert name not in env, name
    r, _, _ = tls_request(s.port, "gemini://localhost/cgi-bin/env.py")
    assert env_of(r)["QUERY_STRING"] == ""  # no query: set all the same


def test_inherit_environment_off(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "env.py", ENV_PY)
    s = xitzin(cgi_conf(root, "inherit_environment = false\n"),
               env=dict(os.environ, XZ_E2E_PARENT="x"))
    env = env_of(s.get("/cgi-bin/env.py"))
    assert "XZ_E2E_PARENT" not in env and "HOME" not in env
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"


def test_error_exit_is_42_and_stderr_goes_to_the_log(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "fail.sh",
                 "#!/bin/sh\necho 'secret-detail: db down' >&2\nexit 3\n")
    write_script(root, "fail.py", f"#!{PYTHON}\nraise SystemExit('py-oops')\n")
    write_script(root, "late.pl", "#!/usr/bin/perl\n"
                 "print \"20 text/plain\\r\\npartial\";\nexit 2;\n")
    s = xitzin(cgi_conf(root))
    r = s.get("/cgi-bin/fail.sh")
    assert (r.status, r.meta, r.body) == (42, "CGI script error", b"")
    assert b"secret" not in r.raw
    r = s.get("/cgi-bin/fail.py")
    assert (r.status, r.meta) == (42, "CGI script error")
    # A valid header stands whatever the exit status.
    r = s.get("/cgi-bin/late.pl")
    assert (r.status, r.body) == (20, b"partial")
    wait_until(lambda: "late.pl: exited with status 2" in s.log(),
               "late.pl's exit status logged")
    log = s.log()
    assert "cgi /cgi-bin/fail.sh: secret-detail: db down" in log
    assert "cgi /cgi-bin/fail.sh: exited with status 3" in log
    assert "cgi /cgi-bin/fail.py: py-oops" in log


def test_timeout_kills_the_script_and_its_children(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "hang.sh", HANG_SH)
    s = xitzin(cgi_conf(root, "timeout = 1\n"))
    r = s.get("/cgi-bin/hang.sh")
    assert (r.status, r.meta) == (42, "CGI script timeout")
    expect_reaped(read_pid(tmp_path / "hang.pid"))
    expect_dead(read_pid(tmp_path / "hang.child"))


def test_redirect_and_input(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "redirect.sh",
                 "#!/bin/sh\nprintf '30 gemini://localhost/new\\r\\n'\n")
    write_script(root, "ask.py", f"#!{PYTHON}\nimport os, sys\n"
                 "q = os.environ['QUERY_STRING']\n"
                 "sys.stdout.write('20 text/plain\\r\\n' + q if q else "
                 "'10 Enter your name:\\r\\n')\n")
    s = xitzin(cgi_conf(root))
    r = s.get("/cgi-bin/redirect.sh")
    assert (r.status, r.meta, r.body) == (30, "gemini://localhost/new", b"")
    r = s.get("/cgi-bin/ask.py")
    assert (r.status, r.meta) == (10, "Enter your name:")
    assert s.get("/cgi-bin/ask.py?Ada").body == b"Ada"


def test_binary_body_intact(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "bin.py", f"#!{PYTHON}\nimport sys\n"
                 "sys.stdout.buffer.write(b'20 application/octet-stream\\r\\n'"
                 " + bytes(range(256)) * 64)\n")
    s = xitzin(cgi_conf(root))
    r = s.get("/cgi-bin/bin.py")
    assert (r.status, r.meta) == (20, "application/octet-stream")
    assert r.body == bytes(range(256)) * 64


def test_three_output_shapes(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "line.sh",
                 "#!/bin/sh\nprintf '20 text/gemini\\r\\n# line'\n")
    write_script(root, "block.py", f"#!{PYTHON}\nimport sys\n"
                 "sys.stdout.write('Status: 20 text/gemini\\r\\n"
                 "X-Other: ignored\\r\\n\\r\\n# block')\n")
    write_script(root, "nph.pl", "#!/usr/bin/perl\n"
                 "print \"GEMINI 20 text/gemini\\r\\n\\r\\n# nph\";\n")
    s = xitzin(cgi_conf(root))
    for name, body in [("line.sh", b"# line"), ("block.py", b"# block"),
                       ("nph.pl", b"# nph")]:
        r = s.get(f"/cgi-bin/{name}")
        assert (r.status, r.meta, r.body) == (20, "text/gemini", body), name
        assert r.raw.startswith(b"20 text/gemini\r\n"), name


def test_what_is_refused(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "plain.sh", HELLO_SH, mode=0o644)
    (root / "subdir").mkdir()
    ran = tmp_path / "ran-outside"
    outside = write_script(tmp_path, "outside.sh",
                           f"#!/bin/sh\ntouch {ran}\n" + HELLO_SH[10:])
    (root / "escape.sh").symlink_to("../outside.sh")
    (root / "absolute.sh").symlink_to(outside)
    write_script(root, "hello.sh", HELLO_SH)
    (root / "alias.sh").symlink_to("hello.sh")
    s = xitzin(cgi_conf(root))
    r = s.get("/cgi-bin/plain.sh")
    assert (r.status, r.meta) == (42, "CGI script not executable")
    r = s.get("/cgi-bin/subdir")
    assert (r.status, r.meta) == (42, "CGI script not executable")
    for path in ["/cgi-bin/missing.sh", "/cgi-bin", "/cgi-bin/"]:
        r = s.get(path)
        assert (r.status, r.meta) == (51, "Not found"), path
    for path in ["/cgi-bin/escape.sh", "/cgi-bin/absolute.sh"]:
        r = s.get(path)
        assert r.status == 59, (path, r)
        assert b"Hello" not in r.raw
    # ".." that climbs out: refused before any handler sees it.
    for line in [b"gemini://localhost/cgi-bin/../../outside.sh\r\n",
                 b"gemini://localhost/cgi-bin/%2e%2e/%2e%2e/outside.sh\r\n"]:
        assert s.raw(line).status == 59, line
    assert not ran.exists()
    # A symlink that stays inside runs its target.
    assert s.get("/cgi-bin/alias.sh").body == b"# Hello from sh\n"


def test_client_leaving_mid_stream_leaves_no_process(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "endless.py", f"#!{PYTHON}\nimport os, sys\n"
                 "open('../endless.pid', 'w').write(str(os.getpid()))\n"
                 "out = sys.stdout.buffer\n"
                 "out.write(b'20 application/octet-stream\\r\\n')\n"
                 "while True:\n    out.write(b'x' * 65536)\n")
    s = xitzin(cgi_conf(root, "max_response_size = unlimited\n"))
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"gemini://localhost/cgi-bin/endless.py\r\n")
        got = 0
        while got < 2 * MIB:
            got += len(tls.recv(65536))
        tls.close()  # gone, mid-stream
    expect_reaped(read_pid(tmp_path / "endless.pid"))


def test_client_leaving_before_any_output_leaves_no_process(xitzin, tmp_path):
    """A client that is gone (a reset: a FIN alone is a half-close, which
    is still answered) ends its script at once, output or not."""
    root = bin_dir(tmp_path)
    write_script(root, "hang.sh", HANG_SH)
    s = xitzin(cgi_conf(root))
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"gemini://localhost/cgi-bin/hang.sh\r\n")
        pid = read_pid(tmp_path / "hang.pid")
        child = read_pid(tmp_path / "hang.child")
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       struct.pack("ii", 1, 0))
        tls.close()
    expect_reaped(pid)
    expect_dead(child)


def test_stopping_the_server_leaves_no_process(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "hang.sh", HANG_SH)
    s = xitzin("[server]\ndrain_timeout = 1\n" + cgi_conf(root))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(s.get, "/cgi-bin/hang.sh")
        pid = read_pid(tmp_path / "hang.pid")
        child = read_pid(tmp_path / "hang.child")
        assert s.stop() == 0  # the drain times out: the request is cut
        assert pending.result().status is None
    expect_reaped(pid)
    expect_dead(child)


def test_a_second_sigterm_skips_the_drain_and_still_kills_scripts(xitzin,
                                                                  tmp_path):
    """The first SIGTERM drains (for up to two minutes here); a second one
    cuts the drain short, yet the process still exits cleanly, killing and
    reaping every script: signals stay caught until the workers are done."""
    root = bin_dir(tmp_path)
    write_script(root, "hang.sh", HANG_SH)
    s = xitzin("[server]\ndrain_timeout = 120\n" + cgi_conf(root))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(s.get, "/cgi-bin/hang.sh")
        pid = read_pid(tmp_path / "hang.pid")
        child = read_pid(tmp_path / "hang.child")
        s.proc.send_signal(signal.SIGTERM)
        # Two signals sent at once may arrive as one: wait for the first.
        wait_until(lambda: "stopping" in s.log(), "the first SIGTERM seen")
        assert s.proc.poll() is None  # draining: the script is still there
        start = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=60 * SLOW) == 0
        assert time.monotonic() - start < 60 * SLOW  # not the 120 s drain
        assert pending.result().status is None
    assert "skipping the drain" in s.log()
    expect_reaped(pid)
    expect_dead(child)


def marked_processes(marker):
    """Pids whose environment holds marker (what a script's descendants
    inherit, whatever they exec or however they detach)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def daemon_sh(marker):
    """Three ways out of a script's process group, each started before the
    script answers (every pid written first): setsid with a middle process
    that exits, setsid with a middle process that stays and waits (two
    generations to kill), and Python's classic double fork."""
    return f"""#!/bin/sh
export XZ_TEST_MARK={marker}
setsid sh -c 'sleep 123 >/dev/null 2>&1 & echo $! > ../d1.pid' \
    </dev/null >/dev/null 2>&1
setsid sh -c 'sleep 124 >/dev/null 2>&1 & echo $! > ../d2.pid
    echo $$ > ../d2m.pid; wait' </dev/null >/dev/null 2>&1 &
{PYTHON} -c '
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    pid = os.fork()
    if pid == 0:
        os.close(r); os.close(w)
        fd = os.open("/dev/null", os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        time.sleep(125)
        os._exit(0)
    os.write(w, str(pid).encode())
    os._exit(0)
os.close(w)
open("../d3.pid", "w").write(os.read(r, 32).decode())
os.wait()
'
until [ -s ../d2.pid ] && [ -s ../d2m.pid ]; do sleep 0.01; done
printf '20 text/gemini\r\ndaemons started\n'
"""


def test_no_daemon_outlives_its_request(xitzin, tmp_path):
    """A script that daemonizes (setsid, double fork) leaves its process
    group and session, so the group kill misses it. The server, a child
    subreaper, gets the orphans and kills them: after the answer no
    process holding the script's marker is left, as /proc shows."""
    root = bin_dir(tmp_path)
    marker = f"xitzin-daemon-{os.getpid()}-{time.monotonic_ns()}"
    write_script(root, "daemon.sh", daemon_sh(marker))
    s = xitzin(cgi_conf(root))
    pids = []
    try:
        r = s.get("/cgi-bin/daemon.sh")
        assert (r.status, r.body) == (20, b"daemons started\n"), r
        pids = [read_pid(tmp_path / f"d{n}.pid") for n in ("1", "2", "2m", "3")]
        wait_until(lambda: not marked_processes(marker),
                   "no process of the script left")
        for pid in pids:
            expect_reaped(pid)  # reaped by the server, no zombie left
        assert "in a session of their own" in s.log()
        # And the server still runs scripts afterwards.
        write_script(root, "hello.sh", HELLO_SH)
        assert s.get("/cgi-bin/hello.sh").status == 20
    finally:
        for pid in marked_processes(marker):  # a failed run cleans up
            os.kill(pid, signal.SIGKILL)


def test_100_concurrent_requests_all_answered(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "echo.sh", "#!/bin/sh\n"
                 "printf '20 text/plain\\r\\n%s' \"$QUERY_STRING\"\n")
    s = xitzin(cgi_conf(root, "max_processes = 100\n"))

    def one(i):
        return i, s.get(f"/cgi-bin/echo.sh?n{i}")

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        replies = list(pool.map(one, range(100)))
    for i, r in replies:
        assert (r.status, r.body) == (20, f"n{i}".encode()), (i, r)


def test_a_full_mount_answers_44(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "wait.sh", WAIT_SH)
    write_script(root, "hello.sh", HELLO_SH)
    s = xitzin(cgi_conf(root, "max_processes = 1\n"))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(s.get, "/cgi-bin/wait.sh")
        read_pid(tmp_path / "wait.pid")  # it runs: the one slot is taken
        r = s.get("/cgi-bin/hello.sh")
        assert (r.status, r.meta) == (44, "5")  # SLOW DOWN: seconds
        (tmp_path / "release").touch()
        assert first.result().body == b"released"
    # Its request over, the slot is free again, for each in turn.
    for _ in range(5):
        assert s.get("/cgi-bin/hello.sh").status == 20


def test_max_response_size_exceeded(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "big.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\n'\n"
                 "head -c 2048 /dev/zero\n")
    write_script(root, "fits.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\n'\n"
                 "head -c 1000 /dev/zero\n")
    s = xitzin(cgi_conf(root, "max_response_size = 1K\n"))
    r = s.get("/cgi-bin/big.sh")
    assert (r.status, r.meta, r.body) == (
        42, "CGI response exceeds maximum size", b"")
    r = s.get("/cgi-bin/fits.sh")
    assert (r.status, len(r.body)) == (20, 1000)


def test_unlimited_streaming_of_a_large_output(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    write_script(root, "big.py", f"#!{PYTHON}\nimport sys\n"
                 "out = sys.stdout.buffer\n"
                 "out.write(b'20 application/octet-stream\\r\\n')\n"
                 "for i in range(32):\n"
                 "    out.write(bytes([i]) * 7 + bytes(range(256)) * 1024)\n")
    s = xitzin(cgi_conf(root, "max_response_size = 0\n"))
    r = s.get("/cgi-bin/big.py")
    want = b"".join(bytes([i]) * 7 + bytes(range(256)) * 1024
                    for i in range(32))
    assert r.status == 20 and r.close_notify
    assert len(r.body) == len(want) == 32 * (7 + 256 * 1024)
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(want).digest()


def test_single_script_mount(xitzin, tmp_path):
    root = bin_dir(tmp_path)
    script = write_script(root, "app.py", ENV_PY)
    s = xitzin(f"[cgi /app]\nscript = {script}\n")
    env = env_of(s.get("/app/users/123?q=1"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/users/123")
    assert env["QUERY_STRING"] == "q=1"
    env = env_of(s.get("/app"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "")
    assert s.get("/application").status == 51


def test_the_examples(xitzin, tmp_path):
    crt, key = make_client_cert(tmp_path, "bob")
    s = xitzin(cgi_conf(ROOT / "examples" / "cgi"))
    r = s.get("/cgi-bin/hello.sh/where?a%20b")
    assert (r.status, r.meta) == (20, "text/gemini")
    assert b"Path: /where\nQuery: a%20b\n" in r.body
    assert b"=> /cgi-bin/env.py " in r.body
    r = s.get("/cgi-bin/env.py/x")
    assert r.meta == "text/plain; charset=utf-8"
    assert "PATH_INFO=/x\n" in r.body.decode()
    r = s.get("/cgi-bin/greet.pl")
    assert (r.status, r.meta) == (10, "What is your name?")
    r = s.get("/cgi-bin/greet.pl?J%C3%BCrgen")
    assert r.status == 20 and "# Hello, Jürgen!" in r.body.decode()
    assert b"No client certificate" in r.body
    r, _, _ = tls_request(s.port, "gemini://localhost/cgi-bin/greet.pl?Bob",
                          crt, key)
    assert b"Your certificate says bob (SHA256:" in r.body
