#!/bin/sh
# after-install.sh BUILD - after `make install`: a fresh libxitzin.so is
# found by programs only once the loader's cache knows it. For a
# directory the loader searches (/usr/local/lib/..., /usr/lib/...) this
# runs ldconfig when it may (root) and says to otherwise; for any other
# prefix it says how programs will find the library. A staged install
# (DESTDIR) is the packager's business: nothing to do.
set -eu
[ -n "${DESTDIR:-}" ] && exit 0
libdir=$(meson introspect "$1" --buildoptions | /usr/bin/python3 -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(os.path.join(o["prefix"], o["libdir"]))')
if /sbin/ldconfig -v -N 2>/dev/null | grep -q "^$libdir:"; then
	if [ "$(id -u)" -eq 0 ]; then
		/sbin/ldconfig
		echo "install: ran ldconfig: programs find libxitzin in $libdir"
	else
		echo "install: now run 'sudo ldconfig' so that programs find libxitzin in $libdir"
	fi
else
	echo "install: $libdir is not a directory the loader searches: build"
	echo "  programs with -Wl,-rpath,$libdir (or run them with"
	echo "  LD_LIBRARY_PATH=$libdir), and find the library with"
	echo "  PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs xitzin"
fi
