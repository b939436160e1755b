#!/bin/sh
# The demo `make run` starts: the example SCGI backend (C, on a Unix
# socket), then xitzin serving examples/demo.conf on gemini://localhost:1965/
# (static capsule at /, the backend at /api, CGI scripts at /cgi-bin).
# Ctrl-C stops both.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
run=$here/demo/run
mkdir -p "$run"
rm -f "$run/echo.sock"
"$build/scgi-echo-backend" "unix:$run/echo.sock" &
backend=$!
trap 'kill $backend 2>/dev/null; wait $backend 2>/dev/null || true' EXIT INT TERM
# Wait for the socket rather than racing the backend.
i=0
while [ ! -S "$run/echo.sock" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
cd "$here"
"$build/xitzin" -c demo.conf
