#!/bin/sh
# Installs the Debian packages a make target needs, when they are missing.
# Usage: scripts/deps.sh build|run|test|bench|fuzz|valgrind   (one script for every target)
set -eu

build="meson ninja-build pkg-config gcc libevent-dev libgnutls28-dev libinih-dev"
run="$build python3 perl"
test="$build clang-format openssl systemd libcriterion-dev python3 python3-pytest uwsgi-core uwsgi-plugin-python3 libscgi-perl perl prometheus python3-prometheus-client haproxy"
bench="$build molly-brown"
fuzz="$build clang libclang-rt-14-dev"
valgrind="valgrind"

case "${1:-build}" in
build) want=$build ;;
run) want=$run ;;
test) want=$test ;;
bench) want="$test $bench" ;;
fuzz) want="$test $fuzz" ;;
valgrind) want="$test $valgrind" ;;
*) echo "usage: $0 build|run|test|bench|fuzz|valgrind" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
