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
