#!/usr/bin/env python3
"""Keep the floors of src/ true (issue #17, ARCHITECTURE.md "Floors").

Every top-level module of the crate sits on a floor; a module may import from
its own floor or a lower one, never from a higher one, and the top-level
modules must not import each other in a cycle. This reads every `crate::NAME`
(and `zonewatch::NAME` in src/bin) path in src/ and fails, naming file and
line, on an import that goes up or closes a cycle, unless it is listed in
KNOWN below with the reason it is still there. A KNOWN entry that no longer
occurs fails too, so the list only shrinks.

It also keeps JSON out of the floors below the outputs: no file of floors
L0-L3 names `serde_json` outside its test code (a `#[cfg(test)]` item, or a
file its parent declares with `#[cfg(test)] mod NAME;`). Detectors return
typed alerts; lines are formatted where they are written (issue #17). Files
still allowed are listed in JSON_KNOWN with their reason, a list that also
only shrinks.

It also fails on a module whose docs do not begin by naming its floor
(`//! Floor L<n>`), or name the wrong one, so the docs stay true to FLOORS.

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
    "evidence": 4, "format": 4, "metrics": 4, "output": 4, "sink": 4,
    "pipeline": 5,
    "app": 6, "cli": 6, "report": 6, "summary": 6, "main": 6, "bin": 6,
}

# (from module, to module): why the import is still there. Issue #17 removes them.
KNOWN: dict = {}

# Floors whose code must not build JSON (comments and test code aside).
JSON_MAX_FLOOR = 3
JSON = re.compile(r"\bserde_json\b")

# File (relative to SRC_DIR): why it still names serde_json. Issue #17 removes them.
JSON_KNOWN: dict = {}

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


def code_only(text: str) -> str:
    """`text` with comments, string and char literals blanked (newlines kept),
    so braces and names are only those of the code."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
            continue
        ident_before = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        m = re.match(r'b?r(#*)"', text[i:i + 260]) if c in "rb" and not ident_before else None
        if m:
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "".join("\n" for ch in text[i:j] if ch == "\n"))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('""' + "".join("\n" for ch in text[i:j] if ch == "\n"))
            i = j
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def without_test_items(code: str) -> str:
    """`code` (from code_only) with every `#[cfg(test)]` item blanked."""
    out = list(code)
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        depth, j = 0, m.end()
        while j < len(code):
            ch = code[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    break
            elif ch == ";" and depth == 0:
                break
            j += 1
        for k in range(m.start(), min(j + 1, len(code))):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out)


def test_only_file(src: Path, rel: Path) -> bool:
    """A file declared `#[cfg(test)] mod NAME;` by its parent (or `#![cfg(test)]`)."""
    f = src / rel
    if re.search(r"#!\[cfg\(test\)\]", code_only(f.read_text(encoding="utf-8"))):
        return True
    name = rel.parent.name if rel.name == "mod.rs" else rel.stem
    base = rel.parent.parent if rel.name == "mod.rs" else rel.parent
    if base == Path("."):
        parents = [src / "lib.rs", src / "main.rs"]
    else:
        parents = [src / base / "mod.rs", src / f"{base}.rs"]
    decl = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+" + re.escape(name) + r"\s*;")
    return any(p.exists() and decl.search(code_only(p.read_text(encoding="utf-8"))) for p in parents)


def json_findings(src: Path):
    """(file key, "file:line") of serde_json in floors L0-L3 outside test code."""
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        mod = module_of(rel)
        if FLOORS.get(mod, 99) > JSON_MAX_FLOOR or test_only_file(src, rel):
            continue
        code = without_test_items(code_only(f.read_text(encoding="utf-8")))
        for no, line in enumerate(code.splitlines(), 1):
            if JSON.search(line):
                yield rel.as_posix(), f"{src / rel}:{no}"


FLOOR_DOC = re.compile(r"//! Floor L(\d)\b")


def floor_doc_findings(src: Path):
    """"file:1" and why, for each source file (tests, main.rs and lib.rs
    aside) whose first `//!` line does not say `Floor L<n>` with its module's floor."""
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if rel.as_posix() in ("main.rs", "lib.rs") or test_only_file(src, rel):
            continue
        mod = module_of(rel)
        if mod not in FLOORS:
            continue
        first = next((l for l in f.read_text(encoding="utf-8").splitlines() if l.startswith("//!")), None)
        m = FLOOR_DOC.match(first or "")
        if not m:
            yield f"{src / rel}:1: the module docs do not start with \"Floor L{FLOORS[mod]}\" (every module says its floor)"
        elif int(m.group(1)) != FLOORS[mod]:
            yield f"{src / rel}:1: the module docs say floor L{m.group(1)}, but {mod} is on floor L{FLOORS[mod]}"


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
    json_seen = set()
    for key, at in json_findings(src):
        json_seen.add(key)
        if key not in JSON_KNOWN:
            problems.append(
                f"{at}: serde_json in {module_of(Path(key))} (floor L{FLOORS[module_of(Path(key))]}): "
                "floors L0-L3 return typed values; JSON is written at L4 and above"
            )
    for key, why in sorted(JSON_KNOWN.items()):
        if key not in json_seen:
            problems.append(f"JSON_KNOWN lists {key} ({why}), which no longer names serde_json: remove it")
    problems.extend(floor_doc_findings(src))
    for p in problems:
        print(f"layers: {p}")
    left = sorted(e for e in KNOWN if e in edges)
    print(f"layers: {len(edges)} imports between top-level modules, {len(left)} known exceptions left"
          f"{': ' + ', '.join(f'{a}->{b}' for a, b in left) if left else ''}; "
          f"{len(json_seen & set(JSON_KNOWN))} known files with serde_json below L4", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
