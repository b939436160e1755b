#!/bin/sh
# The smallest CGI script: a Gemini header line, then the body.
# PATH_INFO is what follows the script's name in the URL, QUERY_STRING
# the raw (still percent-encoded) query; both are always set.
printf '20 text/gemini\r\n'
cat <<EOF
# Hello from CGI

Path: ${PATH_INFO:-/}
Query: ${QUERY_STRING}

=> ${SCRIPT_NAME%/*}/env.py The environment a script gets
=> ${SCRIPT_NAME%/*}/greet.pl Say hello (Perl)
EOF
