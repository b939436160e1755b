"""Started as root with `user`, xitzin binds and reads its keys, then
serves as that user; without `user` it warns once and goes on."""

import os
import pwd

import pytest

from conftest import make_client_cert


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def open_tree(root):
    """The served tree must be readable by the unprivileged user."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o644)


def test_drops_to_user_after_binding(xitzin, capsule, tmp_path):
    assert os.geteuid() == 0, "the tests run as root (CI and the README do)"
    nobody = pwd.getpwnam("nobody")
    open_tree(capsule)
    s = xitzin(f"[server]\nuser = nobody\n[static /]\nroot = {capsule}\n")
    assert uid_of(s.proc.pid) == [nobody.pw_uid] * 4
    # Keys were written 0600 by root and read before the drop.
    key = tmp_path / "certs" / "test.key"
    assert key.stat().st_uid == 0 and oct(key.stat().st_mode & 0o777) == "0o600"
    r = s.get("/")
    assert (r.status, r.body) == (20, b"# Home\n")
    crt, k = make_client_cert(tmp_path)
    assert s.get("/hello.txt", cert=str(crt), key=str(k)).status == 20
    assert "running as nobody" in s.log()


def test_root_without_user_warns_once(xitzin, capsule):
    s = xitzin(f"[static /]\nroot = {capsule}\n")
    assert s.get("/").status == 20
    assert s.log().count("running as root") == 1
    assert uid_of(s.proc.pid)[0] == 0


def test_unknown_user_refuses_to_start(tmp_path, capsule):
    from conftest import start_server
    with pytest.raises(AssertionError, match="no such user"):
        start_server(tmp_path, f"[server]\nuser = no-such-user-xz\n"
                               f"[static /]\nroot = {capsule}\n")


def test_unix_socket_backend_and_cgi_after_the_drop(xitzin, capsule,
                                                   tmp_path):
    """After dropping to nobody: an SCGI backend on a Unix socket (which
    nobody may connect to) and CGI scripts (which nobody may run)."""
    from conftest import BUILD_DIR
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path
    # A socket is reached by path: every directory above it must be
    # searchable by nobody (pytest's own are root's alone).
    shared = Path(tempfile.mkdtemp(prefix="xitzin-priv-"))
    cgi = shared / "cgi"
    cgi.mkdir(parents=True)
    (cgi / "who.sh").write_text("#!/bin/sh\nprintf '20 text/plain\\r\\n'\n"
                                "id -u\n")
    (cgi / "who.sh").chmod(0o755)
    shared.chmod(0o755)
    open_tree(capsule)
    sock = shared / "echo.sock"
    backend = subprocess.Popen([str(BUILD_DIR / "scgi-echo-backend"),
                                f"unix:{sock}"], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert "listening" in backend.stdout.readline()
        sock.chmod(0o777)
        s = xitzin(f"[server]\nuser = nobody\n"
                   f"[static /]\nroot = {capsule}\n"
                   f"[scgi /api]\nsocket = {sock}\n"
                   f"[cgi /cgi-bin]\nroot = {cgi}\n")
        assert uid_of(s.proc.pid)[0] == pwd.getpwnam("nobody").pw_uid
        r = s.get("/api/x")
        assert r.status == 20 and b"PATH_INFO=/x" in r.body, r
        r = s.get("/cgi-bin/who.sh")
        assert (r.status, r.body.strip()) == (
            20, str(pwd.getpwnam("nobody").pw_uid).encode()), r
    finally:
        backend.terminate()
        backend.wait()
        shutil.rmtree(shared)


def test_chroot_keeps_mounted_directories(xitzin, capsule, tmp_path):
    """chroot to an empty directory: the static root, opened before, is
    still served; nothing outside it can be named any more."""
    jail = tmp_path / "jail"
    jail.mkdir()
    open_tree(capsule)
    # LeakSanitizer reads /proc at exit, which a chroot hides: this one
    # server runs without it (the other sanitizers stay on).
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    s = xitzin(f"[server]\nuser = nobody\nchroot = {jail}\n"
               f"[static /]\nroot = {capsule}\n", env=env)
    assert os.readlink(f"/proc/{s.proc.pid}/root") == str(jail)
    assert s.get("/").body == b"# Home\n"
    assert f"running as nobody in {jail}" in s.log()
