#!/usr/bin/env python3
"""Keep the floors of src/ true (issue #17, ARCHITECTURE.md "Floors").

Every top-level module of the crate sits on a floor; a module may import from
its own floor or a lower one, never from a higher one, and the top-level
modules must not import each other in a cycle. This reads every `crate::NAME`
(and `zonewatch::NAME` in src/bin) path in src/ and fails, naming file and
line, on an import that goes up or closes a cycle, unless it is listed in
KNOWN below with the reason it is still there. A KNOWN entry that no longer
occurs fails too, so the list only shrinks.

Usage: python3 tools/layers.py [SRC_DIR]   (exit 0 clean, 1 with findings)
"""

import re
import sys
from pathlib import Path

FLOORS = {
    "model": 0, "packet": 0,
    "capture": 1, "decode": 1, "policy": 1,
    "flow": 2,
    "detect": 3, "alert": 3,
    "evidence": 4, "metrics": 4, "output": 4, "sink": 4,
    "pipeline": 5,
    "app": 6, "cli": 6, "report": 6, "summary": 6, "main": 6, "bin": 6,
}

# (from module, to module): why the import is still there. Issue #17 removes them.
KNOWN: dict = {}

PATH = re.compile(r"\b(?:crate|zonewatch)::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\b(?:crate|zonewatch)::\{([^}]*)\}")


def module_of(rel: Path) -> str:
    parts = rel.parts
    if parts[0] == "bin":
        return "bin"
    return parts[0][:-3] if parts[0].endswith(".rs") else parts[0]


def imports(text: str):
    """(line number, module) of every crate path outside comments."""
    for no, line in enumerate(text.splitlines(), 1):
        code = line.split("//", 1)[0]
        for m in PATH.finditer(code):
            yield no, m.group(1)
        for m in USE_GROUP.finditer(code):
            for item in m.group(1).split(","):
                name = item.strip().split("::", 1)[0].strip()
                if name and name != "self":
                    yield no, name


def main() -> int:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    edges = {}  # (from, to) -> first "file:line"
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        frm = module_of(rel)
        for no, to in imports(f.read_text(encoding="utf-8")):
            if to == frm or to not in FLOORS:
                continue
            edges.setdefault((frm, to), f"{src / rel}:{no}")
    problems = []
    for (frm, to), at in sorted(edges.items()):
        if frm not in FLOORS:
            problems.append(f"{at}: module {frm!r} has no floor (add it to FLOORS)")
            continue
        if FLOORS[to] > FLOORS[frm] and (frm, to) not in KNOWN:
            problems.append(
                f"{at}: {frm} (floor L{FLOORS[frm]}) imports {to} (floor L{FLOORS[to]}): "
                "imports only go down; call up through a trait"
            )
    # Cycles between top-level modules (any floor): strongly connected components.
    # A KNOWN edge is reported by the list itself; the cycles left without them
    # are the ones to fix.
    graph = {}
    for frm, to in edges:
        if (frm, to) not in KNOWN:
            graph.setdefault(frm, set()).add(to)
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    for comp in sccs:
        inner = sorted(e for e in edges if e[0] in comp and e[1] in comp and e not in KNOWN)
        at = ", ".join(f"{a} -> {b} ({edges[(a, b)]})" for a, b in inner)
        problems.append(f"import cycle between {', '.join(comp)}: {at}")
    for e, why in sorted(KNOWN.items()):
        if e not in edges:
            problems.append(f"KNOWN lists {e[0]} -> {e[1]} ({why}), which no longer occurs: remove it")
    for p in problems:
        print(f"layers: {p}")
    left = sorted(e for e in KNOWN if e in edges)
    print(f"layers: {len(edges)} imports between top-level modules, {len(left)} known exceptions left"
          f"{': ' + ', '.join(f'{a}->{b}' for a, b in left) if left else ''}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
