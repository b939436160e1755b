#!/bin/sh
# exports.sh LIB HEADER - libxitzin.so exports exactly the XZ_API functions
# of include/xitzin.h: no private name (log_warn, url_parse, ...) that an
# application's own could collide with, and no public one missing.
set -u
lib=$1
header=$2

exported=$(nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u)
if [ -z "$exported" ]; then
	echo "$lib: nm lists no symbols" >&2
	exit 1
fi
status=0
stray=$(printf '%s\n' "$exported" | grep -v '^xz_')
if [ -n "$stray" ]; then
	echo "$lib exports names without the xz_ prefix:" >&2
	printf '  %s\n' $stray >&2
	status=1
fi
# The name of each XZ_API declaration is on its first line.
declared=$(sed -n 's/^XZ_API [^(]*[^a-z0-9_]\(xz_[a-z0-9_]*\)(.*/\1/p' \
	"$header" | sort -u)
missing=$(printf '%s\n' "$declared" | grep -vxF "$exported")
if [ -n "$missing" ]; then
	echo "$lib does not export these XZ_API functions:" >&2
	printf '  %s\n' $missing >&2
	status=1
fi
n_exp=$(printf '%s\n' "$exported" | wc -l)
n_dec=$(printf '%s\n' "$declared" | wc -l)
echo "$n_exp names exported, $n_dec declared XZ_API"
exit $status
