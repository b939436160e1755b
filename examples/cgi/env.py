#!/usr/bin/env python3
"""Dumps the environment a CGI script gets, one NAME=value per line."""

import os
import sys

out = sys.stdout.buffer
out.write(b"20 text/plain; charset=utf-8\r\n")
for name in sorted(os.environb):
    out.write(name + b"=" + os.environb[name] + b"\n")
