"""The README's "Writing an app in C" program, exactly as printed: cut
from between the ```c fences of that section, compiled as a user would
against the installed library (staged by `make example`), run with no
certificate configured, and asked for a page over real TLS."""

import os
import re
import signal
import subprocess
import ssl

from conftest import ROOT, SLOW, gemini_raw

HELLO = os.environ.get("XITZIN_HELLO", str(ROOT / "build" / "stage" / "hello"))
STAGE = os.path.dirname(HELLO)


def readme_sample():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Writing an app in C\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"^```c\n(.*?)^```$", section, re.S | re.M)
    assert m, "no ```c block in README's 'Writing an app in C'"
    return m.group(1)


def pkg_config_flags():
    """The staged library's flags: its .pc file, prefix moved into the stage."""
    pcs = [os.path.join(d, f) for d, _, fs in os.walk(STAGE) for f in fs
           if f == "xitzin.pc"]
    assert pcs, "run `make example` first"
    pc = pcs[0]
    prefix = re.search(r"^prefix=(.*)$", open(pc).read(), re.M).group(1)
    out = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "xitzin",
         "--define-variable=prefix=" + STAGE + prefix],
        env=dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc)),
        check=True, capture_output=True, text=True).stdout.split()
    libdir = [f[2:] for f in out if f.startswith("-L")]
    return out + ["-Wl,-rpath," + d for d in libdir]


def test_the_readme_program_serves_over_tls(tmp_path):
    src = tmp_path / "app.c"
    src.write_text(readme_sample())
    exe = tmp_path / "app"
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(exe), str(src)] +
                   pkg_config_flags(), check=True)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "hello.gmi").write_text("# Hello from public\n")
    log = open(tmp_path / "app.log", "w+")
    app = subprocess.Popen([str(exe), "127.0.0.1:0"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = app.stdout.readline()
        port = int(re.fullmatch(r"gemini://localhost:(\d+)/\n", line).group(1))
        r = gemini_raw(port, b"gemini://localhost/\r\n")
        assert (r.status, r.meta) == (20, "text/gemini"), r
        assert r.body == b"# Home\n\n=> /about About\n"
        assert r.close_notify
        r = gemini_raw(port, b"gemini://localhost/files/hello.gmi\r\n")
        assert r.status == 20 and r.body == b"# Hello from public\n", r
        # No cert_file: the pair was made where the header says, and the
        # log said so; the client saw that very certificate.
        crt = tmp_path / "certs" / "localhost.crt"
        assert crt.exists() and (tmp_path / "certs" / "localhost.key").exists()
        pem = ssl.get_server_certificate(("127.0.0.1", port))
        assert ssl.PEM_cert_to_DER_cert(pem) == \
            ssl.PEM_cert_to_DER_cert(crt.read_text())
    finally:
        app.send_signal(signal.SIGTERM)
        rc = app.wait(timeout=20 * SLOW)
    log.seek(0)
    text = log.read()
    assert rc == 0, text
    assert "certs/localhost.crt" in text, text


def test_the_readme_program_says_why_it_cannot_start(tmp_path):
    """No public/ directory: the sample prints the reason and exits 1."""
    src = tmp_path / "app.c"
    src.write_text(readme_sample())
    exe = tmp_path / "app"
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(exe), str(src)] +
                   pkg_config_flags(), check=True)
    r = subprocess.run([str(exe), "127.0.0.1:0"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=20 * SLOW)
    assert r.returncode == 1
    assert "static /files: root public: No such file or directory" in r.stderr
