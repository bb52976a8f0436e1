"""The package's shape, read statically from its sources: no import circle, no private name
taken from another module, and every covariance-structure question answered by the structure."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sparselmm"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_module(name: str) -> bool:
    return name in MODULES


def _imports(name: str) -> tuple[set[str], list[str]]:
    """Modules of the package that ``name`` imports (at any level, TYPE_CHECKING blocks and
    imports inside functions included), and the private names it takes from them."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    private: list[str] = []
    bound: dict[str, str] = {}  # local name -> module of the package it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "sparselmm":
                    targets.add(a.name)
                    bound[(a.asname or a.name).split(".")[0]] = a.name if a.asname else "sparselmm"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "sparselmm":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if _is_module(sub):
                    targets.add(sub)
                    bound[a.asname or a.name] = sub
                else:
                    targets.add(mod)
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        private.append(f"{a.name} from {mod}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                private.append(f"{node.attr} of {bound[node.value.id]}")
    targets.discard(name)
    return {t for t in targets if _is_module(t)}, private


GRAPH = {name: _imports(name)[0] for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_reader_sees_the_package():
    # the reader itself: it finds the layers and the arrows between them
    assert {"sparselmm.api", "sparselmm.backends.base", "sparselmm.frame.modelframe"} <= set(MODULES)
    assert "sparselmm.backends.base" in GRAPH["sparselmm.backends.cholmod"]
    assert "sparselmm.backends.registry" in GRAPH["sparselmm.frame.modelframe"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_from_another_module(name):
    assert _imports(name)[1] == []


#: the layers, bottom up: a module may import from its own layer and the ones below only
LAYERS = [
    {"sparselmm.errors", "sparselmm.validate", "sparselmm.threads", "sparselmm.progress", "sparselmm.families"},
    {"sparselmm.spec"},
    {"sparselmm.backends"},
    {"sparselmm.frame"},
    {"sparselmm.fitting"},
    {"sparselmm.stats", "sparselmm.report", "sparselmm.persistence"},
    {"sparselmm.model", "sparselmm.dask_model", "sparselmm.api", "sparselmm.transforms", "sparselmm.datasets",
     "sparselmm.synthetic", "sparselmm.glmm"},
    {"sparselmm", "sparselmm.cli", "sparselmm.__main__"},
]


def _layer(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        for top in layer:
            if name == top or (top != "sparselmm" and name.startswith(top + ".")):
                return i
    raise AssertionError(f"{name} is in no layer")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name):
    up = [t for t in GRAPH[name] if _layer(t) > _layer(name)]
    assert up == [], f"{name} (layer {_layer(name)}) imports from above: {up}"


def test_no_private_attribute_of_another_object():
    # a module reads other objects through their public members: `x._attr` only on self or cls
    hits = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                hits.append(f"{name}:{node.lineno}: .{node.attr}")
    assert hits == []


def test_no_structure_name_is_tested_outside_the_covariance_module():
    pattern = re.compile(r"structure\.name\s*(==|!=|in\b|not in\b)|\bname\s*(==|!=)\s*[\"'](us|diag|cs|ar1|toep|homdiag|homcs|homtoep)[\"']")
    hits = [
        f"{p.relative_to(ROOT.parent)}:{i}"
        for p in ROOT.rglob("*.py")
        if p.name != "covariance.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
