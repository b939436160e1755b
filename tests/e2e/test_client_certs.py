"""Hostile client certificates, end to end: text a backend is told is
escaped (RFC 4514 hexpairs), dates before 1970 are the real ones, a
certificate too large for a session ticket is still served over TLS 1.3
(without a ticket) and refused cleanly over TLS 1.2; and a host with a
trailing dot is the same host.

Certificates are made here with Python's cryptography; the bytes it won't
write (a string that is not UTF-8) are put into the DER afterwards and the
certificate signed again, so that its signature still verifies.
"""

import datetime
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from conftest import SLOW, client_context

PYTHON = "/usr/bin/python3"
# NUL-separated, so that a raw LF in a value could not hide.
ENV_PY = f"""#!{PYTHON}
import os, sys
out = sys.stdout.buffer
out.write(b"20 application/octet-stream\\r\\n")
for name in sorted(os.environb):
    out.write(name + b"=" + os.environb[name] + b"\\0")
"""
CERT_VARS = ["REMOTE_USER", "TLS_CLIENT_SUBJECT", "TLS_CLIENT_ISSUER",
             "TLS_CLIENT_NOT_BEFORE", "TLS_CLIENT_NOT_AFTER",
             "TLS_CLIENT_HASH"]
# Stands for bytes cryptography will not write; as long as them.
PLACEHOLDER = b"@@NONUTF8@@"
NON_UTF8 = b"x\xff\xfe\xc3(\xc2\x9b\xe2\x80\xaey"  # 11 bytes, like it
# Where: OpenSSL (the client here) refuses to load a UTF8String that is not
# UTF-8, but takes a PrintableString of any bytes, and GnuTLS passes both
# through as they are.
PRINTABLE = x509.name._ASN1Type.PrintableString


def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_element(tag, body):
    return bytes([tag]) + der_length(len(body)) + body


def der_split(data):
    """The elements of a DER SEQUENCE's contents, as raw bytes each."""
    out, i = [], 0
    while i < len(data):
        start = i
        i += 1
        n = data[i]
        i += 1
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        i += n
        out.append(data[start:i])
    return out


def der_body(element):
    """The contents of one DER element (tag and length left out)."""
    n = element[1]
    return element[2 + (n & 0x7F):] if n & 0x80 else element[2:]


def resign(der, key, old, new):
    """der with old replaced by new (same length) in its tbsCertificate
    (subject and issuer alike), and signed again with key."""
    assert len(old) == len(new)
    tbs, alg, _ = der_split(der_body(der))
    assert old in tbs
    tbs = tbs.replace(old, new)
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return der_element(0x30, tbs + alg + der_element(0x03, b"\0" + sig))


def make_cert(tmp, name, attrs, not_before=None, not_after=None,
              padding=0, patch=None):
    """A self-signed P-256 certificate; returns (crt path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(*attr) for attr in attrs])
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before or now - datetime.timedelta(days=1))
         .not_valid_after(not_after or now + datetime.timedelta(days=30)))
    if padding:
        b = b.add_extension(x509.UnrecognizedExtension(
            ObjectIdentifier("1.3.6.1.4.1.55555.1"),
            der_element(0x04, b"p" * padding)), critical=False)
    der = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if patch is not None:
        der = resign(der, key, *patch)
    crt, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(ssl.DER_cert_to_PEM_cert(der).encode())
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return crt, k


def context(crt, key, tls=None):
    """A client context; a session resumes only in the one it came from."""
    ctx = client_context(crt, key, tls)
    if tls is not None:
        ctx.minimum_version = tls
    return ctx


def request(port, url, crt=None, key=None, tls=None, session=None,
            ctx=None):
    """One request; returns (raw reply, the TLS session, resumed?)."""
    ctx = ctx or context(crt, key, tls)
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=30 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             session=session) as s:
            s.sendall(url.encode() + b"\r\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks), s.session, s.session_reused


def env_of(raw):
    head, _, body = raw.partition(b"\r\n")
    assert head == b"20 application/octet-stream", raw[:200]
    env = {}
    for item in body.split(b"\0")[:-1]:
        name, _, value = item.partition(b"=")
        env[name.decode()] = value
    return env


@pytest.fixture
def env_server(xitzin, tmp_path):
    root = tmp_path / "cgi-bin"
    root.mkdir()
    script = root / "env.py"
    script.write_text(ENV_PY)
    script.chmod(0o755)
    return xitzin(f"[cgi /cgi-bin]\nroot = {root}\n", args=("-v",))


def printable(value):
    """No control byte, no byte that is not UTF-8."""
    text = value.decode("utf-8")  # raises on non-UTF-8
    return all(ch >= " " and not "\x7f" <= ch <= "\x9f" for ch in text)


def test_hostile_certificate_text_is_escaped(env_server, tmp_path):
    cn = "ev\"il\n\rX\x1b[2J\x7f'<>;+,\\"
    crt, key = make_cert(tmp_path, "hostile", [
        (NameOID.COMMON_NAME, cn),
        (NameOID.ORGANIZATION_NAME, PLACEHOLDER.decode(), PRINTABLE),
    ], patch=(PLACEHOLDER, NON_UTF8))
    raw, _, _ = request(env_server.port, "gemini://localhost/cgi-bin/env.py",
                        crt, key)
    env = env_of(raw)
    # RFC 4514: the DN's specials keep their backslash, the rest is hex.
    want_cn = (b"ev\\\"il\\0a\\0dX\\1b[2J\\7f'\\<\\>\\;\\+\\,\\\\")
    want_o = b"x\\ff\\fe\\c3(\\c2\\9b\\e2\\80\\aey"
    assert env["REMOTE_USER"] == want_cn
    assert env["TLS_CLIENT_SUBJECT"] == b"O=" + want_o + b",CN=" + want_cn
    assert env["TLS_CLIENT_ISSUER"] == env["TLS_CLIENT_SUBJECT"]
    for name in CERT_VARS:
        assert printable(env[name]), (name, env[name])
    # The log has no raw byte of it either (verbose: every line).
    log = env_server.log_path.read_bytes()
    assert b"\x1b" not in log and b"\x7f" not in log and b"\xff" not in log


def test_dates_before_1970_are_real(env_server, tmp_path):
    crt, key = make_cert(tmp_path, "old", [(NameOID.COMMON_NAME, "old")],
                         not_before=datetime.datetime(1960, 3, 4, 5, 6, 7),
                         not_after=datetime.datetime(2080, 1, 2, 3, 4, 5))
    raw, _, _ = request(env_server.port, "gemini://localhost/cgi-bin/env.py",
                        crt, key)
    env = env_of(raw)
    assert env["TLS_CLIENT_NOT_BEFORE"] == b"1960-03-04T05:06:07Z"
    assert env["TLS_CLIENT_NOT_AFTER"] == b"2080-01-02T03:04:05Z"
    crt, key = make_cert(tmp_path, "edge", [(NameOID.COMMON_NAME, "edge")],
                         not_before=datetime.datetime(1969, 12, 31, 23, 59,
                                                      59),
                         not_after=datetime.datetime(2049, 12, 31, 23, 59,
                                                     59))
    env = env_of(request(env_server.port,
                         "gemini://localhost/cgi-bin/env.py", crt, key)[0])
    assert env["TLS_CLIENT_NOT_BEFORE"] == b"1969-12-31T23:59:59Z"
    assert env["TLS_CLIENT_NOT_AFTER"] == b"2049-12-31T23:59:59Z"


def test_100k_certificate_tls13_answered_resumption_is_full(env_server,
                                                            tmp_path):
    crt, key = make_cert(tmp_path, "big", [(NameOID.COMMON_NAME, "big")],
                         padding=100 * 1024)
    assert len(ssl.PEM_cert_to_DER_cert(crt.read_text())) > 100 * 1024
    url = "gemini://localhost/cgi-bin/env.py"
    ctx = context(crt, key, ssl.TLSVersion.TLSv1_3)
    raw, session, resumed = request(env_server.port, url, ctx=ctx)
    assert env_of(raw)["REMOTE_USER"] == b"big" and not resumed
    # No ticket came (it could not hold the certificate): offering the
    # session back is a full handshake, and the answer is the same.
    raw, _, resumed = request(env_server.port, url, session=session, ctx=ctx)
    assert env_of(raw)["REMOTE_USER"] == b"big" and not resumed


def test_100k_certificate_tls12_refused_with_bad_certificate(env_server,
                                                             tmp_path):
    crt, key = make_cert(tmp_path, "big", [(NameOID.COMMON_NAME, "big")],
                         padding=100 * 1024)
    url = "gemini://localhost/cgi-bin/env.py"
    with pytest.raises(ssl.SSLError, match="BAD_CERTIFICATE"):
        request(env_server.port, url, crt, key, ssl.TLSVersion.TLSv1_2)
    # The alert goes out before the server logs why: wait for the line.
    deadline = time.time() + 10 * SLOW
    while ("client certificate too large for TLS 1.2" not in env_server.log()
           and time.time() < deadline):
        time.sleep(0.02)
    assert "client certificate too large for TLS 1.2" in env_server.log()
    # The server goes on; a smaller certificate resumes over TLS 1.2.
    crt, key = make_cert(tmp_path, "mid", [(NameOID.COMMON_NAME, "mid")],
                         padding=40 * 1024)
    ctx = context(crt, key, ssl.TLSVersion.TLSv1_2)
    raw, session, _ = request(env_server.port, url, ctx=ctx)
    assert env_of(raw)["REMOTE_USER"] == b"mid"
    raw, _, resumed = request(env_server.port, url, session=session, ctx=ctx)
    assert env_of(raw)["REMOTE_USER"] == b"mid" and resumed


@pytest.mark.parametrize("host,status", [
    (b"localhost.", 20),
    (b"LOCALHOST.", 20),
    (b"localhost..", 53),
    (b"localhost.example", 53),
], ids=repr)
def test_trailing_dot_is_the_same_host(xitzin, tmp_path, host, status):
    root = tmp_path / "capsule"
    root.mkdir()
    (root / "index.gmi").write_text("# Home\n")
    s = xitzin(f"[static /]\nroot = {root}\n")
    r = s.raw(b"gemini://" + host + b"/\r\n")
    assert r.status == status, r
    if status == 20:
        assert r.body == b"# Home\n"
    port = str(s.port).encode()
    assert s.raw(b"gemini://" + host + b":" + port + b"/\r\n").status == status


def test_certificate_over_gnutls_limit_refused_server_goes_on(env_server,
                                                             tmp_path):
    """GnuTLS takes at most 128 KiB of handshake: a 200 KiB certificate
    ends it with an alert, under either version, and nothing else."""
    crt, key = make_cert(tmp_path, "huge", [(NameOID.COMMON_NAME, "huge")],
                         padding=200 * 1024)
    url = "gemini://localhost/cgi-bin/env.py"
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            request(env_server.port, url, crt, key, version)
    assert env_of(request(env_server.port, url)[0])["TLS_CLIENT_AUTHORISED"] \
        == b"0"
