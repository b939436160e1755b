"""`xitzin -t` checks what starting checks, and says every error, each
with file:line; safe static defaults (dot-files) and public_port, over the
real program and real TLS."""

import subprocess

import pytest

from conftest import BIN


def check(tmp_path, text):
    conf = tmp_path / "x.conf"
    conf.write_text(text)
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=60)
    return conf, r


def pair(tmp_path, name):
    crt, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
         str(crt), "-days", "2", "-subj", "/CN=x"],
        check=True, capture_output=True)
    return crt, key


# The broken-config table: (config, the line -t prints after "x.conf").
BROKEN = [
    ("[server]\nlisten = 127.0.0.1:99999\n",
     ":2: listen 127.0.0.1:99999: port '99999' not in 0..65535"),
    ("[server]\nlisten = 127.0.0.1:abc\n",
     ":2: listen 127.0.0.1:abc: port 'abc' not in 0..65535"),
    ("[server]\nlisten = 127.0.0.1\n",
     ":2: listen 127.0.0.1: expected HOST:PORT or [IPV6]:PORT"),
    ("[server]\nlisten = [::1:1965\n",
     ":2: listen [::1:1965: expected HOST:PORT or [IPV6]:PORT"),
    ("[server]\nuser = nosuchuser\n", ":2: user nosuchuser: no such user"),
    ("[server]\nhostname =\n", ":2: hostname: no value given"),
    ("[server]\nhostname = ,\n", ":2: hostname: no name given"),
    ("[server]\nchroot = /nonexistent\n",
     ":2: chroot /nonexistent: No such file or directory"),
    ("[server]\npublic_port = 70000\n",
     ":2: public_port: invalid value '70000'"),
    ("[server]\nticket_key_file = /nonexistent/key\n",
     ":2: /nonexistent/key: No such file or directory"),
    ("[server]\nworkers = 2\nworkers = 3\n",
     ":3: duplicate key 'workers' (first at line 2)"),
    ("[static /]\nroot = /tmp\n[static /]\nroot = /\n",
     ":3: duplicate section [static /] (first at line 1)"),
    ("[static /]\nroot = /nonexistent\n",
     ":2: root /nonexistent: No such file or directory"),
    ("[static /]\nroot = /tmp\nhidden_files = yes\n",
     ":3: hidden_files: invalid value 'yes' (hide or serve)"),
    ("[static /]\nroot = /tmp\nallowed_certs = SHA256:abc\n",
     ":3: allowed_certs: not a SHA256: hash 'SHA256:abc'"),
    ("[cgi /c]\nroot = /tmp\nallowed_certs_file = /nonexistent\n",
     ":3: allowed_certs_file /nonexistent: No such file or directory"),
    ("[scgi /a]\nhost = no.such.host.invalid\nport = 4000\n",
     ":1: [scgi /a]: host no.such.host.invalid does not resolve"),
    ("[scgi /a]\nsocket = /" + "s" * 120 + "\n",
     ":2: socket /" + "s" * 120 + ": over 107 bytes"),
    ("[scgi /a]\nhost = 127.0.0.1\nport = 0\n", ":3: port: invalid value '0'"),
]


@pytest.mark.parametrize("text,want", BROKEN, ids=[w for _, w in BROKEN])
def test_broken_config_is_named(tmp_path, text, want):
    conf, r = check(tmp_path, text)
    assert r.returncode == 1, r
    assert "configuration OK" not in r.stdout
    assert f"xitzin: {conf}{want}" in r.stderr, r.stderr


def test_certificate_checks(tmp_path):
    crt, key = pair(tmp_path, "a")
    _, other = pair(tmp_path, "b")
    junk = tmp_path / "junk.pem"
    junk.write_text("garbage\n")
    conf, r = check(tmp_path, f"[server]\ncert = {junk}\nkey = {key}\n")
    assert r.returncode == 1 and f"{conf}:2: {junk}: " in r.stderr, r.stderr
    conf, r = check(tmp_path, f"[server]\ncert = {crt}\nkey = {junk}\n")
    assert r.returncode == 1 and f"{conf}:2: {junk}: " in r.stderr, r.stderr
    conf, r = check(tmp_path, f"[server]\ncert = {crt}\nkey = {other}\n")
    assert r.returncode == 1, r
    assert (f"{conf}:2: {crt}: does not match the key in {other}"
            in r.stderr), r.stderr
    conf, r = check(tmp_path, f"[server]\ncert = {crt}\n"
                              f"key = {tmp_path}/none.key\n")
    assert r.returncode == 1, r
    assert f"{conf}:2: {tmp_path}/none.key: not found, but" in r.stderr
    conf, r = check(tmp_path, f"[server]\ncert = {crt}\nkey = {key}\n")
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stderr
    # Neither file: generated at start, so -t has nothing to say (and
    # makes nothing).
    conf, r = check(tmp_path, f"[server]\ncert = {tmp_path}/new.crt\n"
                              f"key = {tmp_path}/new.key\n")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "new.crt").exists()


def test_three_errors_all_said(tmp_path, capsule):
    conf, r = check(tmp_path, "[server]\nlisten = 127.0.0.1:0\nworkrs = 2\n"
                              f"[static /]\nrot = x\nroot = {capsule}\n"
                              "[cgi /c]\nroot = /tmp\ntimout = 3\n")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"xitzin: {conf}:3: unknown key 'workrs' in [server]",
        f"xitzin: {conf}:5: unknown key 'rot' in [static /]",
        f"xitzin: {conf}:9: unknown key 'timout' in [cgi /c]",
    ]


def test_errors_of_every_kind_at_once(tmp_path):
    conf, r = check(tmp_path, "[server]\nlisten = 127.0.0.1:99999\n"
                              "user = nosuchuser\nchroot = /nonexistent\n"
                              "[static /]\nroot = /nonexistent\n"
                              "[static /]\nroot = /tmp\n")
    assert r.returncode == 1
    assert [l.split(": ", 2)[1] for l in r.stderr.splitlines()] == [
        f"{conf}:2", f"{conf}:3", f"{conf}:4", f"{conf}:6", f"{conf}:7"]


def test_start_fails_with_the_same_messages(tmp_path, capsule):
    """No -t: the same checks, the same words, exit 1, never silent."""
    conf = tmp_path / "x.conf"
    conf.write_text(f"[server]\nlisten = 127.0.0.1:0\nchroot = /nonexistent\n"
                    f"[static /]\nroot = {capsule}\n")
    r = subprocess.run([BIN, "-c", str(conf)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert (f"{conf}:3: chroot /nonexistent: No such file or directory"
            in r.stderr), r.stderr


def test_a_good_config_checks_out(tmp_path, capsule):
    crt, key = pair(tmp_path, "a")
    conf, r = check(tmp_path, f"[server]\nlisten = 127.0.0.1:1965\n"
                              f"listen = [::1]:1965\npublic_port = 443\n"
                              f"cert = {crt}\nkey = {key}\nuser = nobody\n"
                              f"chroot = /\n[static /]\nroot = {capsule}\n"
                              "hidden_files = serve\nrequire_cert = true\n")
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout


def test_dot_files_are_not_served(xitzin, capsule):
    (capsule / ".env").write_text("SECRET=1\n")
    (capsule / ".git").mkdir()
    (capsule / ".git" / "config").write_text("[core]\n")
    (capsule / ".well-known").mkdir()
    (capsule / ".well-known" / "security.txt").write_text("Contact: x\n")
    s = xitzin(f"[static /]\nroot = {capsule}\n"
               f"[static /open]\nroot = {capsule}\nhidden_files = serve\n")
    for path in ("/.env", "/.git/config", "/.git/", "/.nothing", "/%2eenv"):
        r = s.get(path)
        assert (r.status, r.meta) == (51, "Not found"), path
    assert s.get("/.well-known/security.txt").body == b"Contact: x\n"
    assert s.get("/open/.env").body == b"SECRET=1\n"
    assert s.get("/open/.git/config").status == 20


def test_public_port(xitzin, capsule):
    s = xitzin(f"[server]\npublic_port = 1966\n[static /]\nroot = {capsule}\n")
    assert s.raw(b"gemini://localhost:1966/\r\n").status == 20
    assert s.raw(b"gemini://localhost/\r\n").status == 20
    if s.port != 1966:
        r = s.raw(f"gemini://localhost:{s.port}/\r\n".encode())
        assert (r.status, r.meta) == (53, "Proxy request refused")
    assert s.raw(b"gemini://localhost:1965/\r\n").status == 53


def test_without_public_port_the_listening_port(xitzin, capsule):
    s = xitzin(f"[static /]\nroot = {capsule}\n")
    assert s.raw(f"gemini://localhost:{s.port}/\r\n".encode()).status == 20
    assert s.raw(b"gemini://localhost:1966/\r\n").status == 53
