"""`make install PREFIX=...` installs under PREFIX whatever the build
directory was configured with before, and says how programs find a
library outside the loader's directories (README, "Two commands")."""

import os
import subprocess

from conftest import ROOT
from test_readme_sample import readme_sample


def make(*args):
    return subprocess.run(["make", "-C", str(ROOT)] + list(args), check=True,
                          capture_output=True, text=True).stdout


def test_install_honours_the_prefix_after_another_build(tmp_path):
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    make("all", f"BUILD={build}")  # configured for /usr/local
    out = make("install", f"BUILD={build}", f"PREFIX={prefix}")
    pcs = list(prefix.glob("lib*/**/pkgconfig/xitzin.pc"))
    assert len(pcs) == 1, out
    libdir = pcs[0].parent.parent
    assert (prefix / "include" / "xitzin.h").exists()
    assert (prefix / "bin" / "xitzin").exists()
    assert (libdir / "libxitzin.so").exists()
    assert f"prefix={prefix}\n" in pcs[0].read_text()
    assert f"-Wl,-rpath,{libdir}" in out and "LD_LIBRARY_PATH" in out
    # A user's program, as that message says to build it, runs against
    # this very copy of the library.
    env = dict(os.environ, PKG_CONFIG_PATH=str(libdir / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "xitzin"],
                           env=env, check=True, capture_output=True,
                           text=True).stdout.split()
    (tmp_path / "app.c").write_text(readme_sample())
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "app"),
                    str(tmp_path / "app.c"), f"-Wl,-rpath,{libdir}"] + flags,
                   check=True)
    ldd = subprocess.run(["ldd", str(tmp_path / "app")], check=True,
                         capture_output=True, text=True).stdout
    assert f"{libdir}/libxitzin.so" in ldd, ldd
    r = subprocess.run([str(tmp_path / "app"), "127.0.0.1:0"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "static /files: root public" in r.stderr
    # The example configuration, where the program looks by default;
    # installing again keeps the operator's own.
    conf = prefix / "etc" / "xitzin" / "xitzin.conf"
    assert "[server]" in conf.read_text(), out
    r = subprocess.run([str(prefix / "bin" / "xitzin"), "-h"],
                       capture_output=True, text=True)
    assert str(conf) in r.stdout
    conf.write_text("; mine\n")
    out = make("install", f"BUILD={build}", f"PREFIX={prefix}")
    assert conf.read_text() == "; mine\n", out
    # Installing again elsewhere moves nothing from the first place.
    again = tmp_path / "again"
    make("install", f"BUILD={build}", f"PREFIX={again}")
    assert (again / "include" / "xitzin.h").exists()
    assert f"prefix={again}\n" in \
        next(again.glob("lib*/**/pkgconfig/xitzin.pc")).read_text()
