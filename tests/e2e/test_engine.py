"""The engine end to end: static files, every bad request, TLS details,
concurrency and the graceful stop, against the real program."""

import asyncio
import hashlib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import BIN, SLOW, client_context, gemini_raw, make_client_cert


def static(capsule, extra=""):
    return f"[static /]\nroot = {capsule}\n{extra}"


def test_index_and_mime_types(xitzin, capsule):
    s = xitzin(static(capsule))
    r = s.get("/")
    assert (r.status, r.meta, r.body) == (20, "text/gemini", b"# Home\n")
    r = s.get("/hello.txt")
    assert (r.status, r.meta, r.body) == (20, "text/plain", b"hello\n")
    r = s.get("/data.bin")
    assert r.meta == "application/octet-stream"
    assert r.body == bytes(range(256)) * 4
    r = s.get("/sub/")
    assert (r.status, r.body) == (20, b"# Sub\n")


def test_every_response_ends_with_close_notify(xitzin, capsule):
    s = xitzin(static(capsule))
    for path in ["/", "/missing", "/sub"]:
        assert s.get(path).close_notify, path
    assert s.raw(b"not a url\r\n").close_notify


def test_directory_without_slash_redirects(xitzin, capsule):
    s = xitzin(static(capsule))
    r = s.get("/sub")
    assert (r.status, r.meta) == (31, "/sub/")
    r = s.get("/sub?x=1")
    assert (r.status, r.meta) == (31, "/sub/?x=1")


def test_missing_is_51(xitzin, capsule):
    s = xitzin(static(capsule))
    for path in ["/nope", "/sub/nope.gmi", "/nodir/", "/hello.txt/x"]:
        r = s.get(path)
        assert (r.status, r.meta) == (51, "Not found"), path


def test_symlinks_stay_inside_the_root(xitzin, capsule):
    s = xitzin(static(capsule))
    assert s.get("/inside.txt").body == b"hello\n"
    assert s.get("/sub/up.txt").body == b"hello\n"
    assert s.get("/absolute.txt").status == 51
    r = s.get("/escape.txt")
    assert (r.status, r.meta) == (51, "Not found")
    assert b"secret" not in r.raw


def test_doubled_slashes_name_the_same_file(xitzin, capsule):
    # Each run of slashes is one (as gmid, Molly Brown and nginx have it):
    # served, and never an absolute path reaching openat2 (a warning).
    s = xitzin(static(capsule))
    for path, body in [("//hello.txt", b"hello\n"), ("///hello.txt", b"hello\n"),
                       ("/sub//page.gmi", b"# Page\n"), ("//sub//", b"# Sub\n"),
                       ("/%2Fhello.txt", b"hello\n")]:
        r = s.get(path)
        assert (r.status, r.body) == (20, body), path
    assert (s.get("//sub").status, s.get("//sub").meta) == (31, "/sub/")
    assert s.get("//nope").status == 51
    assert "static" not in s.log() and "cross-device" not in s.log()


def test_empty_path_redirects_to_root(xitzin, capsule):
    s = xitzin(static(capsule))
    r = s.raw(b"gemini://localhost\r\n")
    assert (r.status, r.meta) == (31, "/")
    r = s.raw(b"gemini://localhost?q\r\n")
    assert (r.status, r.meta) == (31, "/?q")


BAD_59 = [
    b"\r\n",  # empty
    b"/relative\r\n",
    b"localhost/no-scheme\r\n",
    b"gemini://user@localhost/\r\n",
    b"gemini://localhost/#frag\r\n",
    b"gemini://localhost/\xff\xfe\r\n",  # not UTF-8
    b"gemini://localhost/a b\r\n",  # space
    b"gemini://localhost/\x01\r\n",  # control byte
    b"gemini://localhost/%00\r\n",
    b"gemini://localhost/%zz\r\n",
    b"gemini://localhost/../etc/passwd\r\n",
    b"gemini://localhost/%2e%2e/etc/passwd\r\n",
    b"gemini://localhost/sub/%2E%2E/%2e%2e/x\r\n",
    b"gemini://localhost:99999/\r\n",
    b"gemini:///\r\n",  # empty host
]


@pytest.mark.parametrize("line", BAD_59, ids=repr)
def test_bad_requests_are_59(xitzin, capsule, line):
    s = xitzin(static(capsule))
    r = s.raw(line)
    assert r.status == 59, r
    assert r.close_notify


def test_url_length_limit(xitzin, capsule):
    s = xitzin(static(capsule))
    base = b"gemini://localhost/"
    exact = base + b"a" * (1024 - len(base))
    assert len(exact) == 1024
    assert s.raw(exact + b"\r\n").status == 51  # fine, just missing
    assert s.raw(exact + b"a\r\n").status == 59
    assert s.raw(exact + b"a" * 5000 + b"\r\n").status == 59


@pytest.mark.parametrize("line", [
    b"https://localhost/\r\n",
    b"gopher://localhost/\r\n",
    b"gemini://example.com/\r\n",
    b"gemini://localhost:1/\r\n",
], ids=repr)
def test_other_hosts_schemes_ports_are_53(xitzin, capsule, line):
    s = xitzin(static(capsule))
    assert s.raw(line).status == 53


def test_own_port_and_host_case_are_fine(xitzin, capsule):
    s = xitzin(static(capsule))
    assert s.raw(f"gemini://localhost:{s.port}/\r\n".encode()).status == 20
    assert s.raw(b"GEMINI://LocalHost/\r\n").status == 20


def test_line_without_cr_is_not_a_request(xitzin, capsule):
    s = xitzin(static(capsule, "[server]\nrequest_timeout = 1\n"))
    start = time.time()
    r = s.raw(b"gemini://localhost/\n")
    assert r.raw == b""  # dropped at the timeout, never answered
    assert time.time() - start >= 0.9


def test_silent_client_is_dropped(xitzin, capsule):
    s = xitzin(static(capsule, "[server]\nrequest_timeout = 1\n"))
    with socket.create_connection(("127.0.0.1", s.port)) as c:
        c.settimeout(10 * SLOW)
        assert c.recv(100) == b""  # closed by the server, no handshake
    # A silent TLS client (handshake done, no line) is dropped too.
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            c.settimeout(10 * SLOW)
            try:
                assert c.recv(100) == b""
            except (ConnectionResetError, ssl.SSLError):
                pass
    assert s.get("/").status == 20  # and the server is still fine


def test_tls12_and_tls13(xitzin, capsule):
    s = xitzin(static(capsule))
    assert s.get("/", tls_max=ssl.TLSVersion.TLSv1_2).status == 20
    assert s.get("/", tls_max=ssl.TLSVersion.TLSv1_3).status == 20


def test_generated_certificate(xitzin, capsule, tmp_path):
    s = xitzin(static(capsule))
    key = tmp_path / "certs" / "test.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    text = subprocess.run(["openssl", "x509", "-in",
                           str(tmp_path / "certs" / "test.crt"), "-noout",
                           "-text"], capture_output=True, text=True,
                          check=True).stdout
    assert "CN = localhost" in text
    assert "DNS:localhost" in text
    assert "prime256v1" in text or "P-256" in text
    # The served certificate is that file.
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            der = c.getpeercert(binary_form=True)
    pem = (tmp_path / "certs" / "test.crt").read_text()
    assert ssl.DER_cert_to_PEM_cert(der).split() == pem.split()


def test_client_certificate_accepted(xitzin, capsule, tmp_path):
    s = xitzin(static(capsule))
    crt, key = make_client_cert(tmp_path)
    r = s.get("/", cert=str(crt), key=str(key))
    assert r.status == 20 and r.close_notify


def test_access_log_line(xitzin, capsule):
    s = xitzin(static(capsule))
    s.get("/hello.txt")
    time.sleep(0.2)
    line = [l for l in s.log().splitlines() if "/hello.txt" in l][0]
    assert '"gemini://localhost/hello.txt" 20' in line
    assert "127.0.0.1" in line
    assert line.rstrip().endswith("ms")


async def _one(port, ctx, i):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    writer.write(f"gemini://localhost/hello.txt?{i}\r\n".encode())
    data = await reader.read()
    writer.close()
    return data


def test_200_concurrent_clients(xitzin, capsule):
    s = xitzin(static(capsule))
    ctx = client_context()

    async def run():
        return await asyncio.gather(*[_one(s.port, ctx, i)
                                      for i in range(200)])

    results = asyncio.run(run())
    assert all(r == b"20 text/plain\r\nhello\n" for r in results)
    assert len(results) == 200


def test_sigterm_drains_in_flight_requests(xitzin, capsule):
    big = bytes(range(256)) * (32 * 1024 * 4)  # 32 MiB
    (capsule / "big.bin").write_bytes(big)
    s = xitzin(static(capsule))
    ctx = client_context()
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=30 * SLOW)
    c = ctx.wrap_socket(raw, server_hostname="localhost",
                        suppress_ragged_eofs=False)
    c.sendall(b"gemini://localhost/big.bin\r\n")
    got = c.recv(1000)
    s.proc.send_signal(15)  # SIGTERM while the response is under way
    time.sleep(0.3)
    # New connections are refused once it stops accepting.
    with pytest.raises(OSError):
        gemini_raw(s.port, b"gemini://localhost/\r\n", timeout=2)
    chunks = [got]
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        chunks.append(d)
    c.close()
    body = b"".join(chunks).split(b"\r\n", 1)[1]
    assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
    assert s.proc.wait(timeout=30 * SLOW) == 0


def test_config_check_and_errors(tmp_path, capsule):
    conf = tmp_path / "ok.conf"
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\n[static /]\nroot = {capsule}\n")
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "configuration OK" in r.stdout
    cases = {
        "[server]\nlisten = 127.0.0.1:0\nbogus = 1\n": ":3: unknown key 'bogus'",
        "[server]\n\n[nonsense]\nx = 1\n": ":4: unknown section [nonsense]",
        "[static /]\nrot = x\n": ":2: unknown key 'rot'",
        "[static /]\nroot = /does/not/exist\n": ":2: root /does/not/exist",
        "[server]\nworkers = many\n": ":2: workers: invalid value 'many'",
        "[server]\nrequest_timeout = -1\n": ":2: request_timeout: invalid",
    }
    for body, want in cases.items():
        conf.write_text(body)
        r = subprocess.run([BIN, "-n", "-c", str(conf)], capture_output=True,
                           text=True)
        assert r.returncode == 1, body
        assert f"{conf}{want}" in r.stderr, (body, r.stderr)


def test_dir_mode_config_check(capsule):
    r = subprocess.run([BIN, "-t", str(capsule)], capture_output=True,
                       text=True)
    assert r.returncode == 0
    r = subprocess.run([BIN, "-t", "/does/not/exist"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "not a directory" in r.stderr


def test_usage(capsule):
    r = subprocess.run([BIN, "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: xitzin" in r.stdout
    r = subprocess.run([BIN], capture_output=True, text=True)
    assert r.returncode == 1
    r = subprocess.run([BIN, "-V"], capture_output=True, text=True)
    assert r.stdout.startswith("xitzin 0.")


def test_demo_configuration_is_valid():
    """`make run` serves examples/demo.conf: it must always check out."""
    from conftest import ROOT
    r = subprocess.run([BIN, "-t", "-c", str(ROOT / "examples" / "demo.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_file_truncated_while_served_is_cut_not_a_crash(xitzin, capsule):
    """Files are read as the client takes them, never mapped: one that
    shrinks mid-response ends the connection without close_notify (the
    client can tell it is short), and the server goes on."""
    path = capsule / "shrinking.bin"
    path.write_bytes(b"s" * (32 << 20))
    s = xitzin(static(capsule))
    ctx = client_context()
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=30 * SLOW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c = ctx.wrap_socket(raw, server_hostname="localhost")
    c.sendall(b"gemini://localhost/shrinking.bin\r\n")
    got = len(c.recv(65536))
    with open(path, "r+b") as f:
        f.truncate(1 << 20)
    clean = True
    while True:
        try:
            d = c.recv(1 << 20)
        except (ssl.SSLError, ConnectionResetError):
            clean = False
            break
        if not d:
            break
        got += len(d)
    c.close()
    assert not clean and got < (32 << 20)
    assert s.get("/hello.txt").status == 20
    assert "file ended early" in s.log()
