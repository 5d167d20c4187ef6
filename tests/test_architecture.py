"""The package structure docs/architecture.md describes, checked from the source: the import graph
of edgedit's packages (module- and function-level imports alike) has no cycle, the contract at the
bottom imports nothing of edgedit's, and the device side never imports the workstation side."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgedit"
CONTRACT = "contract"
DEVICE = {"contract", "cost", "runtime", "engines", "bench", "serve"}  # torch- and onnx-free, fit the L4T container
WORKSTATION = {"models", "export", "data", "train", "eval", "design"}
APPLICATION = {"cli", "pipeline", "demo", "doctor", "fileinfo", "assets", "__main__"}  # compose the others


def unit(module: str) -> str | None:
    """edgedit.X.y -> X (a package or a top-level module); None for the root itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "edgedit" else None


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        source = unit(".".join(relative.parts))
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            if isinstance(node, ast.ImportFrom) and node.module == "edgedit":
                names += [f"edgedit.{a.name}" for a in node.names if a.name != "__version__"]
            for name in names:
                target = unit(name)
                if target and target != source:
                    edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_every_unit_is_classified():
    units = {
        p.stem if p.is_file() else p.name
        for p in ROOT.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert units == DEVICE | WORKSTATION | APPLICATION


def test_the_package_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_contract_depends_on_nothing_of_edgedits():
    assert import_graph().get(CONTRACT, set()) == set()


def test_the_device_side_never_imports_the_workstation_side_or_the_application():
    graph = import_graph()
    wrong = {u: sorted(graph.get(u, set()) - DEVICE) for u in DEVICE if graph.get(u, set()) - DEVICE}
    assert wrong == {}


def test_the_workstation_side_never_imports_the_application():
    graph = import_graph()
    wrong = {u: sorted(graph.get(u, set()) & APPLICATION) for u in WORKSTATION if graph.get(u, set()) & APPLICATION}
    assert wrong == {}


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_documented_import_table_is_the_import_graph():
    """docs/architecture.md's table of what each package imports is checked, row by row, against the
    source: a new dependency fails here until the table (and so the reader) knows it."""
    import re

    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    table = text[text.index("<!-- imports:begin -->") : text.index("<!-- imports:end -->")]
    documented = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            documented[cells[0].strip("`")] = (cells[1], set(re.findall(r"`(\w+)`", cells[2])))
    edges = import_graph()
    assert set(documented) == DEVICE | WORKSTATION
    for package, (side, imports) in documented.items():
        assert side == ("device" if package in DEVICE else "workstation"), package
        assert imports == edges.get(package, set()), (
            f"{package}: documented {sorted(imports)}, imports {sorted(edges.get(package, set()))}"
        )
