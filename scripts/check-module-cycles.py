#!/usr/bin/env python3
"""Fail when a crate's modules import each other in a cycle.

Each crate's `src/` is read as a graph of modules (a file, or a directory with its
`mod.rs`); an edge a -> b is a `crate::b…` or `super::…` path in a's code outside its
`#[cfg(test)]` part and comments. Edges between a module and its own ancestors or
descendants (a parent declaring its children, a child using its parent's items) are not
counted: the rule is about siblings. The graph is checked at every depth: top-level modules
(`cache`, `pop`, …, directories taken whole) and every module on its own. A strongly
connected component of more than one module is a cycle and is printed with the imports
that make it.

Usage: scripts/check-module-cycles.py [CRATE_DIR ...]   (default: the workspace members)
Exit status 1 when a cycle is found. Run by .ci/run.
"""

import os
import re
import sys

DEFAULT = ["shared", "geo", "dns-router", "edge", "tests"]
PATH = r"[A-Za-z_0-9]+(?:::[A-Za-z_0-9]+)*"


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src (binaries left out)."""
    found = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[0] == "bin" or rel == ["main"]:
                continue
            if rel[-1] in ("mod", "lib"):
                rel = rel[:-1]
            found[tuple(rel)] = path
    return found


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return re.sub(r"//[^\n]*", "", text)


def imports(mods):
    """(source module, target module path, line) for every crate-internal path."""
    for mod, path in mods.items():
        code = code_of(path)
        for m in re.finditer(r"\bcrate::(" + PATH + r"|\{[^}]*\})", code):
            body = m.group(1)
            heads = [body] if not body.startswith("{") else [
                p.strip() for p in body[1:-1].split(",") if p.strip()
            ]
            for h in heads:
                yield mod, tuple(h.split("::")), m.group(0)
        for m in re.finditer(r"\bsuper::((?:super::)*)(" + PATH + r"|\{)", code):
            ups = 1 + m.group(1).count("super::")
            base = mod[: max(len(mod) - ups, 0)]
            rest = () if m.group(2) == "{" else tuple(m.group(2).split("::"))
            yield mod, base + rest, m.group(0)


def graph(mods, depth):
    g = {mod[:depth]: {} for mod in mods if mod}
    for src, target, text in imports(mods):
        a = src[:depth]
        # Longest prefix of target that is a module (the rest names items).
        while target and target not in mods:
            target = target[:-1]
        b = target[:depth]
        if not a or not b or a == b:
            continue
        if a[: len(b)] == b or b[: len(a)] == a:
            continue  # ancestor / descendant
        g.setdefault(a, {}).setdefault(b, set()).add(text)
    return g


def cycles(g):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(100000)

    def visit(n):
        index[n] = low[n] = counter[0]
        counter[0] += 1
        stack.append(n)
        on.add(n)
        for w in g.get(n, {}):
            if w not in index:
                visit(w)
                low[n] = min(low[n], low[w])
            elif w in on:
                low[n] = min(low[n], index[w])
        if low[n] == index[n]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == n:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(g):
        if n not in index:
            visit(n)
    return out


def name(mod):
    return "::".join(mod) or "crate"


def main(args):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    crates = args or [os.path.join(root, c) for c in DEFAULT]
    bad = 0
    for crate in crates:
        mods = modules(os.path.join(crate, "src"))
        deepest = max((len(m) for m in mods), default=1)
        seen = set()
        for depth in range(1, deepest + 1):
            g = graph(mods, depth)
            for comp in cycles(g):
                key = tuple(comp)
                if key in seen:
                    continue
                seen.add(key)
                bad += 1
                members = set(comp)
                print(f"{os.path.basename(os.path.normpath(crate))}: import cycle between "
                      + ", ".join(name(c) for c in comp))
                for a in comp:
                    for b, texts in sorted(g[a].items()):
                        if b in members:
                            print(f"    {name(a)} -> {name(b)}  ({', '.join(sorted(texts)[:3])})")
    if bad:
        print(f"{bad} import cycle(s); move the shared piece into a module both can use")
        return 1
    print(f"no import cycles in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
