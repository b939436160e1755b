"""Running as a daemon: one instance per address, systemd's socket
activation and readiness protocol, the default configuration path."""

import os
import signal
import socket
import subprocess
import time

from conftest import BIN, SLOW, SANITIZER_REPORT, gemini_raw, start_server, \
    write_config
from conftest import free_port


def listening_sockets(port):
    """Listening TCP sockets on 127.0.0.1:port, as the kernel counts them."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local == "0100007F:%04X" % port:
                n += 1
    return n


def test_second_instance_on_a_taken_address_refuses_to_start(xitzin, tmp_path,
                                                             capsule):
    a = xitzin(f"[static /]\nroot = {capsule}\n")
    # The workers (2) still each listen: SO_REUSEPORT among our own.
    assert listening_sockets(a.port) == 2
    conf = write_config(tmp_path, f"[static /]\nroot = {capsule}\n")
    text = conf.read_text().replace("127.0.0.1:0", f"127.0.0.1:{a.port}")
    other = tmp_path / "other.conf"
    other.write_text(text)
    r = subprocess.run([BIN, "-c", str(other)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode != 0
    assert f"port {a.port}: Address already in use" in r.stderr, r.stderr
    assert not SANITIZER_REPORT.search(r.stderr), r.stderr
    # The first one never shared its port: it still has it alone.
    assert listening_sockets(a.port) == 2
    for _ in range(10):
        assert a.get("/").status == 20


def notify_socket(tmp_path):
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(30 * SLOW)
    return s, path


def test_socket_activation_and_readiness(tmp_path, capsule):
    """systemd-socket-activate binds the port and passes it (LISTEN_FDS);
    the config's own listen address is not used. READY=1 arrives on the
    NOTIFY_SOCKET once serving; STOPPING=1 when SIGTERM starts the drain."""
    port = free_port()
    conf = write_config(tmp_path, f"[static /]\nroot = {capsule}\n"
                        "[server]\nworkers = 3\n")
    notify, path = notify_socket(tmp_path)
    log = open(tmp_path / "log", "wb")
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
         "-E", f"NOTIFY_SOCKET={path}", BIN, "-c", str(conf)],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30 * SLOW
        while b"Listening on" not in (tmp_path / "log").read_bytes():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.02)
        # It execs xitzin on the first connection, which this request is.
        r = gemini_raw(port, b"gemini://localhost/\r\n")
        assert r.status == 20 and r.body == b"# Home\n"
        ready = notify.recv(4096).decode()
        assert "READY=1" in ready.split("\n"), ready
        # Three workers share the one passed socket.
        for _ in range(30):
            assert gemini_raw(port, b"gemini://localhost/hello.txt\r\n") \
                .body == b"hello\n"
        assert listening_sockets(port) == 1
        text = (tmp_path / "log").read_text(errors="replace")
        assert f"listening on 127.0.0.1 port {port} (3 workers" in text, text
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode() == "STOPPING=1"
        assert proc.wait(timeout=30 * SLOW) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    text = (tmp_path / "log").read_text(errors="replace")
    assert not SANITIZER_REPORT.search(text), text


def test_passed_socket_that_is_not_listening_is_refused(tmp_path, capsule):
    conf = write_config(tmp_path, f"[static /]\nroot = {capsule}\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # LISTEN_PID must name the process that reads it: the shell execs.
    r = subprocess.run(
        ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', BIN, "-c",
         str(conf)], env=dict(os.environ, LISTEN_FDS="1"), pass_fds=(3,),
        preexec_fn=lambda: os.dup2(s.fileno(), 3), capture_output=True,
        text=True, timeout=30 * SLOW)
    s.close()
    assert r.returncode == 1
    assert "passed socket 3: not a listening TCP socket" in r.stderr, r.stderr


def test_default_configuration_path():
    r = subprocess.run([BIN, "-h"], capture_output=True, text=True)
    assert r.returncode == 0
    path = [w for w in r.stdout.split() if w.endswith("/xitzin/xitzin.conf")]
    assert len(path) == 1, r.stdout
    assert path[0].startswith("/")
    r = subprocess.run([BIN, "-t"], capture_output=True, text=True,
                       timeout=30 * SLOW)
    # Whatever that file holds here, it is the one read.
    assert path[0] in r.stdout + r.stderr


def test_contrib_units_verify_and_score(tmp_path):
    """contrib/xitzin.service and .socket load cleanly in systemd, and the
    hardening keeps the exposure score low (1.4 when written; 10 is worst)."""
    from conftest import ROOT
    unit = (ROOT / "contrib" / "xitzin.service").read_text()
    assert "Type=notify" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "WatchdogSec=" in unit
    (tmp_path / "xitzin.service").write_text(
        unit.replace("/usr/local/bin/xitzin", BIN))
    (tmp_path / "xitzin.socket").write_text(
        (ROOT / "contrib" / "xitzin.socket").read_text())
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        "./xitzin.service", "./xitzin.socket"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        "./xitzin.service"], cwd=tmp_path,
                       capture_output=True, text=True)
    score = float(r.stdout.split("exposure level for xitzin.service: ")[1]
                  .split()[0])
    assert score <= 2.0, r.stdout


def test_example_configuration_checks(tmp_path):
    """contrib/xitzin.conf, which make install puts in place, is valid once
    its capsule directory exists."""
    from conftest import ROOT
    (tmp_path / "capsule").mkdir()
    conf = tmp_path / "xitzin.conf"
    conf.write_text((ROOT / "contrib" / "xitzin.conf").read_text()
                    .replace("/srv/gemini", str(tmp_path / "capsule")))
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode == 0, r.stderr
