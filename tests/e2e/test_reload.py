"""Reload on SIGHUP: the configuration file and the certificates are read
again; new connections get the new configuration, connections already
accepted finish under the old one; a configuration that fails to load is
logged with file:line and the old one keeps serving; nothing is dropped
while reloading under load (static, SCGI with a real backend, CGI); the
memory of old configurations is given back; systemd hears RELOADING=1
then READY=1, and WATCHDOG=1 while the main loop turns."""

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from conftest import (BIN, SANITIZED, SANITIZER_REPORT, SERVE_FOREVER, SLOW,
                      client_context, gemini_raw, measured_env, start_server,
                      write_config)

# A small SCGI backend: answers "TAG PATH_INFO"; /slow after 2 seconds.
BACKEND = r'''
import socket, sys, threading, time
TAG = sys.argv[1]

def serve(c):
    data = b""
    while b"," not in data:
        d = c.recv(65536)
        if not d:
            c.close()
            return
        data += d
    n = int(data[:data.index(b":")])
    head = data[data.index(b":") + 1:data.index(b":") + 1 + n].split(b"\0")
    env = dict(zip(head[0::2], head[1::2]))
    path = env.get(b"PATH_INFO", b"").decode()
    if path.startswith("/slow"):
        time.sleep(2)
    c.sendall(("20 text/plain\r\n%s %s" % (TAG, path)).encode())
    c.close()
''' + SERVE_FOREVER

CGI = "#!/bin/sh\nprintf '20 text/plain\\r\\ncgi %s' \"$TAG_OF_SCRIPT\"\n"


class Site:
    """Two configurations, A and B, of one server: each its own capsule
    page, SCGI backend and CGI script."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.ports = {}
        for tag in "AB":
            d = tmp / f"capsule-{tag}"
            d.mkdir()
            (d / "index.gmi").write_text(f"# {tag}\n")
            c = tmp / f"cgi-{tag}"
            c.mkdir()
            script = c / "hi.sh"
            script.write_text(CGI.replace("$TAG_OF_SCRIPT", tag))
            script.chmod(0o755)
            self.ports[tag] = self.backend(tag)

    def backend(self, tag):
        script = self.tmp / "backend.py"
        script.write_text(BACKEND)
        p = subprocess.Popen([sys.executable, str(script), tag],
                             stdout=subprocess.PIPE, text=True,
                             stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        line = p.stdout.readline()
        assert line.startswith("ready"), line
        return int(line.split()[1])

    def body(self, tag, extra=""):
        return (f"[server]\n{extra}"
                f"[static /]\nroot = {self.tmp}/capsule-{tag}\n"
                f"[scgi /api]\nhost = 127.0.0.1\nport = {self.ports[tag]}\n"
                f"[cgi /cgi-bin]\nroot = {self.tmp}/cgi-{tag}\n")

    def write(self, tag, extra=""):
        write_config(self.tmp, self.body(tag, extra))

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()
            p.stdout.close()


@pytest.fixture
def site(tmp_path):
    """Configurations A and B; their backends stopped afterwards."""
    site = Site(tmp_path)
    yield site
    site.stop()


def reloads_done(server):
    log = server.log()
    return (log.count("xitzin: info: reloaded: configuration") +
            log.count("reload failed: configuration"))


def reload(server):
    """SIGHUP, and wait until the server says how it went."""
    before = reloads_done(server)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30 * SLOW
    while reloads_done(server) == before:
        assert time.time() < deadline, server.log()
        assert server.proc.poll() is None, server.log()
        time.sleep(0.005)


def peer_cert_sha256(port):
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=10 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def file_cert_sha256(path):
    der = subprocess.run(["openssl", "x509", "-in", str(path), "-outform",
                          "DER"], capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def new_certificate(crt, key):
    """A new certificate and key for localhost, renamed over the old ones
    (as certbot and friends do)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{key}.new",
         "-out", f"{crt}.new", "-days", "30", "-subj", "/CN=localhost"],
        check=True, capture_output=True)
    os.rename(f"{key}.new", key)
    os.rename(f"{crt}.new", crt)


def stop_clean(server):
    rc = server.stop()
    log = server.log()
    assert not SANITIZER_REPORT.search(log), log
    assert rc == 0, log
    assert "still in flight at dispose" not in log, log
    return log


def expected(path, tags):
    if path == "/":
        return {f"# {t}\n".encode() for t in tags}
    if path.startswith("/api"):
        return {f"{t} /x".encode() for t in tags}
    return {f"cgi {t}".encode() for t in tags}


def test_sixteen_clients_through_ten_reloads(tmp_path, site):
    site.write("A")
    s = start_server(tmp_path, site.body("A"))
    paths = ["/", "/api/x", "/cgi-bin/hi.sh"]
    stop = threading.Event()
    counts = {"ok": 0}
    errors = []
    lock = threading.Lock()

    def client(n):
        i = n
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            try:
                r = s.get(path, timeout=30)
                good = (r.status == 20 and r.close_notify and
                        r.body in expected(path, "AB"))
            except Exception as e:  # any failure counts
                r, good = repr(e), False
            with lock:
                if good:
                    counts["ok"] += 1
                else:
                    errors.append((path, r))

    try:
        threads = [threading.Thread(target=client, args=(n,))
                   for n in range(16)]
        t0 = time.time()
        for t in threads:
            t.start()
        time.sleep(0.5)
        for i in range(10):
            if i == 9:  # the last one also takes a renewed certificate
                new_certificate(tmp_path / "certs/test.crt",
                                tmp_path / "certs/test.key")
            site.write("B" if i % 2 == 0 else "A")
            reload(s)
            time.sleep(0.8)
        stop.set()
        for t in threads:
            t.join()
        took = time.time() - t0
        print(f"\nreload under load: {counts['ok']} requests, "
              f"{len(errors)} errors, 10 reloads, 16 clients, {took:.1f} s")
        assert errors == [], errors[:5]
        assert counts["ok"] > 100
        # The tenth configuration is A's, with the new certificate.
        for path in paths:
            r = s.get(path)
            assert r.status == 20 and r.body in expected(path, "A"), r
        site.write("B")
        reload(s)
        for path in paths:
            r = s.get(path)
            assert r.status == 20 and r.body in expected(path, "B"), r
        assert peer_cert_sha256(s.port) == file_cert_sha256(
            tmp_path / "certs/test.crt")
    finally:
        stop.set()
        stop_clean(s)


def test_broken_configuration_is_reported_and_the_old_one_serves(tmp_path, site):
    s = start_server(tmp_path, site.body("A"))
    try:
        conf = s.conf_path
        good = conf.read_text()
        conf.write_text(good + "[static /nope]\nroot = /nonexistent/dir\n"
                        "bogus_key = 1\n")
        reload(s)
        log = s.log()
        lines = good.count("\n")
        assert re.search(rf"warning: reload: \S*xitzin\.conf:{lines + 2}: ",
                         log), log
        assert re.search(rf"warning: reload: \S*xitzin\.conf:{lines + 3}: ",
                         log), log
        assert "reload failed: configuration 1 keeps serving" in log
        assert s.get("/").body == b"# A\n"
        assert s.get("/api/x").body == b"A /x"
        # A certificate that does not load fails the reload too.
        conf.write_text(good.replace("certs/test.key", "certs/other.key"))
        (tmp_path / "certs/other.key").write_text("not a key\n")
        reload(s)
        assert s.log().count("reload failed: configuration 1") == 2, s.log()
        assert s.get("/").body == b"# A\n"
        # Fixed: the next reload takes.
        site.write("B")
        reload(s)
        assert "reloaded: configuration 2 for new connections" in s.log()
        assert s.get("/").body == b"# B\n"
    finally:
        stop_clean(s)


def test_connections_in_flight_finish_under_the_old_configuration(tmp_path, site):
    s = start_server(tmp_path, site.body("A"))
    try:
        # Accepted (handshake done) before the reload, request after it.
        ctx = client_context()
        raw = socket.create_connection(("127.0.0.1", s.port),
                                       timeout=20 * SLOW)
        early = ctx.wrap_socket(raw, server_hostname="localhost")
        # A slow SCGI answer started before the reload.
        slow = {}

        def slow_request():
            slow["r"] = s.get("/api/slow", timeout=30)

        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.5)
        site.write("B")
        reload(s)
        assert s.get("/").body == b"# B\n"
        assert s.get("/api/x").body == b"B /x"
        early.sendall(b"gemini://localhost/\r\n")
        data = b""
        while True:
            d = early.recv(65536)
            if not d:
                break
            data += d
        early.close()
        assert data == b"20 text/gemini\r\n# A\n", data
        t.join()
        assert slow["r"].status == 20 and slow["r"].body == b"A /slow"
    finally:
        stop_clean(s)


def test_listen_changes_need_a_restart(tmp_path, site):
    s = start_server(tmp_path, site.body("A"))
    try:
        other = socket.socket()
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        other.close()
        site.write("B", extra=f"listen = 127.0.0.1:{port}\nworkers = 3\n"
                   "log_style = common\n")
        reload(s)
        log = s.log()
        assert "reload: listen changed: it needs a restart" in log, log
        assert "reload: workers changed: it needs a restart" in log, log
        assert ("reload: access_log, error_log, log_style, log_ip or "
                "log_query changed: the logs change at a restart") in log
        # The rest took; the old address still serves, the new one is
        # not opened.
        assert s.get("/").body == b"# B\n"
        try:
            gemini_raw(port, b"gemini://localhost/\r\n", timeout=2)
            assert False, "the new address was opened"
        except ConnectionRefusedError:
            pass
    finally:
        stop_clean(s)


def test_memory_after_a_hundred_reloads(tmp_path, site):
    # -v: the debug lines say when each old configuration is released.
    s = start_server(tmp_path, site.body("A"), env=measured_env(),
                     args=("-v",))
    try:
        def round_trip(n):
            for i in range(n):
                site.write("B" if i % 2 == 0 else "A")
                reload(s)
                if i % 10 == 9:
                    for path in ("/", "/api/x", "/cgi-bin/hi.sh"):
                        assert s.get(path).status == 20
            site.write("A")
            reload(s)

        round_trip(20)  # warm up: the allocator's arenas, the caches
        before = s.rss_kib()
        t0 = time.time()
        round_trip(100)
        took = time.time() - t0
        after = s.rss_kib()
        print(f"\n100 reloads in {took:.1f} s: VmRSS {before} KiB -> "
              f"{after} KiB ({after - before:+d} KiB)")
        # ASan's quarantine (8 MiB in measured_env) holds freed memory.
        assert after - before < (16384 if SANITIZED else 4096), (before,
                                                                 after)
        assert s.get("/").body == b"# A\n"
        # Every configuration replaced has been freed, none kept.
        deadline = time.time() + 20 * SLOW
        while s.log().count("its last connection is over, released") < 122:
            assert time.time() < deadline, s.log()[-2000:]
            time.sleep(0.05)
    finally:
        stop_clean(s)


def test_a_renewed_ticket_key_is_read_on_reload(tmp_path, site):
    """ticket_key_file is read again: sessions under the old key are no
    longer resumed, sessions under the new one are, across reloads."""
    key = tmp_path / "tickets.key"
    subprocess.run([BIN, "-k", str(key)], check=True, timeout=30 * SLOW)
    extra = f"ticket_key_file = {key}\n"
    s = start_server(tmp_path, site.body("A", extra))

    def s_client(*args):
        r = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{s.port}",
             "-servername", "localhost", "-ign_eof", "-tls1_3", *args],
            input=b"gemini://localhost/\r\n", capture_output=True,
            timeout=20 * SLOW)
        return r.stdout.decode("utf-8", "replace")

    try:
        old = tmp_path / "old.pem"
        assert "New, TLSv1.3" in s_client("-sess_out", str(old))
        reload(s)  # the same key: still resumed
        assert "Reused, TLSv1.3" in s_client("-sess_in", str(old))
        os.unlink(key)
        subprocess.run([BIN, "-k", str(key)], check=True, timeout=30 * SLOW)
        reload(s)  # a new key: the old tickets are not
        out = s_client("-sess_in", str(old), "-sess_out",
                       str(tmp_path / "new.pem"))
        assert "New, TLSv1.3" in out and "\n20 text/gemini" in out, out
        reload(s)
        assert "Reused, TLSv1.3" in s_client("-sess_in",
                                             str(tmp_path / "new.pem"))
    finally:
        stop_clean(s)


def test_notify_reloading_ready_and_watchdog(tmp_path, site):
    path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    notify.settimeout(30 * SLOW)
    env = dict(os.environ, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="300000")

    def next_state():
        """The next datagram that is not a watchdog ping."""
        while True:
            msg = notify.recv(4096).decode()
            if msg != "WATCHDOG=1":
                return msg

    s = start_server(tmp_path, site.body("A"), env=env)
    try:
        assert next_state().startswith("READY=1")
        # The watchdog: every 150 ms; two in a row prove it repeats.
        for _ in range(2):
            while notify.recv(4096) != b"WATCHDOG=1":
                pass
        site.write("B")
        s.proc.send_signal(signal.SIGHUP)
        msg = next_state()
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", msg), msg
        msg = next_state()
        assert msg.startswith("READY=1\nSTATUS=serving"), msg
        assert s.get("/").body == b"# B\n"
        s.conf_path.write_text("[server\n")
        s.proc.send_signal(signal.SIGHUP)
        assert next_state().startswith("RELOADING=1\n")
        msg = next_state()
        assert msg.startswith("READY=1\nSTATUS=reload failed"), msg
        assert s.get("/").body == b"# B\n"
        s.proc.send_signal(signal.SIGTERM)
        assert next_state() == "STOPPING=1"
        s.proc.wait(timeout=30 * SLOW)  # no second SIGTERM from stop()
    finally:
        notify.close()
        stop_clean(s)


def fetch_sni(port, sni, path="/"):
    """(reply body, the server certificate's sha256 hex) for SNI sni."""
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", port),
                                  timeout=10 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(f"gemini://{sni}{path}\r\n".encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
    return data, hashlib.sha256(der).hexdigest()


def test_a_second_hosts_renewed_certificate_and_pages(tmp_path, site):
    """[host] sites are part of what a reload reads again: a second
    host's certificate, renewed on disk, is served after the reload, its
    new pages too; a host added by the reload serves, one removed no
    longer does (53), and the reload is counted in the metrics."""
    second = tmp_path / "second"
    second.mkdir()
    (second / "index.gmi").write_text("# second\n")
    crt, key = tmp_path / "second.crt", tmp_path / "second.key"
    new_certificate(crt, key)
    metrics = socket.socket()
    metrics.bind(("127.0.0.1", 0))
    mport = metrics.getsockname()[1]
    metrics.close()
    host = (f"[host second.example]\ncert = {crt}\nkey = {key}\n"
            f"[static second.example /]\nroot = {second}\n")
    extra = f"metrics_listen = 127.0.0.1:{mport}\n"
    s = start_server(tmp_path, site.body("A", extra) + host)
    try:
        body, fp = fetch_sni(s.port, "second.example")
        assert body == b"20 text/gemini\r\n# second\n"
        assert fp == file_cert_sha256(crt)
        old_fp = fp
        new_certificate(crt, key)  # renewed, as certbot would
        (tmp_path / "third").mkdir()
        (tmp_path / "third" / "index.gmi").write_text("# third\n")
        write_config(tmp_path, site.body("B", extra) + host.replace(
            "root = " + str(second), "root = " + str(tmp_path / "third")) +
            "[host fourth.example]\n"
            f"[static fourth.example /]\nroot = {second}\n")
        reload(s)
        assert "reloaded: configuration 2" in s.log(), s.log()
        body, fp = fetch_sni(s.port, "second.example")
        assert body == b"20 text/gemini\r\n# third\n"
        assert fp == file_cert_sha256(crt) and fp != old_fp
        assert fetch_sni(s.port, "fourth.example")[0] == (
            b"20 text/gemini\r\n# second\n")
        assert s.get("/").body == b"# B\n"
        # Removed again: fourth.example is no site's any more.
        site.write("B", extra)
        reload(s)
        body, _ = fetch_sni(s.port, "fourth.example")
        assert body.startswith(b"53 "), body
        with socket.create_connection(("127.0.0.1", mport)) as c:
            c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            text = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                text += d
        assert re.search(rb"\nxitzin_reloads_total 2\n", text), text
    finally:
        stop_clean(s)


def test_a_storm_of_sighups(tmp_path, site):
    """SIGHUPs as fast as they can be sent, while clients are served:
    reloads run one after another (signals that arrive together are
    one), none is lost between the main thread and the workers, every
    request is answered, and every replaced configuration is freed."""
    s = start_server(tmp_path, site.body("A"), args=("-v",))
    stop = threading.Event()
    errors, done = [], [0]

    def client():
        while not stop.is_set():
            try:
                r = s.get("/cgi-bin/hi.sh", timeout=30)
                if r.status != 20 or r.body not in (b"cgi A", b"cgi B"):
                    errors.append(r)
            except Exception as e:  # any failure counts
                errors.append(repr(e))
            done[0] += 1

    try:
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(60):
            if i % 20 == 0:
                site.write("B" if i % 40 == 0 else "A")
            s.proc.send_signal(signal.SIGHUP)
            time.sleep(0.002)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        assert errors == [], errors[:5]
        assert done[0] > 0
        n = reloads_done(s)
        assert n >= 1, s.log()
        # The last configuration written (A) serves.
        site.write("A")
        reload(s)
        assert s.get("/").body == b"# A\n"
        deadline = time.time() + 20 * SLOW
        while s.log().count("its last connection is over, released") < n + 1:
            assert time.time() < deadline, s.log()[-3000:]
            time.sleep(0.05)
    finally:
        stop.set()
        stop_clean(s)


def test_signals_through_a_pid_file(tmp_path, site):
    """xitzin -p FILE writes its pid; xitzin -s reload|reopen|stop -p FILE
    signals it, and refuses a file that names another process."""
    pid_file = tmp_path / "xitzin.pid"
    s = start_server(tmp_path, site.body("A"), args=("-p", str(pid_file)))
    try:
        assert pid_file.read_text() == f"{s.proc.pid}\n"
        site.write("B")
        r = subprocess.run([BIN, "-s", "reload", "-p", str(pid_file)],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        deadline = time.time() + 30 * SLOW
        while "reloaded: configuration 2" not in s.log():
            assert time.time() < deadline, s.log()
            time.sleep(0.01)
        assert s.get("/").body == b"# B\n"
        stale = tmp_path / "stale.pid"
        stale.write_text(f"{os.getpid()}\n")  # this test, not a xitzin
        r = subprocess.run([BIN, "-s", "reload", "-p", str(stale)],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode == 1
        assert f"process {os.getpid()} is not running xitzin" in r.stderr
        r = subprocess.run([BIN, "-s", "reload"], capture_output=True,
                           text=True, timeout=30 * SLOW)  # which one?
        assert r.returncode == 1 and "usage:" in r.stderr, r.stderr
        r = subprocess.run([BIN, "-s", "restart", "-p", str(pid_file)],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode == 1
        assert "expected reload, reopen or stop" in r.stderr, r.stderr
        r = subprocess.run([BIN, "-s", "stop", "-p", str(pid_file)],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode == 0, r.stderr
        assert s.proc.wait(timeout=30 * SLOW) == 0, s.log()
        assert not pid_file.exists()
    finally:
        stop_clean(s)
