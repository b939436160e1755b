"""Rate limits (rate_limit, rate_burst) through the real server: a bucket
per client address, 44 with the seconds to wait, one log line per client
a minute, a mount's own limit or none. Clients come from 127.0.0.1 and
127.0.0.2 (both loopback) to be two addresses."""

import socket
import ssl

from conftest import SLOW, Reply, client_context
from conftest import get_from


def config(capsule, extra=""):
    return ("[server]\nrate_limit = 1/m\nrate_burst = 3\n"
            f"[static /]\nroot = {capsule}\n"
            f"[static /free]\nroot = {capsule}\nrate_limit = off\n" + extra)


def test_burst_then_44_with_the_wait_per_address(xitzin, capsule):
    s = xitzin(config(capsule))
    for _ in range(3):
        assert get_from(s.port, "127.0.0.1").status == 20
    r = get_from(s.port, "127.0.0.1")
    assert r.status == 44, r
    # One token a minute: a whole number of seconds, about 60.
    assert r.meta.isdigit() and 50 <= int(r.meta) <= 60, r.meta
    assert r.body == b""
    # Another address has its own bucket.
    for _ in range(3):
        assert get_from(s.port, "127.0.0.2").status == 20
    assert get_from(s.port, "127.0.0.2").status == 44
    # A mount with rate_limit = off: no limit there, even now.
    for _ in range(10):
        assert get_from(s.port, "127.0.0.1", "/free/").status == 20
    for _ in range(5):
        assert get_from(s.port, "127.0.0.1").status == 44
    log = s.log()
    assert log.count("rate limit: 127.0.0.1 over") == 1, log
    assert log.count("rate limit: 127.0.0.2 over") == 1, log
    assert "over 0.0166667/s (burst 3) under /, answered 44" in log
    # The access log still has each refused request.
    assert log.count(" 44 ") >= 7, log


def test_mount_limit_replaces_the_servers(xitzin, capsule):
    s = xitzin(config(capsule, f"[static /sub]\nroot = {capsule}/sub\n"
                               "rate_limit = 1/h\nrate_burst = 1\n"))
    assert get_from(s.port, "127.0.0.1", "/sub/").status == 20
    r = get_from(s.port, "127.0.0.1", "/sub/")
    assert r.status == 44 and 3500 <= int(r.meta) <= 3600, r
    # The server-wide bucket is untouched by /sub.
    for _ in range(3):
        assert get_from(s.port, "127.0.0.1", "/").status == 20
    assert "under /sub, answered 44" in s.log()
