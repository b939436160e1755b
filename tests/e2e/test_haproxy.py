"""The deployment of examples/haproxy/, run as it is: Debian's HAProxy in
TCP mode, sending PROXY v2 headers and checking /health, in front of two
xitzin instances that share a certificate and a ticket key file, each
mounting a pool of the same two SCGI backends (the C echo backend, which
answers with the variables it got, over TCP and over a Unix socket). The
example's files are copied with free loopback ports put in place of
theirs, and nothing else changed. Every process is stopped by its PID.

Requests succeed through HAProxy; the backend sees the client's address
and port; a client resumes its TLS session on the other instance;
SIGTERM to one instance under load (16 clients) loses no request
(stop_delay keeps it serving while HAProxy takes it out of rotation);
kill -9 of one loses at most the requests in flight on it; one SCGI
backend killed under load loses none. And stop_delay on its own: the
server serves on, announced as stopping, then closes its listeners; a
second SIGTERM ends the delay."""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (BIN, BUILD_DIR, ROOT, SANITIZER_REPORT, SLOW, Server,
                      Reply, client_context, gemini_raw, start_server)
from conftest import free_port

EXAMPLE = ROOT / "examples" / "haproxy"
HAPROXY = "/usr/sbin/haproxy"
ECHO = BUILD_DIR / "scgi-echo-backend"
# The example's ports: HAProxy's frontend, the two instances, the SCGI
# backends, the instances' metrics (/health for HAProxy's checks). Each is
# replaced by a free one; the files say nothing else.
FRONT, A, B, SCGI1 = 1965, 1966, 1967, 4000
SCGI2 = "scgi.sock"  # the pool's other backend, beside the configs
METRICS_A, METRICS_B = 9101, 9102
FILES = ("haproxy.cfg", "a.conf", "b.conf")
CLIENTS = 16


def wait_for(what, pred, timeout=30):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Deployment:
    """The example's processes, on free ports in tmp."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.ports = {p: free_port() for p in (FRONT, A, B, SCGI1, METRICS_A,
                                                  METRICS_B)}
        self.procs = []  # (name, Popen), stopped in reverse order
        self.instances = {}
        texts = {name: (EXAMPLE / name).read_text() for name in FILES}
        for old in self.ports:  # a port the example lost: fix the test
            assert any(re.search(rf"\b{old}\b", t) for t in texts.values())
        for name, text in texts.items():
            for old, new in self.ports.items():
                text = re.sub(rf"\b{old}\b", str(new), text)
            (tmp / name).write_text(text)
        self.front = self.ports[FRONT]

    def spawn(self, name, argv, **kw):
        log = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.tmp, **kw)
        log.close()
        self.procs.append((name, p))
        return p

    def log(self, name):
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def start_backend(self, name, where):
        p = self.spawn(name, [str(ECHO), where])

        def up():
            assert p.poll() is None, self.log(name)
            return "listening on" in self.log(name)
        wait_for(f"{name} listening", up)

    def start_instance(self, name):
        conf = self.tmp / f"{name}.conf"
        p = self.spawn(name, [BIN, "-c", str(conf)])

        def up():
            assert p.poll() is None, self.log(name)
            return "listening on" in self.log(name)
        wait_for(f"instance {name}", up)
        port = self.ports[A if name == "a" else B]
        self.instances[name] = Server(p, self.tmp / f"{name}.log", conf,
                                      port, self.tmp)

    def start(self):
        # The pool: the C echo backend over TCP and over a Unix socket.
        self.start_backend("scgi1", f"127.0.0.1:{self.ports[SCGI1]}")
        self.start_backend("scgi2", f"unix:{self.tmp / SCGI2}")
        r = subprocess.run([BIN, "-k", str(self.tmp / "tickets.key")],
                           capture_output=True, text=True,
                           timeout=30 * SLOW)
        assert r.returncode == 0, r
        # a first: it generates the certificate that b then reads.
        self.start_instance("a")
        self.start_instance("b")
        h = self.spawn("haproxy", [HAPROXY, "-f", "haproxy.cfg", "-db"])

        def up():
            assert h.poll() is None, self.log("haproxy")
            return self.states() == {"a": "UP", "b": "UP"}
        wait_for("both instances UP in HAProxy", up)

    def stats(self):
        """HAProxy's view of its servers: name -> the fields of show stat."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5 * SLOW)
                s.connect(str(self.tmp / "haproxy.sock"))
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return {}
        lines = data.decode().splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        head = lines[0][2:].split(",")
        rows = [dict(zip(head, l.split(","))) for l in lines[1:] if l]
        return {r["svname"]: r for r in rows if r["pxname"] == "xitzin"}

    def states(self):
        st = self.stats()
        return {n: st[n]["status"] for n in ("a", "b") if n in st}

    def stop(self):
        """Stops everything by PID; returns what went wrong, if anything."""
        problems = []
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                if name in self.instances:
                    # A second one ends the stop delay: nobody is left
                    # to balance the load.
                    wait_for(f"{name}'s stop delay",
                             lambda: "(stop_delay)" in self.log(name) or
                             p.poll() is not None)
                    p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30 * SLOW)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    problems.append(f"{name} did not stop on SIGTERM")
            if name in self.instances:
                log = self.log(name)
                if SANITIZER_REPORT.search(log):
                    problems.append(f"{name}: {log}")
                if p.returncode not in (0, -signal.SIGKILL):
                    problems.append(f"{name} exited {p.returncode}: {log}")
        return problems


@pytest.fixture
def deployment(tmp_path):
    # A free port may be taken by another process before we bind it (an
    # outgoing connection's port comes from the same range): start again
    # on other ports.
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        d = Deployment(tmp_path / str(attempt))
        try:
            d.start()
            break
        except AssertionError as e:
            d.stop()
            if "Address already in use" not in str(e) or attempt == 2:
                raise
    try:
        yield d
    finally:
        problems = d.stop()
    assert not problems, "\n".join(problems)


def env_of(reply):
    """The echo backend's answer: NAME -> value."""
    return dict(l.split("=", 1) for l in reply.body.decode().splitlines()
                if "=" in l)


def get(port, path="/app/"):
    return gemini_raw(port, f"gemini://localhost{path}\r\n".encode(),
                      timeout=30)


class Load:
    """CLIENTS threads sending total requests through HAProxy, one at a
    time each, every answer checked; failures kept with their reason."""

    def __init__(self, port, total):
        self.port, self.total = port, total
        self.lock = threading.Lock()
        self.started = 0
        self.done = 0
        self.failures = []
        self.served = {}
        self.threads = [threading.Thread(target=self.client)
                        for _ in range(CLIENTS)]

    def client(self):
        while True:
            with self.lock:
                if self.started == self.total:
                    return
                self.started += 1
            try:
                r = get(self.port)
                ok = (r.status == 20 and r.close_notify and
                      "XITZIN_INSTANCE" in env_of(r))
                why = None if ok else repr(r)
            except (OSError, ssl.SSLError) as e:
                ok, why = False, repr(e)
            with self.lock:
                self.done += 1
                if ok:
                    who = env_of(r)["XITZIN_INSTANCE"]
                    self.served[who] = self.served.get(who, 0) + 1
                else:
                    self.failures.append(why)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def wait_done(self, n):
        wait_for(f"{n} requests answered", lambda: self.done >= n,
                 timeout=120)

    def join(self):
        for t in self.threads:
            t.join(timeout=300 * SLOW)
            assert not t.is_alive(), "a load client hung"
        return self


def test_requests_succeed_through_haproxy(deployment):
    seen = set()
    for _ in range(4):
        r = get(deployment.front)
        assert (r.status, r.meta) == (20, "text/plain"), r
        assert r.close_notify
        env = env_of(r)
        assert env["SCRIPT_NAME"] == "/app"
        seen.add(env["XITZIN_INSTANCE"])
    assert seen == {"a", "b"}  # round robin


def test_backend_sees_the_client_address(deployment):
    """HAProxy sends a PROXY v2 header: REMOTE_ADDR and REMOTE_PORT are
    the client's (its own source port), not HAProxy's connection's; and
    the access log has the client."""
    ctx = client_context()
    seen = {}
    for _ in range(2):  # round robin: one request to each instance
        with socket.create_connection(("127.0.0.1", deployment.front),
                                      timeout=30 * SLOW) as raw:
            port = raw.getsockname()[1]
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"gemini://localhost/app/\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        env = env_of(Reply(data, True))
        assert env["REMOTE_ADDR"] == "127.0.0.1", env
        assert env["REMOTE_PORT"] == str(port), (port, env)
        seen[env["XITZIN_INSTANCE"]] = port
    assert set(seen) == {"a", "b"}
    print(f"\nclient ports {seen}: each the backend's REMOTE_PORT")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3,
                                     ssl.TLSVersion.TLSv1_2])
def test_client_resumes_on_the_other_instance(deployment, version):
    ctx = client_context()
    ctx.minimum_version = ctx.maximum_version = version
    session, reused, who = None, [], []
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", deployment.front),
                                      timeout=30 * SLOW) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost",
                                 session=session) as s:
                s.sendall(b"gemini://localhost/app/\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                assert data.startswith(b"20 text/plain\r\n"), data
                m = re.search(rb"XITZIN_INSTANCE=(\w)", data)
                who.append(m.group(1).decode())
                reused.append(s.session_reused)
                session = s.session
    # Round robin: each connection went to the other instance.
    assert who[0] != who[1] and who[1] != who[2] and who[2] != who[3], who
    assert reused == [False, True, True, True], (who, reused)
    print(f"\nresumption {version.name}: instances {who}, reused {reused}")


def test_sigterm_under_load_loses_nothing(deployment):
    total = 3000
    a = deployment.instances["a"]
    load = Load(deployment.front, total).start()
    load.wait_done(total // 4)
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    wait_for("a DOWN in HAProxy",
             lambda: deployment.states().get("a", "").startswith("DOWN"))
    down = time.monotonic() - t0
    # Taken out by its /health answering 503 (L7STS), while it still
    # served (stop_delay, 5 s: the checks need 0.4), not by a refused
    # connect (L4CON).
    assert deployment.stats()["a"]["check_status"] == "L7STS"
    assert a.proc.poll() is None
    assert a.proc.wait(timeout=60 * SLOW) == 0, a.log()
    exited = time.monotonic() - t0
    load.join()
    st = deployment.stats()["a"]
    print(f"\nSIGTERM to a after {total // 4} requests: {load.done} "
          f"answered, {len(load.failures)} failed, served {load.served}; "
          f"a DOWN in HAProxy after {down:.2f} s, exited after "
          f"{exited:.2f} s; HAProxy redispatched {st['wredis']}")
    assert load.failures == [], load.failures[:5]
    assert load.done == total
    assert load.served.get("b", 0) > total // 2


def test_scgi_backend_killed_under_load_loses_nothing(deployment):
    """Each instance's pool fails over to the other backend: the TCP one
    killed outright (kill -9) under load costs no request."""
    total = 2000
    backend = dict(deployment.procs)["scgi1"]
    load = Load(deployment.front, total).start()
    load.wait_done(total // 4)
    backend.kill()
    load.join()
    print(f"\nkill -9 of SCGI backend 1 after {total // 4} requests: "
          f"{load.done} answered, {len(load.failures)} failed, "
          f"served {load.served}")
    assert load.failures == [], load.failures[:5]
    assert load.done == total


def established(port):
    """Connections open to 127.0.0.1:port (accepted or queued)."""
    with open("/proc/net/tcp") as f:
        rows = [l.split() for l in f.readlines()[1:]]
    return sum(1 for r in rows
               if r[1] == f"0100007F:{port:04X}" and r[3] == "01")


def test_kill_9_loses_only_what_was_in_flight(deployment):
    total = 2000
    a = deployment.instances["a"]
    load = Load(deployment.front, total).start()
    load.wait_done(total // 4)
    in_flight = established(deployment.ports[A])
    a.proc.kill()
    load.join()
    print(f"\nkill -9 of a after {total // 4} requests, with {in_flight} "
          f"connections open on it: {load.done} answered, "
          f"{len(load.failures)} failed, served {load.served}")
    # At most one request in flight per client when a died; the ones
    # after were refused at connect, which HAProxy retries elsewhere.
    assert len(load.failures) <= CLIENTS, load.failures
    assert load.done == total


# stop_delay on its own, without HAProxy.

def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True


def test_stop_delay_serves_on_announced_then_closes(tmp_path, capsule):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30 * SLOW)
    delay = 2 * SLOW
    s = start_server(tmp_path, f"[server]\nstop_delay = {delay}\n"
                     f"[static /]\nroot = {capsule}\n",
                     env=dict(os.environ, NOTIFY_SOCKET=str(tmp_path /
                                                            "notify")))
    try:
        assert "READY=1" in notify.recv(4096).decode()
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096).decode() == "STOPPING=1"
        # Announced as stopping, and serving all the same.
        served = 0
        while not refused(s.port):
            if time.monotonic() - t0 < delay / 2:
                assert s.get("/").status == 20
                served += 1
            time.sleep(0.05)
        closed_after = time.monotonic() - t0
        assert served > 0
        assert closed_after >= delay  # never before the delay is over
        assert s.proc.wait(timeout=30 * SLOW) == 0
        print(f"\nstop_delay {delay}: {served} served while stopping, "
              f"listeners closed after {closed_after:.2f} s")
    finally:
        notify.close()
        rc = s.stop()
    log = s.log()
    assert rc == 0 and not SANITIZER_REPORT.search(log), log
    assert f"closing the listeners in {delay:g} s (stop_delay)" in log, log


def test_second_sigterm_ends_the_stop_delay(xitzin, capsule):
    s = xitzin(f"[server]\nstop_delay = 3600\n[static /]\nroot = {capsule}\n")
    s.proc.send_signal(signal.SIGTERM)
    wait_for("the stop delay", lambda: "(stop_delay)" in s.log())
    assert s.get("/").status == 20
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30 * SLOW) == 0
    assert "again: skipping the stop delay" in s.log(), s.log()


@pytest.mark.parametrize("value,ok", [("0", True), ("0.5", True),
                                      ("-1", False), ("soon", False)])
def test_stop_delay_values(tmp_path, value, ok):
    conf = tmp_path / "x.conf"
    conf.write_text(f"[server]\nstop_delay = {value}\n[static /]\n"
                    f"root = {tmp_path}\n")
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert (r.returncode == 0) == ok, r
    if not ok:
        assert f"stop_delay: invalid value '{value}'" in r.stderr, r


def test_reload_changes_stop_delay(xitzin, capsule):
    s = xitzin(f"[server]\nstop_delay = 3600\n[static /]\nroot = {capsule}\n")
    s.conf_path.write_text(s.conf_path.read_text().replace(
        "stop_delay = 3600", "stop_delay = 0.1"))
    s.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: "reloaded" in s.log())
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30 * SLOW) == 0
    assert "closing the listeners in 0.1 s (stop_delay)" in s.log(), s.log()
