#!/bin/sh
# install-conf.sh EXAMPLE DIR - run by meson install: the example
# configuration becomes DIR/xitzin.conf (under $DESTDIR) unless a file is
# there already: an operator's configuration is never overwritten.
set -eu
dest="${DESTDIR:-}$2/xitzin.conf"
if [ -e "$dest" ]; then
	echo "install: $dest exists: left as it is (example: $1)"
	exit 0
fi
mkdir -p "$(dirname "$dest")"
cp "$1" "$dest"
chmod 644 "$dest"
echo "install: example configuration in $dest"
