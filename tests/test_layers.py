"""The package layout's rules, read off the source: every ``import`` of a ``shopperlake``
module (top-level or inside a function, so a deferred import cannot hide a loop) goes from a
higher layer to a lower one or stays inside its package, and the module graph has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "lib" / "shopperlake"

# Lower number = lower layer. A package may import its own modules and lower layers only.
LAYERS = {
    "core": 0,
    "training": 1,
    "synthetic": 1,
    "ingest": 1,
    "profiles": 2,
    "views": 2,
    "ops": 2,
    "segments": 3,
    # forecasting: series from bronze events and the items' categories as of a day
    "forecast": 3,
    # the sequence model and its arrays (point-in-time sequences via profiles; no jobs): the
    # recommender's sasrec source, the sequences jobs and churn's sequence head use it
    "seqmodel": 3,
    # anomalies: feed monitoring on bronze; user detectors will read profiles and segments
    "anomalies": 4,
    "churn": 4,
    "rec": 4,
    # capabilities built on the tabular-classifier pieces of churn
    "returns": 5,
    # sequences: the jobs of the sequence table and SASRec, evaluated against the recommender's
    # EASE
    "sequences": 5,
    # the analysts' report reads every table and the registry's stored test predictions
    "report": 6,
    # the application layer: the job registry, the schedule, the demo
    "jobs": 8,
    "schedule": 9,
    "demo": 9,
    # runs the schedule's daily chain for a range of days
    "backfill": 10,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every shopperlake module ``path`` imports, at any depth of its syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("shopperlake")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("shopperlake")
        ):
            module = str(node.module)
            found.add(module)
            # ``from shopperlake.training import petastorm_io`` imports a module too
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if (PKG.parent / candidate.replace(".", "/")).with_suffix(".py").is_file():
                    found.add(candidate)
    return found


def graph() -> dict[str, set[str]]:
    return {
        module_name(p): imports_of(p) for p in sorted(PKG.rglob("*.py")) if "_conf" not in p.parts
    }


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) == 1:
        return "shopperlake", 0  # the package root holds only __version__
    top = parts[1]
    if top not in LAYERS:
        raise AssertionError(f"{module}: package '{top}' has no layer in tests/test_layers.py")
    return top, LAYERS[top]


def test_every_package_has_a_layer_and_a_docstring() -> None:
    for init in PKG.glob("*/__init__.py"):
        layer_of(module_name(init))
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{init.parent.name}/__init__.py needs a docstring"


def test_no_import_goes_up_a_layer() -> None:
    wrong = []
    for module, targets in graph().items():
        package, level = layer_of(module)
        for target in targets:
            tpackage, tlevel = layer_of(target)
            if tpackage != package and tlevel >= level and tpackage != "shopperlake":
                wrong.append(f"{module} imports {target} ({package}={level}, {tpackage}={tlevel})")
    assert not wrong, "\n".join(wrong)


def test_core_imports_no_capability() -> None:
    for module, targets in graph().items():
        if layer_of(module)[0] == "core":
            outside = {t for t in targets if layer_of(t)[0] not in {"core", "shopperlake"}}
            assert not outside, f"{module} imports {sorted(outside)}"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_module_graph_has_no_cycle() -> None:
    edges = {m: {t for t in ts if t != m} for m, ts in graph().items()}
    # a package's __init__ is imported with any of its modules: not an edge of its own
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from shopperlake.rec.job import x\n", {"shopperlake.rec.job"}),
        ("import shopperlake.core.lake as l\n", {"shopperlake.core.lake"}),
    ],
)
def test_deferred_and_aliased_imports_are_seen(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    f = tmp_path / "m.py"
    f.write_text(source)
    assert imports_of(f) == expected


def test_the_readme_layout_table_names_every_package() -> None:
    readme = (PKG.parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    packages = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
    missing = [p for p in packages if f"`lib/shopperlake/{p}/`" not in table]
    assert not missing, f"README layout table lacks {missing}"
    assert all(f"`{m}`" in table for m in ("jobs/", "sql/", "conf/", "docs/", "dags/", "bench/"))
