"""Client certificates per mount, from the configuration: require_cert
(60 without one) and allowed_certs / allowed_certs_file (61 for others),
on static, CGI and SCGI mounts, with real client certificates over TLS."""

import hashlib
import ssl

import pytest

from conftest import SERVE_FOREVER, SLOW, make_client_cert
from conftest import python_backend

SCGI = '''
import socket, threading

def serve(c):
    data = b""
    while b"," not in data:
        more = c.recv(4096)
        if not more:
            break
        data += more
    c.sendall(b"20 text/plain\\r\\nscgi ok")
    c.close()
''' + SERVE_FOREVER


def cert_hash(crt):
    der = ssl.PEM_cert_to_DER_cert(crt.read_text())
    return "SHA256:" + hashlib.sha256(der).hexdigest()


@pytest.fixture
def scgi_backend():
    yield from python_backend(SCGI)


@pytest.fixture
def people(tmp_path):
    return {cn: make_client_cert(tmp_path, cn) for cn in ("alice", "bob",
                                                          "carol")}


def test_require_and_allow_on_every_kind(xitzin, capsule, tmp_path,
                                         scgi_backend, people):
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    (cgi / "who").write_text("#!/bin/sh\nprintf '20 text/plain\\r\\n"
                             "%s' \"$TLS_CLIENT_HASH\"\n")
    (cgi / "who").chmod(0o755)
    alice, bob, carol = (cert_hash(people[n][0])
                         for n in ("alice", "bob", "carol"))
    listed = tmp_path / "team.txt"
    listed.write_text(f"# the team\n{bob.upper().replace('SHA256:', 'sha256:')}\n")
    s = xitzin(f"[static /]\nroot = {capsule}\n"
               f"[static /members]\nroot = {capsule}\nrequire_cert = true\n"
               f"[cgi /cgi-bin]\nroot = {cgi}\nallowed_certs = {alice}\n"
               f"[scgi /api]\nhost = 127.0.0.1\nport = {scgi_backend}\n"
               f"allowed_certs = {alice}\nallowed_certs_file = {listed}\n")

    def get(path, who=None):
        kw = {}
        if who is not None:
            kw = dict(cert=str(people[who][0]), key=str(people[who][1]))
        r = s.get(path, **kw)
        return r.status, r.meta, r.body

    assert get("/hello.txt")[0] == 20  # no rule
    assert get("/members/hello.txt")[:2] == (60, "Certificate required")
    assert get("/members/hello.txt", "carol") == (20, "text/plain",
                                                  b"hello\n")
    assert get("/cgi-bin/who")[:2] == (60, "Certificate required")
    assert get("/cgi-bin/who", "bob")[:2] == (61, "Certificate not authorised")
    assert get("/cgi-bin/who", "alice") == (20, "text/plain", alice.encode())
    assert get("/api/x")[0] == 60
    assert get("/api/x", "carol")[0] == 61
    assert get("/api/x", "alice") == (20, "text/plain", b"scgi ok")
    assert get("/api/x", "bob") == (20, "text/plain", b"scgi ok")
    assert get("/apix")[0] == 51  # not under /api: the root's rule (none)
