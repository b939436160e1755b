#!/usr/bin/python3
"""Which src/*.c call which other src/*.c's functions (and data), from
the objects' symbol tables, and whether those calls form a cycle.

usage: scripts/callgraph.py [BUILDDIR]   (default build; run `make` first)
Exit status 1 when there is a cycle.
"""
import glob
import os
import subprocess
import sys

objdir = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build",
                      "libxitzin.so.0.1.0.p")
defined, used = {}, {}
for obj in sorted(glob.glob(os.path.join(objdir, "src_*.c.o"))):
    name = os.path.basename(obj)[4:-2]  # src_app.c.o -> app.c
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            used.setdefault(name, set()).add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDRB":
            defined[parts[2]] = name
edges = {}
for f, syms in used.items():
    for s in syms:
        g = defined.get(s)
        # Every file logs: log.c's edges would only be noise.
        if g is not None and g != f and g != "log.c":
            edges.setdefault(f, {}).setdefault(g, []).append(s)
for f in sorted(set(defined.values())):
    calls = edges.get(f, {})
    print("%-12s -> %s" % (f, ", ".join(sorted(calls)) or "(nothing)"))

# A cycle is a strongly connected component with more than one file.
index, low, stack, on, sccs = {}, {}, [], set(), []
def strong(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in edges.get(v, {}):
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(comp)
for v in sorted(set(defined.values())):
    if v not in index:
        strong(v)
cycles = [c for c in sccs if len(c) > 1]
for c in cycles:
    print("cycle:", " <-> ".join(sorted(c)))
    for a in sorted(c):
        for b in sorted(c):
            if b in edges.get(a, {}):
                print("  %s -> %s: %s" % (a, b,
                      ", ".join(sorted(edges[a][b]))))
print("no cycle" if not cycles else "%d cycle(s)" % len(cycles))

# The README's source tour reads bottom-up: each file calls only those
# before it.
readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "README.md")
tour, on_tour = [], False
for line in open(readme):
    if line.startswith("## "):
        on_tour = line.strip() == "## Source tour"
    elif on_tour and line.startswith("- `src/") and ".c`" in line:
        tour.append(line.split("`")[1][len("src/"):])
forward = 0
for f in tour:
    for g in edges.get(f, {}):
        if g in tour and tour.index(g) > tour.index(f):
            print("forward: %s -> %s (%s)" % (f, g,
                  ", ".join(sorted(edges[f][g]))))
            forward += 1
print("source tour: %d files, %d forward call(s)" % (len(tour), forward))
sys.exit(1 if cycles or forward else 0)
