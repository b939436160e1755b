"""Metrics (metrics_listen): the Prometheus text format and /health over
HTTP, scraped after a known request mix through the real server and
checked by two real parsers (promtool from Debian's prometheus, and
python3-prometheus-client's); non-loopback addresses refused; /health
503 while a stop drains; the two workers' counters summed."""

import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import BIN, SLOW, client_context, write_config
from conftest import free_port
from test_hostile_backends import hostile  # noqa: F401 (fixture)
from test_scgi import backends  # noqa: F401 (fixture)


def metrics_port(server):
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline:
        m = re.search(r"metrics on port (\d+)", server.log())
        if m:
            return int(m.group(1))
        time.sleep(0.02)
    raise AssertionError("no metrics port in the log:\n" + server.log())


def http_get(port, path):
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                    timeout=10 * SLOW) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} from a scrape, parsed."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(smp, name, **labels):
    return smp.get((name, frozenset(labels.items())), 0)


def total(smp, name, **labels):
    """The sum over the samples of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in smp.items() if n == name and want <= ls)


def scrape_when(port, done):
    """Scrapes until done(samples) (connections end after the client has
    its answer: the server counts them a moment later)."""
    deadline = time.time() + 15 * SLOW
    while True:
        status, ctype, text = http_get(port, "/metrics")
        assert status == 200
        smp = samples(text)
        if done(smp) or time.time() > deadline:
            return ctype, text, smp
        time.sleep(0.05)


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def cgi_root(tmp_path):
    root = tmp_path / "cgi-bin"
    root.mkdir()
    hello = root / "hello.sh"
    hello.write_text("#!/bin/sh\nprintf '20 text/plain\\r\\nhi\\n'\n")
    hello.chmod(0o755)
    slow = root / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 2\nprintf '20 text/plain\\r\\nslow\\n'\n")
    slow.chmod(0o755)
    return root


def test_known_mix_counted_exactly(xitzin, capsule, tmp_path):
    down = free_port()  # nothing listens there: connect refused
    s = xitzin("[server]\nmetrics_listen = 127.0.0.1:0\n"
               f"[static /]\nroot = {capsule}\n"
               f"[static /limited]\nroot = {capsule}\n"
               "rate_limit = 1/h\nrate_burst = 1\n"
               f"[scgi /down]\nhost = 127.0.0.1\nport = {down}\n"
               f"[cgi /cgi-bin]\nroot = {cgi_root(tmp_path)}\n")
    mport = metrics_port(s)
    replies = []
    for _ in range(5):
        replies.append(s.get("/hello.txt"))
    for i in range(3):
        replies.append(s.get(f"/missing{i}.gmi"))
    replies.append(s.raw(b"gemini://localhost/%zz\r\n"))
    replies.append(s.raw(b"no-scheme\r\n"))
    replies.append(s.get("/down/x"))
    replies.append(s.get("/cgi-bin/hello.sh"))
    replies.append(s.get("/limited/hello.txt"))
    replies.append(s.get("/limited/hello.txt"))
    # One client resumes its session: a ticket came with the last answer.
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(b"gemini://localhost/hello.txt\r\n")
            first = b"".join(iter(lambda: t.recv(65536), b""))
            sess = t.session
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             session=sess) as t:
            t.sendall(b"gemini://localhost/hello.txt\r\n")
            second = b"".join(iter(lambda: t.recv(65536), b""))
            assert t.session_reused
    assert [r.status for r in replies] == \
        [20] * 5 + [51] * 3 + [59, 59, 43, 20, 20, 44]
    assert replies[10].meta == "Failed to connect to SCGI backend"
    assert first.startswith(b"20 ") and second.startswith(b"20 ")
    n = len(replies) + 2

    ctype, text, smp = scrape_when(
        mport, lambda m: value(m, "xitzin_connections_total") == n and
        value(m, "xitzin_connections_open") == 0 and
        value(m, "xitzin_request_duration_seconds_count") == n)
    assert ctype == "text/plain; version=0.0.4"
    promtool_check(text)
    req = "xitzin_requests_total"
    assert value(smp, req, mount="/", status="20") == 7
    assert value(smp, req, mount="/", status="51") == 3
    assert value(smp, req, mount="none", status="59") == 2
    assert value(smp, req, mount="/down", status="43") == 1
    assert value(smp, req, mount="/cgi-bin", status="20") == 1
    assert value(smp, req, mount="/limited", status="20") == 1
    assert value(smp, req, mount="none", status="44") == 1
    assert total(smp, req) == n
    assert value(smp, "xitzin_rate_limited_total") == 1
    assert value(smp, "xitzin_backend_failures_total",
                 backend=f"127.0.0.1:{down}", kind="connect") == 1
    assert value(smp, "xitzin_backend_failures_total",
                 backend=f"127.0.0.1:{down}", kind="timeout") == 0
    assert value(smp, "xitzin_response_bytes_total") == \
        sum(len(r.raw) for r in replies) + len(first) + len(second)
    assert value(smp, "xitzin_tls_handshakes_total", kind="full") == n - 1
    assert value(smp, "xitzin_tls_handshakes_total", kind="resumed") == 1
    assert value(smp, "xitzin_tls_hello_retry_requests_total") == 0
    assert value(smp, "xitzin_request_duration_seconds_bucket",
                 le="+Inf") == n
    assert value(smp, "xitzin_request_duration_seconds_sum") > 0
    assert value(smp, "xitzin_cgi_processes") == 0
    assert value(smp, "xitzin_reloads_total") == 0
    assert value(smp, "xitzin_stopping") == 0
    # Anything but GET /metrics and /health: a defined HTTP answer.
    assert http_get(mport, "/")[0] == 404
    assert http_get(mport, "/metrics/x")[0] == 404
    # Other methods: 501 (evhttp's word for a method not allowed); a body,
    # which no scraper sends, 413.
    for method, data, code in (("POST", b"", 501), ("DELETE", None, 501),
                               ("POST", b"x", 413)):
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics",
                                     data=data, method=method)
        try:
            urllib.request.urlopen(req, timeout=10 * SLOW)
            raise AssertionError(f"{method} answered 2xx")
        except urllib.error.HTTPError as e:
            assert e.code == code, (method, e.code)


def test_hello_retry_counted(xitzin, capsule):
    s = xitzin(f"[server]\nmetrics_listen = 127.0.0.1:0\n"
               f"[static /]\nroot = {capsule}\n")
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{s.port}",
         "-servername", "localhost", "-ign_eof", "-tls1_3", "-groups",
         "ffdhe2048:X25519"], input=b"gemini://localhost/\r\n",
        capture_output=True, timeout=20 * SLOW)
    assert b"\n20 text/gemini" in r.stdout
    _, _, smp = scrape_when(metrics_port(s), lambda m: value(
        m, "xitzin_request_duration_seconds_count") == 1)
    assert value(smp, "xitzin_tls_hello_retry_requests_total") == 1


def test_backend_timeout_counted(xitzin, hostile):  # noqa: F811
    """A backend that takes the connection and never answers: 43 after
    its timeout, counted for that backend as a timeout, not a connect
    failure."""
    deaf = hostile("deaf")
    s = xitzin("[server]\nmetrics_listen = 127.0.0.1:0\n"
               f"[scgi /deaf]\nhost = 127.0.0.1\nport = {deaf}\n"
               "timeout = 0.5\n")
    r = s.get("/deaf/x")
    assert (r.status, r.meta) == (43, "SCGI backend timeout")
    _, text, smp = scrape_when(metrics_port(s), lambda m: value(
        m, "xitzin_request_duration_seconds_count") == 1)
    promtool_check(text)
    be = f"127.0.0.1:{deaf}"
    assert value(smp, "xitzin_backend_failures_total", backend=be,
                 kind="timeout") == 1
    assert value(smp, "xitzin_backend_failures_total", backend=be,
                 kind="connect") == 0
    assert value(smp, "xitzin_requests_total", mount="/deaf",
                 status="43") == 1


def test_two_workers_are_summed(xitzin, capsule):
    """40 connections over 2 workers (SO_REUSEPORT spreads them by a hash
    of the client port: all 40 on one worker has odds of 2^-39): the
    scrape counts every one, whichever worker served it. test_metrics.c
    sums two workers' counters deterministically."""
    s = xitzin("[server]\nworkers = 2\nmetrics_listen = 127.0.0.1:0\n"
               f"[static /]\nroot = {capsule}\n")
    for _ in range(40):
        assert s.get("/hello.txt").status == 20
    _, _, smp = scrape_when(metrics_port(s), lambda m: value(
        m, "xitzin_connections_total") == 40 and value(
        m, "xitzin_connections_open") == 0)
    assert value(smp, "xitzin_requests_total", mount="/", status="20") == 40
    assert value(smp, "xitzin_connections_total") == 40
    assert value(smp, "xitzin_connections_open") == 0


def test_health_503_while_draining(xitzin, capsule, tmp_path):
    s = xitzin("[server]\nmetrics_listen = 127.0.0.1:0\ndrain_timeout = 30\n"
               f"[cgi /cgi-bin]\nroot = {cgi_root(tmp_path)}\n")
    mport = metrics_port(s)
    assert http_get(mport, "/health") == (200, "text/plain", "ok\n")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "r", s.get("/cgi-bin/slow.sh")))
    t.start()
    # The script is running: the gauge shows it.
    scrape_when(mport, lambda m: value(m, "xitzin_cgi_processes") == 1 and
                value(m, "xitzin_connections_open") == 1)
    s.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 10 * SLOW
    while http_get(mport, "/health")[0] == 200 and time.time() < deadline:
        time.sleep(0.02)
    assert http_get(mport, "/health") == (503, "text/plain", "stopping\n")
    _, _, smp = scrape_when(mport, lambda m: True)
    assert value(smp, "xitzin_stopping") == 1
    t.join(30 * SLOW)
    assert result["r"].status == 20 and result["r"].body == b"slow\n"
    assert s.proc.wait(30 * SLOW) == 0


def test_non_loopback_refused_by_check_and_at_start(tmp_path, capsule):
    conf = write_config(tmp_path, "[server]\nmetrics_listen = 0.0.0.0:9165\n"
                        f"[static /]\nroot = {capsule}\n")
    line = next(i for i, l in enumerate(conf.read_text().splitlines(), 1)
                if l.startswith("metrics_listen"))
    for args in (["-t"], []):
        r = subprocess.run([BIN, *args, "-c", str(conf)],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode != 0
        assert f"xitzin.conf:{line}: metrics_listen 0.0.0.0:9165: not a " \
            "loopback address" in r.stderr, r.stderr
    conf.write_text(conf.read_text().replace(
        "metrics_listen", "metrics_allow_remote = true\nmetrics_listen"))
    r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode == 0, r.stderr
    for bad in ("127.0.0.1", "127.0.0.1:99999", "[::1:9165"):
        conf.write_text(f"[server]\nmetrics_listen = {bad}\n"
                        f"[static /]\nroot = {capsule}\n")
        r = subprocess.run([BIN, "-t", "-c", str(conf)], capture_output=True,
                           text=True, timeout=30 * SLOW)
        assert r.returncode != 0 and "metrics_listen" in r.stderr, r.stderr


def test_metrics_address_in_use_refused(xitzin, capsule, tmp_path):
    s = xitzin("[server]\nmetrics_listen = 127.0.0.1:0\n"
               f"[static /]\nroot = {capsule}\n")
    mport = metrics_port(s)
    other = tmp_path / "other"
    other.mkdir()
    conf = write_config(other, f"[server]\nmetrics_listen = 127.0.0.1:{mport}\n"
                        f"[static /]\nroot = {capsule}\n")
    r = subprocess.run([BIN, "-c", str(conf)], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode != 0
    assert f"metrics_listen 127.0.0.1:{mport}: Address already in use" \
        in r.stderr, r.stderr
    assert http_get(mport, "/health")[0] == 200
