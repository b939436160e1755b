#!/usr/bin/python3
"""bench/run.py - `make bench`: xitzin beside Molly Brown, in one run.

Builds xitzin (release) and the two bench tools, generates one EC P-256
certificate (xitzin's own first-run generation), starts xitzin and Molly
Brown on loopback with the same capsule and the same SCGI backends, and
runs every scenario against each in turn. Prints the table, then writes
it to bench/build/results.md and the raw figures to results.json.

The figure that ranks servers is the server's CPU per request (user+sys
from /proc/PID/stat over the measured window, divided by the requests
answered), with the servers pinned to core 0 and the load generator (and
the SCGI backends, see backends()) to core 1: on two cores the client
spends more CPU per handshake than a server does, so requests per second
measure the client. Both servers write their access log to /dev/null, run
one worker thread (Go's GOMAXPROCS follows the affinity mask) and get the
same small environment.

Molly Brown listens on every interface (it has no listen address), so the
whole run happens in a private network namespace (unshare --net) where
loopback is the only interface: nothing started here is reachable from
outside. Without one (not root, no user namespaces), Molly Brown is left
out rather than exposed.

Every process started is stopped by its PID when the run ends, however it
ends.
"""

import argparse
import ctypes
import fcntl
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "build"
WORK = OUT / "run"

SMALL = 100
BIG = 100 * 1024
STREAM = 1024 ** 3

XITZIN_PORT = 19650
MOLLY_PORT = 19651
SCGI_TCP_PORT = 19660
# The metrics-cost pair: the same xitzin with metrics_listen off and on.
METRICS_OFF_PORT = 19652
METRICS_ON_PORT = 19653
METRICS_HTTP_PORT = 19654

CFLAGS = ["-O2", "-g", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
          "-Wmissing-prototypes", "-Wformat=2", "-Wno-unused-parameter",
          "-D_GNU_SOURCE"]

# name, path, body bytes, xitzin only
SCENARIOS = [
    ("static 100 B", "/small.gmi", SMALL, False),
    ("SCGI unix 100 B", "/scgi-small", SMALL, False),
    ("SCGI tcp 100 B", "/scgi-tcp", SMALL, True),
    # Two backends of the SCGI unix 100 B row's kind behind one mount: the
    # difference is the cost of choosing between them.
    ("SCGI pool x2 unix 100 B", "/scgi-pool", SMALL, True),
    ("static 100 KB", "/big.gmi", BIG, False),
    ("SCGI unix 100 KB", "/scgi-big", BIG, False),
    ("CGI sh 100 B", "/cgi-bin/small.sh", SMALL, False),
]
# name, gemload flags. "OpenSSL-like": the ClientHello of OpenSSL 3, Go and
# Python clients (one X25519 key share, P-256 and others listed), what the
# Gemini clients people use send (gemload -g openssl); TLS 1.3 resumption
# with tickets is what they do on their next request. The TLS 1.2 row uses
# gemload's default client (one group, X25519).
MODES = [
    ("TLS 1.3 full, OpenSSL-like", ["-t", "1.3", "-g", "openssl"]),
    ("TLS 1.3 resumed (ticket), OpenSSL-like", ["-t", "1.3", "-r", "-g",
                                                 "openssl"]),
    ("TLS 1.2 resumed, GnuTLS X25519", ["-t", "1.2", "-r"]),
]
FULL13 = MODES[0][0]
# A process per request: the CGI row runs at low concurrency only (the
# issue's figure is 16 clients), where neither server refuses any.
CGI_MAX_CONC = 16

started = []  # every Popen we own, stopped by PID at the end


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kw)


# --- building ---------------------------------------------------------------

def build(args):
    OUT.mkdir(parents=True, exist_ok=True)
    if args.xitzin is None:
        bdir = OUT / "xitzin"
        if not (bdir / "build.ninja").exists():
            run(["meson", "setup", bdir, ROOT, "-Dbuildtype=release"])
        run(["ninja", "-C", bdir, "xitzin"])
        args.xitzin = str(bdir / "xitzin")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gnutls"],
                           check=True, capture_output=True,
                           text=True).stdout.split()
    for tool, extra in (("gemload", flags + ["-lm"]), ("scgi_echo", [])):
        src, exe = BENCH / f"{tool}.c", OUT / tool
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            run(["cc"] + CFLAGS + ["-o", exe, src] + extra)


# --- the private network namespace -------------------------------------------

def die_with_parent():
    """In a child before exec: SIGTERM when its parent goes, however."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def enter_netns(argv):
    """Re-runs this script in a new network namespace; returns its status,
    or None when no namespace can be made. A signal to this process goes
    on to the run inside, which then stops what it started."""
    for pre in (["unshare", "--net"], ["unshare", "--map-root-user", "--net"]):
        probe = subprocess.run(pre + ["true"], capture_output=True)
        if probe.returncode != 0:
            continue
        child = subprocess.Popen(pre + [sys.executable, __file__,
                                        "--in-netns"] + argv,
                                 preexec_fn=die_with_parent)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda n, f: child.send_signal(n))
        return child.wait()
    return None


def loopback_up():
    """`ip link set lo up`, without needing iproute2: SIOCSIFFLAGS."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, siocgifflags, ifr))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def setup_netns():
    loopback_up()
    # Per-namespace settings: the host's are untouched. A run opens
    # hundreds of thousands of connections; give them the whole port range.
    for key, val in (("net/ipv4/ip_local_port_range", "1024 65535"),
                     ("net/ipv4/tcp_tw_reuse", "1")):
        try:
            Path("/proc/sys", key).write_text(val)
        except OSError:
            pass


# --- processes ----------------------------------------------------------------

def raise_nofile():
    """In the child before exec: descriptors for 10,000 connections, and
    no server left behind should this script be killed outright."""
    die_with_parent()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft),
                                                    max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(core, cmd):
    if os.cpu_count() and os.cpu_count() >= 2:
        return ["taskset", "-c", str(core)] + [str(c) for c in cmd]
    return [str(c) for c in cmd]


# What a daemon gets from systemd, not the caller's shell: the servers pass
# their environment on to SCGI (xitzin's inherit_environment), and the
# run should not depend on how long the caller's environment is.
DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def start(cmd, stdout=subprocess.DEVNULL, stderr=None, cwd=None):
    p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=cwd,
                         env=DAEMON_ENV, preexec_fn=raise_nofile)
    started.append(p)
    return p


def stop_all():
    for p in reversed(started):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for p in reversed(started):
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    started.clear()


def wait_tcp(port, proc, what):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: {what} did not listen on port {port}")


def wait_path(path, proc, what):
    deadline = time.monotonic() + 5
    while not Path(path).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"bench: {what} did not create {path}")
        time.sleep(0.02)


# --- content and configuration --------------------------------------------------

def body(n):
    line = b"a" * 63 + b"\n"
    return (line * (n // 64 + 1))[:n]


def prepare_work():
    if WORK.exists():
        for p in WORK.iterdir():
            if p.name not in ("cert.pem", "key.pem"):
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    (WORK / "capsule").mkdir(parents=True, exist_ok=True)
    (WORK / "capsule" / "small.gmi").write_bytes(body(SMALL))
    (WORK / "capsule" / "big.gmi").write_bytes(body(BIG))
    # The same trivial sh script for both servers: printf is a builtin,
    # so each request is exactly one process. Molly Brown runs only
    # world-executable files.
    cgi = WORK / "capsule" / "cgi-bin"
    cgi.mkdir(exist_ok=True)
    text = body(SMALL).decode().replace("\n", "\\n")
    (cgi / "small.sh").write_text(
        f"#!/bin/sh\nprintf '20 text/gemini\\r\\n{text}'\n")
    (cgi / "small.sh").chmod(0o755)


def backends(tag, tcp):
    """SCGI backends for one server: the same program, the same sizes.

    They run on core 1, beside gemload: on the server's core each SCGI
    request would also cost the server two context switches (measured:
    +40 us per request on both servers), which belong to the placement,
    not to either server. Their own CPU is measured and shown apart."""
    out = {}
    for name, size in (("small", SMALL), ("big", BIG), ("stream", STREAM)):
        sock = WORK / f"{tag}-{name}.sock"
        p = start(pinned(1, [OUT / "scgi_echo", "-s", size, "-u", sock]))
        wait_path(sock, p, f"scgi_echo {sock.name}")
        out[name] = (p, sock)
    if tcp:  # xitzin's own rows: TCP and a pool of two
        for name in ("pool1", "pool2"):
            sock = WORK / f"{tag}-{name}.sock"
            p = start(pinned(1, [OUT / "scgi_echo", "-s", SMALL, "-u",
                                 sock]))
            wait_path(sock, p, f"scgi_echo {sock.name}")
            out[name] = (p, sock)
        p = start(pinned(1, [OUT / "scgi_echo", "-s", SMALL, "-l",
                             f"127.0.0.1:{SCGI_TCP_PORT}"]))
        wait_tcp(SCGI_TCP_PORT, p, "scgi_echo tcp")
        out["tcp"] = (p, None)
    return out


def xitzin_conf(be, scgi, port=XITZIN_PORT, metrics=None, name="xitzin"):
    conf = f"""[server]
listen = 127.0.0.1:{port}
hostname = localhost
cert = {WORK}/cert.pem
key = {WORK}/key.pem
; one core: one worker (as Go's GOMAXPROCS follows the affinity mask)
workers = 1
; the idle-connection scenario holds 10,000 connections for a while
request_timeout = 600
; idle connections hold one descriptor each: above the default cap, which
; keeps room for a backend socket or file per connection
max_connections = 10500
drain_timeout = 1
"""
    if metrics:
        conf += f"metrics_listen = {metrics}\n"
    conf += f"""
[static /]
root = {WORK}/capsule

[cgi /cgi-bin]
root = {WORK}/capsule/cgi-bin
max_processes = 512
"""
    if scgi:
        conf += f"""
[scgi /scgi-small]
socket = {be['small'][1]}

[scgi /scgi-big]
socket = {be['big'][1]}

[scgi /scgi-stream]
socket = {be['stream'][1]}
max_response_size = 0

[scgi /scgi-tcp]
host = 127.0.0.1
port = {SCGI_TCP_PORT}

[scgi /scgi-pool]
backend = unix:{be['pool1'][1]}
backend = unix:{be['pool2'][1]}
"""
    path = WORK / f"{name}.conf"
    path.write_text(conf)
    return path


def molly_conf(be, scgi):
    path = WORK / "molly.conf"
    conf = f"""Port = {MOLLY_PORT}
Hostname = "localhost"
CertPath = "{WORK}/cert.pem"
KeyPath = "{WORK}/key.pem"
DocBase = "{WORK}/capsule/"
AccessLog = "/dev/null"
ErrorLog = "{WORK}/molly-error.log"
CGIPaths = ["{WORK}/capsule/cgi-bin/"]
"""
    if scgi:
        conf += f"""
[SCGIPaths]
"/scgi-small" = "{be['small'][1]}"
"/scgi-big" = "{be['big'][1]}"
"/scgi-stream" = "{be['stream'][1]}"
"""
    path.write_text(conf)
    return path


def xitzin_has_scgi(xbin):
    """The SCGI handler may not be built yet: check a config that uses it."""
    probe = WORK / "probe.conf"
    probe.write_text(f"""[server]
listen = 127.0.0.1:1
cert = {WORK}/probe.crt
key = {WORK}/probe.key
[scgi /x]
socket = {WORK}/probe.sock
""")
    r = subprocess.run([xbin, "-t", "-c", probe], capture_output=True)
    probe.unlink()
    return r.returncode == 0


class Server:
    def __init__(self, name, port, proc, be):
        self.name, self.port, self.proc, self.be = name, port, proc, be

    def backend_pid(self, path):
        if path == "/scgi-pool" and "pool1" in self.be:
            return ",".join(str(self.be[k][0].pid)
                            for k in ("pool1", "pool2"))
        key = {"/scgi-small": "small", "/scgi-big": "big",
               "/scgi-stream": "stream", "/scgi-tcp": "tcp"}.get(path)
        return self.be[key][0].pid if key in self.be else None


def start_xitzin(xbin, scgi):
    be = backends("x", True) if scgi else {}
    conf = xitzin_conf(be, scgi)
    # Access lines go where Molly Brown's go: /dev/null. Both pay for them.
    proc = start(pinned(0, [xbin, "-c", conf]), stderr=subprocess.DEVNULL)
    wait_tcp(XITZIN_PORT, proc, "xitzin")
    return Server("xitzin", XITZIN_PORT, proc, be)


def start_molly(scgi):
    be = backends("m", False) if scgi else {}
    conf = molly_conf(be, scgi)
    proc = start(pinned(0, ["molly-brown", "-c", conf]),
                 stderr=subprocess.DEVNULL, cwd=WORK)
    wait_tcp(MOLLY_PORT, proc, "molly-brown")
    return Server("molly", MOLLY_PORT, proc, be)


def start_xitzin_metrics(xbin, on):
    """A static-only xitzin for the metrics-cost pair."""
    port = METRICS_ON_PORT if on else METRICS_OFF_PORT
    name = "metrics-on" if on else "metrics-off"
    conf = xitzin_conf({}, False, port,
                       f"127.0.0.1:{METRICS_HTTP_PORT}" if on else None, name)
    proc = start(pinned(0, [xbin, "-c", conf]), stderr=subprocess.DEVNULL)
    wait_tcp(port, proc, name)
    return Server(name, port, proc, {})


# --- measuring ----------------------------------------------------------------

def gemload(srv, path, extra, timeout):
    url = f"gemini://localhost:{srv.port}{path}"
    cmd = [OUT / "gemload", "-j", "-p", srv.proc.pid] + extra
    bpid = srv.backend_pid(path)
    if bpid is not None:
        cmd += ["-P", bpid]
    cmd.append(url)
    r = subprocess.run(pinned(1, cmd), capture_output=True, text=True,
                       timeout=timeout)
    if srv.proc.poll() is not None:
        sys.exit(f"bench: {srv.name} died during {path} ({r.stderr})")
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sys.exit(f"bench: gemload gave no result for {url}: {r.stderr}")


def run_matrix(servers, args, results):
    """Each cell is run `repeat` times, the servers taking turns (the order
    alternates A-B, B-A, B-A, A-B..., so neither always runs first), and the run with the
    median CPU per request stands for the cell: one slow second on a shared
    machine does not decide a ratio. Errors count from every run."""
    concs = [16, 256] if args.quick else [1, 16, 64, 256]
    dur, warm = (1.0, 0.3) if args.quick else (args.duration, 0.5)
    repeat = 1 if args.quick else args.repeat
    flip = False
    for mode, mflags in MODES:
        for scen, path, size, xonly in SCENARIOS:
            if path.startswith("/scgi") and not args.scgi:
                continue
            if args.only and not any(o in scen for o in args.only):
                continue
            for conc in concs:
                if path.startswith("/cgi") and conc > CGI_MAX_CONC:
                    continue
                order = [s for s in servers if not (xonly and s.name != "xitzin")]
                runs = {srv.name: [] for srv in order}
                for _ in range(repeat):
                    if flip:
                        order.reverse()
                    flip = not flip
                    for srv in order:
                        extra = ["-c", conc, "-d", dur, "-w", warm, "-b",
                                 size, "-T", 30] + mflags
                        runs[srv.name].append(
                            gemload(srv, path, extra,
                                    timeout=dur + warm + 120))
                for name, rs in runs.items():
                    rs.sort(key=lambda r: r["server_us_per_req"])
                    r = dict(rs[len(rs) // 2])
                    r["errors"] = sum(x["errors"] for x in rs)
                    r["runs"] = [x["server_us_per_req"] for x in rs]
                    r.update(server=name, scenario=scen, mode=mode)
                    results.append(r)
                    r["hrr"] = sum(x.get("hrr", 0) for x in rs)
                    log(f"  {mode:16} {scen:17} c={conc:<4} {name:7} "
                        f"{r['server_us_per_req']:8.1f} us/req "
                        f"{r['rps']:8.0f} req/s  errors {r['errors']}  "
                        f"HRR {r['hrr']}  "
                        f"(runs: {', '.join(f'{v:.0f}' for v in r['runs'])})")


def run_metrics_cost(args):
    """Server CPU per request, static 100 B, TLS 1.3 full (OpenSSL-like),
    c=16, with metrics_listen off and on: the same binary, the two taking
    turns, `repeat` runs each (at least 5), medians compared. A scrape at
    the end shows the counters moved. Returns the lines for the report."""
    servers = [start_xitzin_metrics(args.xitzin, False),
               start_xitzin_metrics(args.xitzin, True)]
    dur, warm = (1.0, 0.3) if args.quick else (args.duration, 0.5)
    runs = {s.name: [] for s in servers}
    extra = ["-c", 16, "-d", dur, "-w", warm, "-b", SMALL, "-T", 30] + \
        MODES[0][1]
    for i in range(max(5, args.repeat)):
        for srv in (servers if i % 2 == 0 else servers[::-1]):
            runs[srv.name].append(gemload(srv, "/small.gmi", extra,
                                          timeout=dur + warm + 120))
    import urllib.request
    with urllib.request.urlopen(
            f"http://127.0.0.1:{METRICS_HTTP_PORT}/metrics", timeout=10) as r:
        scraped = [l for l in r.read().decode().splitlines()
                   if l.startswith("xitzin_requests_total")]
    for srv in servers:
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(30)
    med = {}
    lines = []
    for name, rs in runs.items():
        us = sorted(r["server_us_per_req"] for r in rs)
        med[name] = us[len(us) // 2]
        errs = sum(r["errors"] for r in rs)
        lines.append(f"static 100 B, {MODES[0][0]}, c=16, {name}: median "
                     f"{med[name]:.1f} us CPU/req (runs: "
                     f"{', '.join(f'{v:.1f}' for v in us)}), errors {errs}")
    lines.append(f"metrics on / off: {med['metrics-on'] / med['metrics-off']:.3f}"
                 f" (scrape: {', '.join(scraped)})")
    for line in lines:
        log("  " + line)
    return "\n".join("- " + line for line in lines)


def run_memory(servers, args, results):
    hold = 2000 if args.quick else 10000
    rate = 512 if args.quick else 128  # MiB/s the slow client reads
    # The stream first: the idle connections leave a grown heap behind,
    # and its peak is measured from the RSS it starts with.
    for srv in servers if args.scgi else []:
        r = gemload(srv, "/scgi-stream", ["-n", 1, "-b", STREAM, "-R",
                                          rate * 1024 * 1024, "-T", 600],
                    timeout=900)
        r.update(server=srv.name, scenario="1 GiB SCGI stream, slow client",
                 mode=FULL13)
        results.append(r)
        log(f"  stream {srv.name}: peak RSS "
            f"{r['server_peak_rss_kib'] / 1024:.1f} MiB "
            f"(backend {r['backend_peak_rss_kib'] / 1024:.1f} MiB), "
            f"errors {r['errors']}")
    for srv in servers:
        r = gemload(srv, "/small.gmi", ["-H", hold, "-c", 64, "-d", 2,
                                        "-T", 60], timeout=300)
        r.update(server=srv.name, scenario=f"{hold} idle connections",
                 mode=FULL13)
        results.append(r)
        log(f"  hold {hold} {srv.name}: peak RSS "
            f"{r['server_peak_rss_kib'] / 1024:.1f} MiB, held {r['held']}")


# --- the table ------------------------------------------------------------------

def table(results, servers):
    names = [s.name for s in servers]
    lines = []
    head = ("| mode | scenario | c | server | µs CPU/req | backend µs/req "
            "| req/s | p50 ms | p99 ms | errors | HRR | Molly ÷ xitzin |")
    lines += [head, "|" + "---|" * 12]
    load = [r for r in results if "idle" not in r["scenario"]
            and "stream" not in r["scenario"]]
    modes = [m for m, _ in MODES]
    scens = [s[0] for s in SCENARIOS]
    load.sort(key=lambda r: (modes.index(r["mode"]),
                             scens.index(r["scenario"]), r["conc"],
                             r["server"] != "xitzin"))
    for r in load:
        ratio = ""
        if r["server"] == "xitzin" and "molly" in names:
            m = [q for q in load if q["server"] == "molly"
                 and q["scenario"] == r["scenario"] and q["mode"] == r["mode"]
                 and q["conc"] == r["conc"]]
            if m and r["server_us_per_req"] > 0:
                ratio = f"{m[0]['server_us_per_req'] / r['server_us_per_req']:.2f}"
        lines.append(
            f"| {r['mode']} | {r['scenario']} | {r['conc']} | {r['server']} "
            f"| {r['server_us_per_req']:.1f} | {r['backend_us_per_req']:.1f} "
            f"| {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['errors']} | {r.get('hrr', 0)} | {ratio} |")
    mem = [r for r in results if r not in load]
    if mem:
        lines += ["", "| memory scenario | server | RSS before MiB "
                  "| peak RSS MiB | backend peak MiB | seconds | errors |",
                  "|" + "---|" * 7]
        for r in mem:
            lines.append(
                f"| {r['scenario']} | {r['server']} "
                f"| {r['server_start_rss_kib'] / 1024:.1f} "
                f"| {r['server_peak_rss_kib'] / 1024:.1f} "
                f"| {r['backend_peak_rss_kib'] / 1024:.1f} "
                f"| {r['seconds']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def targets(results):
    """The issue's targets, checked against this run's figures."""
    idx = {(r["server"], r["scenario"], r["mode"], r["conc"]): r
           for r in results}
    load = [r for r in results if r["mode"] in [m for m, _ in MODES]
            and r["scenario"] in [x[0] for x in SCENARIOS]]
    concs = sorted({r["conc"] for r in load})
    out = []

    def us(server, scen, mode, conc):
        r = idx.get((server, scen, mode, conc))
        return r["server_us_per_req"] if r else None

    # Issue 10: the mainstream client's rows, c=16 and c=256.
    for (mode, _), limit in zip(MODES, (0.80, 0.67, 0.67)):
        figs, ok = [], True
        for c in (16, 256):
            x = us("xitzin", "SCGI unix 100 B", mode, c)
            m = us("molly", "SCGI unix 100 B", mode, c)
            if x and m:
                figs.append(f"c={c} {x / m:.2f}")
                ok = ok and x / m <= limit
        if figs:
            out.append(f"SCGI 100 B, {mode}: xitzin/Molly CPU <= {limit:.2f}: "
                       f"{'met' if ok else 'NOT met'} ({', '.join(figs)})")
    for mode, _ in MODES[:2]:
        x = idx.get(("xitzin", "SCGI unix 100 B", mode, 1))
        m = idx.get(("molly", "SCGI unix 100 B", mode, 1))
        if x and m:
            out.append(f"SCGI 100 B, {mode}, c=1: p50 no worse than Molly's: "
                       f"{'met' if x['p50_ms'] <= m['p50_ms'] else 'NOT met'}"
                       f" ({x['p50_ms']:.3f} ms vs {m['p50_ms']:.3f} ms)")
    hrr = sum(r.get("hrr", 0) for r in results if r["server"] == "xitzin"
              and "OpenSSL-like" in r["mode"])
    out.append(f"HelloRetryRequests to the OpenSSL-like client: 0: "
               f"{'met' if hrr == 0 else 'NOT met'} ({hrr})")
    for mode, _ in MODES:
        figs, ok = [], True
        for c in concs:
            x = us("xitzin", "CGI sh 100 B", mode, c)
            m = us("molly", "CGI sh 100 B", mode, c)
            if x and m:
                figs.append(f"c={c} {x / m:.2f}")
                ok = ok and x / m <= 1.0
        if figs:
            out.append(f"CGI sh 100 B, {mode}: xitzin/Molly CPU <= 1.00: "
                       f"{'met' if ok else 'NOT met'} ({', '.join(figs)})")
    # Issue 16: choosing among two backends costs nothing measurable.
    for mode, _ in MODES:
        figs = []
        for c in concs:
            one = us("xitzin", "SCGI unix 100 B", mode, c)
            two = us("xitzin", "SCGI pool x2 unix 100 B", mode, c)
            if one and two:
                figs.append(f"c={c} {two - one:+.1f} us")
        if figs:
            out.append(f"SCGI pool of 2 minus one backend, {mode}, server "
                       f"CPU/req: {', '.join(figs)}")
    for mode, _ in MODES:
        figs, ok = [], True
        for c in concs:
            v = [us("xitzin", n, mode, c) for n in
                 ("SCGI unix 100 KB", "SCGI unix 100 B", "static 100 KB",
                  "static 100 B")]
            if None not in v and v[2] > v[3]:
                q = (v[0] - v[1]) / (v[2] - v[3])
                figs.append(f"c={c} {q:.2f}")
                ok = ok and q <= 1.0
        if figs:
            out.append(f"100 KB per byte, SCGI/static <= 1, {mode}: "
                       f"{'met' if ok else 'NOT met'} ({', '.join(figs)})")
    tails = [(r["scenario"], r["mode"], r["p99_ms"] / r["p50_ms"])
             for r in load if r["server"] == "xitzin" and r["conc"] == 256
             and r["p50_ms"] > 0]
    if tails:
        worst = max(tails, key=lambda t: t[2])
        out.append(f"p99 <= 3 x p50 at c=256: "
                   f"{'met' if worst[2] <= 3 else 'NOT met'} (worst "
                   f"{worst[2]:.2f}, {worst[0]}, {worst[1]})")
    for r in results:
        if r["server"] != "xitzin":
            continue
        if "idle" in r["scenario"]:
            mib = r["server_peak_rss_kib"] / 1024
            out.append(f"{r['scenario']} < 300 MiB: "
                       f"{'met' if mib < 300 and r['held'] == r['conc'] else 'NOT met'}"
                       f" ({mib:.1f} MiB, {r['held']} held)")
        if "stream" in r["scenario"]:
            mib = r["server_peak_rss_kib"] / 1024
            out.append(f"1 GiB stream < 32 MiB: "
                       f"{'met' if mib < 32 and r['errors'] == 0 else 'NOT met'}"
                       f" ({mib:.1f} MiB peak)")
    errs = sum(r["errors"] for r in results)
    out.append(f"every error counter 0: {'met' if errs == 0 else 'NOT met'} "
               f"({errs} errors)")
    return "\n".join("- " + line for line in out)


def machine():
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {cpu}, Linux {os.uname().release}"


# --- main -----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a short run: c=16 and 256, 1 s each, smaller memory runs")
    ap.add_argument("--duration", type=float, default=2.0,
                    help="seconds measured per run (full run)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per scenario and server, median kept (full run)")
    ap.add_argument("--xitzin", help="use this xitzin binary, don't build")
    ap.add_argument("--no-molly", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--metrics-cost", action="store_true",
                    help="only the metrics on/off comparison (static 100 B)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the scenarios whose name holds this "
                    "(repeatable), e.g. --only CGI")
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if not args.in_netns:
        build(args)
        argv = ["--xitzin", args.xitzin, "--duration", str(args.duration),
                "--repeat", str(args.repeat)]
        for o in args.only:
            argv += ["--only", o]
        argv += [f for f, on in (("--quick", args.quick),
                                 ("--no-molly", args.no_molly),
                                 ("--no-memory", args.no_memory),
                                 ("--metrics-cost", args.metrics_cost)) if on]
        rc = enter_netns(argv)
        if rc is not None:
            sys.exit(rc)
        log("bench: no private network namespace (needs root or user "
            "namespaces): Molly Brown, which listens on every interface, "
            "is left out")
        args.no_molly = True
    else:
        setup_netns()

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    prepare_work()
    args.scgi = xitzin_has_scgi(args.xitzin)
    if not args.scgi:
        log("bench: this xitzin has no SCGI handler yet: static scenarios only")
    results = []
    if args.metrics_cost:
        try:
            log(f"bench: {machine()}")
            text = run_metrics_cost(args)
        finally:
            stop_all()
        print(text)
        (OUT / "metrics-cost.md").write_text(text + "\n")
        return 0
    cost = None
    try:
        cost = run_metrics_cost(args)
        servers = [start_xitzin(args.xitzin, args.scgi)]
        if not args.no_molly:
            if shutil.which("molly-brown") is None:
                sys.exit("bench: molly-brown is not installed "
                         "(scripts/deps.sh bench)")
            servers.append(start_molly(args.scgi))
        log(f"bench: {machine()}")
        run_matrix(servers, args, results)
        # Last: 10,000 connections leave a grown heap and a full TIME_WAIT
        # table behind, which would weigh on the load figures.
        if not args.no_memory:
            run_memory(servers, args, results)
    finally:
        stop_all()
    text = table(results, servers)
    print()
    print(f"{'QUICK' if args.quick else 'Full'} run, {machine()}; "
          "servers on core 0, gemload and the SCGI backends on core 1.")
    print()
    print(text)
    goals = targets(results)
    print()
    print("Targets (issues 6 and 10), xitzin:")
    print(goals)
    print()
    print("Metrics cost (issue 15), xitzin:")
    print(cost)
    (OUT / "results.md").write_text(text + "\n\n" + goals + "\n\n" +
                                    "Metrics cost:\n" + cost + "\n")
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    errors = sum(r["errors"] for r in results)
    if errors:
        log(f"bench: {errors} errors in all (see the table)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
