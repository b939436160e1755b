#!/usr/bin/python3
"""bench/pool_balance.py - least_conn against round_robin: one pool of a
fast and a slow (50 ms a request) SCGI backend (the threaded Python
backend of tests/e2e/test_scgi_pool.py, on Unix sockets), one xitzin
worker, gemload -c 16 for 5 s each. Needs bench/build from `make bench`
(or `QUICK=1 make bench`). Every process started is stopped by PID."""
import json, os, re, signal, subprocess, time
from pathlib import Path
ROOT = str(Path(__file__).resolve().parents[1])
W = ROOT + "/bench/build/balance"
os.makedirs(W, exist_ok=True)
script = open(ROOT + "/tests/e2e/test_scgi_pool.py").read()
backend = script.split("BACKEND = r'''")[1].split("'''")[0]
open(W + "/backend.py", "w").write(backend)
procs = []
def start(argv, **kw):
    p = subprocess.Popen(argv, **kw); procs.append(p); return p
try:
    fast = start(["python3", W + "/backend.py", "unix:" + W + "/fast.sock", "fast", "0"], stdout=subprocess.PIPE, text=True)
    slow = start(["python3", W + "/backend.py", "unix:" + W + "/slow.sock", "slow", "0.05"], stdout=subprocess.PIPE, text=True)
    fast.stdout.readline(); slow.stdout.readline()
    for bal in ("least_conn", "round_robin"):
        conf = f"""[server]
listen = 127.0.0.1:0
hostname = localhost
cert = {W}/c.crt
key = {W}/c.key
workers = 1
access_log = off
[scgi /app]
backend = unix:{W}/fast.sock
backend = unix:{W}/slow.sock
balance = {bal}
"""
        open(W + "/x.conf", "w").write(conf)
        log = open(W + "/x.log", "w")
        x = start([ROOT + "/bench/build/xitzin/xitzin", "-c", W + "/x.conf"], stderr=log)
        port = None
        for _ in range(200):
            m = re.search(r"port (\d+)", open(W + "/x.log").read())
            if m: port = int(m.group(1)); break
            time.sleep(0.05)
        r = subprocess.run([ROOT + "/bench/build/gemload", "-j", "-c", "16", "-d", "5", "-w", "0.5", "-b", "4", "-T", "30",
                            f"gemini://localhost:{port}/app/x"], capture_output=True, text=True)
        j = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{bal:12} req/s {j['rps']:.0f}  p50 {j['p50_ms']:.1f} ms  p99 {j['p99_ms']:.1f} ms  errors {j['errors']}")
        x.send_signal(signal.SIGTERM); x.wait()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill(); p.wait()
