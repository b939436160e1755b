"""Shared session-ticket keys (ticket_key_file): two xitzin processes
with the same key file resume each other's TLS sessions, 1.3 and 1.2,
with OpenSSL's and Python's clients; without the file each process has
its own key, as before. xitzin -k writes a key file."""

import os
import socket
import ssl
import stat
import subprocess

import pytest

from conftest import BIN, SANITIZER_REPORT, SLOW, start_server


def s_client(port, *args):
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "localhost", "-ign_eof", *args],
        input=b"gemini://localhost/\r\n", capture_output=True,
        timeout=20 * SLOW)
    return r.stdout.decode("utf-8", "replace") + r.stderr.decode(
        "utf-8", "replace")


def make_key(path):
    r = subprocess.run([BIN, "-k", str(path)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode == 0, r
    return path


@pytest.fixture
def pair(tmp_path):
    """pair(key_a, key_b) -> two running servers sharing a certificate."""
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    (capsule / "index.gmi").write_text("# Home\n")
    servers = []

    def start(key_a, key_b):
        for name, key in (("a", key_a), ("b", key_b)):
            d = tmp_path / name
            d.mkdir()
            body = (f"[server]\ncert = {tmp_path}/certs/t.crt\n"
                    f"key = {tmp_path}/certs/t.key\n")
            if key is not None:
                body += f"ticket_key_file = {key}\n"
            body += f"[static /]\nroot = {capsule}\n"
            servers.append(start_server(d, body))
        return servers

    yield start
    codes = [s.stop() for s in servers]  # all stopped before any assert
    for s, rc in zip(servers, codes):
        log = s.log()
        assert rc == 0, log
        assert not SANITIZER_REPORT.search(log), log


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_openssl_resumes_on_the_other_instance(pair, tmp_path, version):
    a, b = pair(make_key(tmp_path / "tickets.key"), tmp_path / "tickets.key")
    sess = tmp_path / "sess.pem"
    out = s_client(a.port, version, "-sess_out", str(sess))
    assert "\n20 text/gemini" in out and "New, TLSv1." in out, out
    out = s_client(b.port, version, "-sess_in", str(sess))
    assert "Reused, TLSv1." in out, out
    assert "\n20 text/gemini" in out


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3,
                                     ssl.TLSVersion.TLSv1_2])
def test_python_resumes_back_and_forth(pair, tmp_path, version):
    key = make_key(tmp_path / "tickets.key")
    a, b = pair(key, key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    session, reused = None, []
    for port in (a.port, b.port, a.port, b.port):
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=10 * SLOW) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost",
                                 session=session) as s:
                s.sendall(b"gemini://localhost/\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                assert data.startswith(b"20 text/gemini"), data
                reused.append(s.session_reused)
                session = s.session
    assert reused == [False, True, True, True]


def test_without_the_file_each_instance_has_its_own(pair, tmp_path):
    a, b = pair(None, None)
    sess = tmp_path / "sess.pem"
    out = s_client(a.port, "-tls1_3", "-sess_out", str(sess))
    assert "\n20 text/gemini" in out
    out = s_client(b.port, "-tls1_3", "-sess_in", str(sess))
    assert "New, TLSv1.3" in out and "Reused" not in out, out
    assert "\n20 text/gemini" in out
    # The same instance still resumes its own (behaviour as before).
    out = s_client(a.port, "-tls1_3", "-sess_in", str(sess))
    assert "Reused, TLSv1.3" in out, out


def test_different_files_do_not_resume(pair, tmp_path):
    a, b = pair(make_key(tmp_path / "one.key"), make_key(tmp_path / "two.key"))
    sess = tmp_path / "sess.pem"
    s_client(a.port, "-tls1_2", "-sess_out", str(sess))
    out = s_client(b.port, "-tls1_2", "-sess_in", str(sess))
    assert "New, TLSv1.2" in out and "\n20 text/gemini" in out, out


def test_k_writes_a_private_key_once(tmp_path):
    path = make_key(tmp_path / "sub" / "tickets.key")
    st = path.stat()
    assert st.st_size == 64
    assert stat.S_IMODE(st.st_mode) == 0o600
    before = path.read_bytes()
    r = subprocess.run([BIN, "-k", str(path)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode == 1
    assert f"{path}: File exists" in r.stderr
    assert path.read_bytes() == before
    r = subprocess.run([BIN, "-k", str(tmp_path / "x"), "-c", "y"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 1 and "usage:" in r.stderr


def test_openssl_rand_file_works_and_bad_files_stop_startup(tmp_path):
    """The documented alternative, and each refusal, named at startup."""
    good = tmp_path / "rand.key"
    subprocess.run(["openssl", "rand", "-out", str(good), "64"], check=True)
    os.chmod(good, 0o600)
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 32)
    os.chmod(short, 0o600)
    loose = make_key(tmp_path / "loose.key")
    os.chmod(loose, 0o604)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.gmi").write_text("# Home\n")
    cases = [(good, None),
             (short, f"{short}: 32 bytes, a ticket key has 64"),
             (loose, f"{loose}: mode 0604 lets others read it"),
             (tmp_path / "none.key", f"{tmp_path}/none.key: No such file")]
    for key, error in cases:
        conf = tmp_path / "x.conf"
        conf.write_text("[server]\nlisten = 127.0.0.1:0\n"
                        f"cert = {tmp_path}/c.crt\nkey = {tmp_path}/c.key\n"
                        f"ticket_key_file = {key}\n"
                        f"[static /]\nroot = {site}\n")
        if error is None:
            (tmp_path / "ok").mkdir()
            s = start_server(tmp_path / "ok", "[server]\n"
                             f"ticket_key_file = {key}\n"
                             f"[static /]\nroot = {site}\n")
            try:
                assert s.get("/").status == 20
            finally:
                assert s.stop() == 0
            continue
        r = subprocess.run([BIN, "-c", str(conf)], capture_output=True,
                           text=True, timeout=30 * SLOW)
        assert r.returncode == 1
        assert error in r.stderr, r.stderr
