"""TLS as the clients Gemini users run make it (OpenSSL, Go and Python all
send a single X25519 key share and list P-256 as supported): one round
trip, no HelloRetryRequest; certificates as operators have them."""

import os
import socket
import ssl
import statistics
import subprocess
import time

import pytest

from conftest import BIN, SLOW, client_context, write_config


def static(capsule):
    return f"[static /]\nroot = {capsule}\n"


def s_client(port, *args, request=b"gemini://localhost/\r\n"):
    """openssl s_client with -msg: (ClientHellos sent, whole output)."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "localhost", "-msg", "-ign_eof", *args],
        input=request, capture_output=True, timeout=20 * SLOW)
    out = r.stdout.decode("utf-8", "replace") + r.stderr.decode(
        "utf-8", "replace")
    hellos = sum(1 for line in out.splitlines()
                 if line.startswith(">>>") and "ClientHello" in line)
    return hellos, out


def retries_logged(server):
    return server.log().count("HelloRetryRequest sent")


def test_openssl_default_client_one_round_trip(xitzin, capsule):
    s = xitzin(static(capsule), args=("-v",))
    hellos, out = s_client(s.port, "-tls1_3")
    assert hellos == 1, out
    assert "Server Temp Key: X25519" in out
    assert "\n20 text/gemini" in out
    assert retries_logged(s) == 0


def test_python_default_client_gets_no_retry(xitzin, capsule):
    s = xitzin(static(capsule), args=("-v",))
    for _ in range(3):
        r = s.get("/")
        assert r.status == 20 and r.close_notify
    assert retries_logged(s) == 0
    assert s.log().count("handshake -> read-request") == 3


@pytest.mark.parametrize("groups,temp_key", [
    ("P-256", "prime256v1"),        # only P-256 offered
    ("P-256:X25519", "prime256v1"),  # a P-256 share, X25519 listed
    ("P-384", "secp384r1"),
    ("X448", "X448"),
])
def test_the_share_the_client_sent_is_taken(xitzin, capsule, groups,
                                             temp_key):
    s = xitzin(static(capsule), args=("-v",))
    hellos, out = s_client(s.port, "-tls1_3", "-groups", groups)
    assert hellos == 1, out
    assert temp_key in out and "\n20 text/gemini" in out
    assert retries_logged(s) == 0


def test_retry_only_when_no_share_is_usable(xitzin, capsule):
    """A share in a group we refuse (FFDHE), X25519 listed: the one case
    for a HelloRetryRequest; the server counts it in its log."""
    s = xitzin(static(capsule), args=("-v",))
    hellos, out = s_client(s.port, "-tls1_3", "-groups", "ffdhe2048:X25519")
    assert hellos == 2, out
    assert "\n20 text/gemini" in out
    assert retries_logged(s) == 1


@pytest.mark.parametrize("groups", ["ffdhe2048", "ffdhe3072:ffdhe4096"])
def test_no_common_group_is_a_clean_handshake_failure(xitzin, capsule,
                                                      groups):
    s = xitzin(static(capsule))
    hellos, out = s_client(s.port, "-tls1_3", "-groups", groups)
    assert "alert handshake failure" in out, out
    assert "text/gemini" not in out
    assert s.get("/").status == 20  # and the server is fine


def client_hello(groups, shares):
    """A TLS 1.3 ClientHello record offering only these group ids, with a
    32-byte key share for each id in shares (RFC 8446, 4.1.2)."""
    def u16(n):
        return n.to_bytes(2, "big")

    def ext(kind, body):
        return u16(kind) + u16(len(body)) + body

    glist = b"".join(u16(g) for g in groups)
    klist = b"".join(u16(g) + u16(32) + os.urandom(32) for g in shares)
    exts = (ext(43, b"\x02\x03\x04")                       # TLS 1.3
            + ext(10, u16(len(glist)) + glist)               # groups
            + ext(51, u16(len(klist)) + klist)               # key_share
            + ext(13, b"\x00\x06\x04\x03\x08\x07\x08\x04"))  # sig algs
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32)
            + u16(2) + b"\x13\x01" + b"\x01\x00" + u16(len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


@pytest.mark.parametrize("group", [0x7A7A, 0x0100])  # GREASE, FFDHE2048
def test_unknown_group_only_is_a_clean_handshake_failure(xitzin, capsule,
                                                         group):
    s = xitzin(static(capsule))
    with socket.create_connection(("127.0.0.1", s.port),
                                  timeout=10 * SLOW) as raw:
        raw.sendall(client_hello([group], [group]))
        answer = b""
        while True:
            data = raw.recv(100)
            if not data:
                break
            answer += data
    # One fatal alert record (type 21, level 2), handshake_failure (40)
    # or illegal_parameter (47), then the end.
    assert answer[:1] == b"\x15" and answer[5:6] == b"\x02", answer
    assert answer[6] in (40, 47), answer
    assert s.get("/").status == 20


def test_tls12_client_without_key_shares(xitzin, capsule):
    s = xitzin(static(capsule))
    _, out = s_client(s.port, "-tls1_2")
    assert "Protocol  : TLSv1.2" in out or "TLSv1.2" in out
    assert "\n20 text/gemini" in out


def test_plaintext_request_gets_nothing_back(xitzin, capsule):
    """gemini-diagnostics' TLSRequired: a request without TLS is closed
    without a byte, not answered with an alert."""
    s = xitzin(static(capsule), args=("-v",))
    for line in (b"gemini://localhost/\r\n", b"GET / HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", s.port),
                                      timeout=10 * SLOW) as raw:
            raw.sendall(line)
            assert raw.recv(100) == b""
    assert "not a TLS handshake" in s.log()
    assert s.get("/").status == 20


def make_chain(tmp):
    """root CA -> intermediate CA -> leaf for localhost, made with openssl;
    returns (full-chain PEM path, leaf key path, intermediate PEM)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       cwd=tmp)

    ext = tmp / "ext.cnf"
    ext.write_text(
        "[ca]\nbasicConstraints=critical,CA:TRUE\n"
        "keyUsage=critical,keyCertSign,cRLSign\n"
        "[leaf]\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.crt",
        "-days", "30", "-subj", "/CN=Test Root", "-addext",
        "basicConstraints=critical,CA:TRUE")
    run("req", *ec, "-keyout", "int.key", "-out", "int.csr", "-subj",
        "/CN=Test Intermediate")
    run("x509", "-req", "-in", "int.csr", "-CA", "root.crt", "-CAkey",
        "root.key", "-CAcreateserial", "-out", "int.crt", "-days", "30",
        "-extfile", str(ext), "-extensions", "ca")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj",
        "/CN=localhost")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "int.crt", "-CAkey",
        "int.key", "-CAcreateserial", "-out", "leaf.crt", "-days", "30",
        "-extfile", str(ext), "-extensions", "leaf")
    full = tmp / "fullchain.pem"
    full.write_text((tmp / "leaf.crt").read_text() +
                    (tmp / "int.crt").read_text())
    return full, tmp / "leaf.key", tmp / "root.crt"


def test_full_chain_is_served_whole(xitzin, capsule, tmp_path):
    full, key, root = make_chain(tmp_path)
    s = xitzin(static(capsule) +
               f"[server]\ncert = {full}\nkey = {key}\n")
    _, out = s_client(s.port, "-showcerts", "-CAfile", str(root),
                      "-verify_return_error", "-verify_hostname", "localhost")
    assert out.count("BEGIN CERTIFICATE") == 2, out
    assert "Verify return code: 0 (ok)" in out
    assert "\n20 text/gemini" in out


def test_key_that_does_not_match_is_refused_at_start(tmp_path, capsule):
    full, _, _ = make_chain(tmp_path)
    other = tmp_path / "other.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(other)],
                   check=True, capture_output=True)
    conf = write_config(tmp_path, static(capsule) +
                        f"[server]\ncert = {full}\nkey = {other}\n")
    r = subprocess.run([BIN, "-c", str(conf)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode == 1, r
    assert f"{full}: does not match the key in {other}" in r.stderr


def test_ticket_resumption_tls13(xitzin, capsule, tmp_path):
    """What clients do on their next request: resume with the ticket."""
    s = xitzin(static(capsule))
    sess = tmp_path / "sess.pem"
    _, out = s_client(s.port, "-tls1_3", "-sess_out", str(sess))
    assert "\n20 text/gemini" in out
    _, out = s_client(s.port, "-tls1_3", "-sess_in", str(sess))
    assert "Reused, TLSv1.3" in out, out
    assert "\n20 text/gemini" in out


def timed_request(port, nodelay, ctx, session=None):
    """(milliseconds from connect to the end of the answer, the session,
    whether it was resumed) for one request with Python's ssl."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=10 * SLOW) as raw:
        if nodelay:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             session=session) as s:
            s.sendall(b"gemini://localhost/\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            assert data.startswith(b"20 "), data
            return ((time.perf_counter() - start) * 1000, s.session,
                    s.session_reused)


@pytest.mark.parametrize("tls_max,resume", [
    (ssl.TLSVersion.TLSv1_3, False), (ssl.TLSVersion.TLSv1_3, True),
    (ssl.TLSVersion.TLSv1_2, True)])
def test_nagle_client_not_held_by_a_delayed_ack(xitzin, capsule, tls_max,
                                                resume):
    """Python's and OpenSSL's sockets keep Nagle's algorithm on: the
    request waits until the client's Finished is acknowledged. With
    nothing of ours to send after that Finished (TLS 1.3, TLS 1.2
    resumption) the kernel delayed the ACK, 40 ms on every request; the
    server acknowledges at once now. Measured against the same client with
    TCP_NODELAY, alternately: the delay, were it back, is 40 ms or more."""
    s = xitzin(static(capsule))
    ctx = client_context(tls_max=tls_max)
    times = {True: [], False: []}
    sessions = {True: None, False: None}
    for _ in range(7):
        for nodelay in (False, True):
            ms, sess, reused = timed_request(s.port, nodelay, ctx,
                                             sessions[nodelay])
            if resume:
                sessions[nodelay] = sess
                if sess is not None and not reused:
                    continue  # the first of each: a full handshake
            times[nodelay].append(ms)
    nagle, nodelay = (statistics.median(times[k]) for k in (False, True))
    assert nagle < nodelay + 25, (times, nagle, nodelay)
