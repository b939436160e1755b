"""The logs an operator reads: hostile request lines escaped, the three
styles, log files reopened on SIGUSR1, journald's stream without our own
timestamps, client-certificate hash and SNI fields."""

import os
import re
import signal
import time

from conftest import SLOW, make_client_cert, start_server


def static(root):
    return f"[static /]\nroot = {root}\n"


def wait_for(path, text):
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return path.read_text(errors="replace")
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in {path}:\n" +
                         (path.read_text(errors="replace")
                          if path.exists() else "(none)"))


def test_hostile_request_line_is_escaped(xitzin, capsule):
    s = xitzin(static(capsule))
    line = b'gemini://localhost/x"\r\x1b[2J\x1b]0;pwn\x07\t\xff\xfe?q=\x9b\r\n'
    r = s.raw(line)
    assert r.status is not None
    raw = s.log_path.read_bytes()
    deadline = time.time() + 10 * SLOW
    while b"/x" not in raw and time.time() < deadline:
        time.sleep(0.02)
        raw = s.log_path.read_bytes()
    # Nothing the client sent reaches the log as a control byte.
    assert b"\x1b" not in raw and b"\r" not in raw and b"\xff" not in raw
    assert b"\x07" not in raw and b"\x9b" not in raw
    text = raw.decode()
    assert ('"gemini://localhost/x\\"\\r\\x1b[2J\\x1b]0;pwn\\x07\\t'
            '\\xff\\xfe?q=\\x9b"') in text, text
    # Every line is one line: a line break inside would start a forgery.
    for l in text.splitlines():
        assert l.startswith(("xitzin: ", "20")), l


def test_xitzin_style_carries_sni_and_certificate(xitzin, capsule, tmp_path):
    s = xitzin(static(capsule))
    crt, key = make_client_cert(tmp_path)
    assert s.get("/hello.txt", cert=str(crt), key=str(key)).status == 20
    text = wait_for(s.log_path, "/hello.txt")
    line = [l for l in text.splitlines() if "/hello.txt" in l][0]
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 127\.0\.0\.1 '
        r'"gemini://localhost/hello\.txt" 20 21 localhost '
        r'SHA256:[0-9a-f]{64} \d+\.\dms', line), line


def test_files_styles_ip_and_query_then_sigusr1(xitzin, capsule, tmp_path):
    # The error log is the file the fixture watches for "listening on".
    access, errors = tmp_path / "access.log", tmp_path / "xitzin.log"
    s = xitzin(static(capsule) + "[server]\naccess_log = access.log\n"
               "error_log = xitzin.log\nlog_style = combined\n"
               "log_ip = truncated\nlog_query = no\n")
    assert s.get("/hello.txt?secret-input").status == 20
    text = wait_for(access, "/hello.txt")
    assert re.fullmatch(
        r'127\.0\.0\.0 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
        r'"gemini://localhost/hello\.txt" 20 21 "-" "-"\n', text), text
    assert "secret" not in text
    errs = errors.read_text()
    assert re.search(r"^\d{4}-\S+Z xitzin: info: listening on", errs, re.M)
    # logrotate: move the files, then SIGUSR1; new lines go to new files.
    os.rename(access, tmp_path / "access.log.1")
    os.rename(errors, tmp_path / "xitzin.log.1")
    s.proc.send_signal(signal.SIGUSR1)
    wait_for(errors, "log files reopened")
    assert s.get("/index.gmi").status == 20
    wait_for(access, "/index.gmi")
    assert "/index.gmi" not in (tmp_path / "access.log.1").read_text()
    assert "log files reopened" not in \
        (tmp_path / "xitzin.log.1").read_text()
    assert s.proc.poll() is None


def test_common_style_and_no_address(xitzin, capsule):
    s = xitzin(static(capsule) + "[server]\nlog_style = common\n"
               "log_ip = off\n")
    assert s.get("/hello.txt?q").status == 20
    text = wait_for(s.log_path, "/hello.txt")
    line = [l for l in text.splitlines() if "/hello.txt" in l][0]
    assert re.fullmatch(r'- - - \[[^]]+\] "gemini://localhost/hello\.txt\?q"'
                        r' 20 21', line), line
    assert "127.0.0.1" not in line


def test_journald_stream_gets_no_timestamps_but_priorities(tmp_path, capsule):
    """Under systemd, stderr is journald's stream (JOURNAL_STREAM=dev:ino
    names it): journald stamps each line, and takes the <N> prefix as the
    line's priority."""
    log = tmp_path / "xitzin.log"
    log.touch()
    st = os.stat(log)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    s = start_server(tmp_path, static(capsule), env=env)
    try:
        assert s.get("/hello.txt").status == 20
        text = wait_for(s.log_path, "/hello.txt")
    finally:
        assert s.stop() == 0
    lines = s.log().splitlines()
    assert any(l.startswith("<6>xitzin: info: listening on") for l in lines)
    assert any(l.startswith("<4>xitzin: warning: ") for l in lines), lines
    access = [l for l in lines if "/hello.txt" in l][0]
    assert access.startswith('127.0.0.1 "gemini://localhost/hello.txt" 20'), \
        access


def test_journal_stream_naming_another_file_is_ignored(tmp_path, capsule):
    env = dict(os.environ, JOURNAL_STREAM="1:2")
    s = start_server(tmp_path, static(capsule), env=env)
    try:
        assert s.get("/hello.txt").status == 20
        text = wait_for(s.log_path, "/hello.txt")
    finally:
        assert s.stop() == 0
    assert re.search(r"^\d{4}-\d\d-\d\dT\S+Z 127\.0\.0\.1 ", text, re.M), text
    assert "<6>" not in text
