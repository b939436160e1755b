"""Several sites on one server: [host NAME] sections, the certificate
chosen by SNI during the handshake, the request's host checked against
the SNI's site, over real TLS (Python's ssl with server_hostname, or none
for a client that sends no SNI), and what `xitzin -t` says of bad host
sections."""

import hashlib
import re
import socket
import ssl
import subprocess

import pytest

from conftest import BIN, SERVE_FOREVER, SLOW, client_context, make_client_cert
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
    head = data[data.index(b":") + 1:]
    pairs = head.split(b"\\0")
    env = dict(zip(pairs[0::2], pairs[1::2]))
    c.sendall(b"20 text/plain\\r\\n" + env.get(b"SERVER_NAME", b"-"))
    c.close()
''' + SERVE_FOREVER


def fetch(port, url, sni, cert=None, key=None, tls_max=None):
    """(status line, body, the server certificate's SHA256:hex)."""
    ctx = client_context(cert, key, tls_max)
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=10 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(url.encode() + b"\r\n")
            data = b""
            while True:
                try:
                    more = s.recv(65536)
                except ssl.SSLError:
                    break
                if not more:
                    break
                data += more
    head, _, body = data.partition(b"\r\n")
    return head.decode(), body, "SHA256:" + hashlib.sha256(der).hexdigest()


def pem_hash(path):
    der = ssl.PEM_cert_to_DER_cert(path.read_text())
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def sans(path):
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout",
                          "-ext", "subjectAltName"], capture_output=True,
                         text=True, check=True).stdout
    return set(re.findall(r"DNS:([^,\s]+)", out))


def pair(tmp, name):
    """A certificate made by openssl (not by us) for one name."""
    crt, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
         str(crt), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True)
    return crt, key


@pytest.fixture
def scgi_backend():
    yield from python_backend(SCGI)


@pytest.fixture
def sites(xitzin, tmp_path, scgi_backend):
    """Three hosts and the default: a.example (a generated certificate,
    an alias), b.example (openssl's certificate, a mount that wants a
    client certificate), *.w.example (a wildcard), each its own capsule,
    state and CGI/SCGI mounts."""
    for name in ("default", "a", "b", "w"):
        d = tmp_path / name
        d.mkdir()
        (d / "index.gmi").write_text(f"# {name}\n")
    (tmp_path / "a" / ".env").write_text("secret\n")
    cgi = tmp_path / "env.sh"
    cgi.write_text("#!/bin/sh\nprintf '20 text/plain\\r\\n%s %s' "
                   "\"$SERVER_NAME\" \"$XITZIN_COLOUR\"\n")
    cgi.chmod(0o755)
    bcrt, bkey = pair(tmp_path, "b.example")
    s = xitzin(
        f"[static /]\nroot = {tmp_path / 'default'}\n"
        "[state]\ncolour = grey\n"
        "[host a.example]\nnames = www.a.example\n"
        f"[static a.example /]\nroot = {tmp_path / 'a'}\n"
        "[state a.example]\ncolour = red\n"
        f"[cgi a.example /env]\nscript = {cgi}\n"
        "app_state_keys = colour\n"
        f"[scgi a.example /scgi]\nhost = 127.0.0.1\nport = {scgi_backend}\n"
        f"[host b.example]\ncert = {bcrt}\nkey = {bkey}\n"
        f"[static b.example /]\nroot = {tmp_path / 'b'}\n"
        f"[static b.example /members]\nroot = {tmp_path / 'b'}\n"
        "require_cert = true\n"
        f"[cgi b.example /env]\nscript = {cgi}\n"
        "app_state_keys = colour\n"
        "[host *.w.example]\n"
        f"[static *.w.example /]\nroot = {tmp_path / 'w'}\n"
        f"[cgi /env]\nscript = {cgi}\napp_state_keys = colour\n")
    s.bcrt = bcrt
    return s


def fingerprints(s):
    """The log's "site NAMES: certificate SHA256:..." lines."""
    return dict(re.findall(r"site (\S+?)[,:( ].*?certificate (SHA256:\w+)",
                           s.log()))


def test_each_host_its_certificate_and_content(sites, tmp_path):
    fp = fingerprints(sites)
    assert set(fp) == {"localhost", "a.example", "b.example", "*.w.example"}
    assert len(set(fp.values())) == 4
    # b.example: the certificate the config gave (openssl's).
    assert fp["b.example"] == pem_hash(sites.bcrt)
    cases = [  # url, sni, expected status line, body, whose certificate
        ("gemini://a.example/", "a.example", "20 text/gemini", b"# a\n",
         "a.example"),
        ("gemini://www.a.example/", "www.a.example", "20 text/gemini",
         b"# a\n", "a.example"),
        ("gemini://b.example/", "b.example", "20 text/gemini", b"# b\n",
         "b.example"),
        ("gemini://x.w.example/", "x.w.example", "20 text/gemini",
         b"# w\n", "*.w.example"),
        ("gemini://localhost/", "localhost", "20 text/gemini",
         b"# default\n", "localhost"),
        ("gemini://A.Example./", "a.example", "20 text/gemini", b"# a\n",
         "a.example"),
    ]
    for url, sni, line, body, who in cases:
        got = fetch(sites.port, url, sni)
        assert got == (line, body, fp[who]), (url, sni)
    # TLS 1.2 picks by SNI the same way.
    got = fetch(sites.port, "gemini://b.example/", "b.example",
                tls_max=ssl.TLSVersion.TLSv1_2)
    assert got[2] == fp["b.example"] and got[1] == b"# b\n"
    # The generated certificate holds all the host's names.
    assert sans(tmp_path / "certs" / "a.example.crt") == {"a.example",
                                                          "www.a.example"}
    assert sans(tmp_path / "certs" / "_.w.example.crt") == {"*.w.example"}


def test_no_sni_unknown_host_and_mismatch(sites):
    fp = fingerprints(sites)
    refused = "53 Proxy request refused"
    cases = [
        # No SNI (an IP literal): the default site, its names only.
        ("gemini://localhost/", None, "20 text/gemini", "localhost"),
        ("gemini://a.example/", None, refused, "localhost"),
        # An SNI no site has: the default site's certificate.
        ("gemini://nope.example/", "nope.example", refused, "localhost"),
        ("gemini://localhost/", "nope.example", "20 text/gemini",
         "localhost"),
        # The host must be the SNI's site.
        ("gemini://b.example/", "a.example", refused, "a.example"),
        ("gemini://a.example/", "b.example", refused, "b.example"),
        ("gemini://localhost/", "a.example", refused, "a.example"),
        # A wildcard is one label: neither two nor none.
        ("gemini://y.x.w.example/", "y.x.w.example", refused, "localhost"),
        ("gemini://w.example/", "w.example", refused, "localhost"),
    ]
    for url, sni, line, who in cases:
        got = fetch(sites.port, url, sni)
        assert (got[0], got[2]) == (line, fp[who]), (url, sni)


def test_per_site_state_mounts_and_server_name(sites, tmp_path):
    port = sites.port
    # SERVER_NAME is the request's host; each site has its own state.
    assert fetch(port, "gemini://www.a.example/env", "www.a.example")[:2] \
        == ("20 text/plain", b"www.a.example red")
    assert fetch(port, "gemini://b.example/env", "b.example")[:2] == \
        ("20 text/plain", b"b.example ")
    assert fetch(port, "gemini://localhost/env", None)[:2] == \
        ("20 text/plain", b"localhost grey")
    assert fetch(port, "gemini://a.example/scgi", "a.example")[:2] == \
        ("20 text/plain", b"a.example")
    # Mounts are the site's: /env on the wildcard site is not found.
    assert fetch(port, "gemini://x.w.example/env", "x.w.example")[0] == \
        "51 Not found"
    # Dot-files stay hidden on a host's static mount.
    assert fetch(port, "gemini://a.example/.env", "a.example")[0] == \
        "51 Not found"
    # A host's require_cert.
    assert fetch(port, "gemini://b.example/members/", "b.example")[0] == \
        "60 Certificate required"
    crt, key = make_client_cert(tmp_path, "carol")
    assert fetch(port, "gemini://b.example/members/", "b.example",
                 cert=str(crt), key=str(key))[:2] == ("20 text/gemini",
                                                      b"# b\n")


def test_one_site_hostname_list_in_san(xitzin, tmp_path):
    """hostname = a, b on a single site: the generated certificate has
    every name, not the first alone."""
    d = tmp_path / "root"
    d.mkdir()
    (d / "index.gmi").write_text("# one\n")
    s = xitzin(f"[server]\nhostname = localhost, alias.example\n"
               f"[static /]\nroot = {d}\n")
    assert sans(tmp_path / "certs" / "test.crt") == {"localhost",
                                                     "alias.example"}
    assert fetch(s.port, "gemini://alias.example/", "alias.example")[:2] \
        == ("20 text/gemini", b"# one\n")


def check(tmp_path, text):
    conf = tmp_path / "x.conf"
    conf.write_text(text)
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=60 * SLOW)
    return conf, r


# Bad host sections, and what -t prints after "x.conf".
BROKEN = [
    ("[host a.example]\n[host b.example]\nnames = a.example\n",
     [":3: [host b.example]: a name is in two sites 'a.example'"]),
    ("[server]\nhostname = a.example\n[host a.example]\n",
     [":3: [host a.example]: a name is in two sites 'a.example'"]),
    ("[host *.*.example]\n",
     [":1: [host *.*.example]: a wildcard is '*.' and a name (one label) "
      "'*.*.example'"]),
    ("[host a.example]\nnames = x.*.example\n",
     [":2: [host a.example]: a wildcard is '*.' and a name (one label) "
      "'x.*.example'"]),
    ("[host a.example]\nnames = b..example\n",
     [":2: [host a.example]: an empty label 'b..example'"]),
    ("[static nope.example /]\nroot = /tmp\n",
     [":1: [static nope.example /]: no [host nope.example]"]),
    ("[state nope.example]\nx = 1\n",
     [":1: [state nope.example]: no [host nope.example]"]),
    ("[host a.example]\n[host a.example]\n",
     [":2: duplicate section [host a.example] (first at line 1)"]),
    ("[host a.example]\n[static a.example /]\nroot = /tmp\n"
     "[static a.example /]\nroot = /\n",
     [":4: duplicate section [static a.example /] (first at line 2)"]),
    ("[host a.example, b.example]\n",
     [":1: [host a.example, b.example]: one name in the header (give the "
      "others in names =)"]),
    ("[host a.example]\nroot = /tmp\n",
     [":2: unknown key 'root' in [host a.example]"]),
    ("[host a.example]\ncert = /tmp/x.crt\n",
     [":1: [host a.example]: cert without key (give both, or neither)"]),
    ("[host a.example]\ncert = /etc/passwd\nkey = /nonexistent.key\n",
     [":2: /nonexistent.key: not found, but /etc/passwd exists"]),
    ("[host a.example]\ncert = /etc/passwd\nkey = /etc/passwd\n",
     [":2: /etc/passwd: "]),
    ("[host a.example]\n[static a.example /]\nroot = /nonexistent\n",
     [":3: root /nonexistent: No such file or directory"]),
    # Every error, not the first alone.
    ("[host *.*.x]\n[static y /]\nroot = /tmp\n[host z]\nbogus = 1\n",
     [":1: [host *.*.x]: a wildcard", ":2: [static y /]: no [host y]",
      ":5: unknown key 'bogus' in [host z]"]),
]


@pytest.mark.parametrize("text,expected", BROKEN)
def test_check_bad_hosts(tmp_path, text, expected):
    conf, r = check(tmp_path, text)
    assert r.returncode != 0, r.stdout
    lines = r.stderr.splitlines()
    for want in expected:
        assert any(l.startswith(f"xitzin: {conf}{want}") for l in lines), \
            (want, r.stderr)


def test_check_good_hosts(tmp_path):
    crt, key = pair(tmp_path, "b.example")
    conf, r = check(tmp_path,
                    "[host a.example]\nnames = www.a.example, *.a.example\n"
                    "[static a.example /]\nroot = /tmp\n"
                    f"[host b.example]\ncert = {crt}\nkey = {key}\n"
                    "[state b.example]\nx = 1\n[host *]\n")
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
