"""The layers of ``lib`` and the one rule that keeps them readable: dependencies run one way.

``runtime``, ``skeleton``, ``images``, ``flow``, ``training``, ``viz`` <- ``world``, ``data`` <- ``evaluation``,
``nets`` <- ``methods`` <- notebooks (and ``reproduce``, the runner; ``benchmark``, the all-methods registry;
``exercises`` and ``grading``, the coursework). No module imports from a layer to its right; ``data`` never
imports ``world`` or ``evaluation``; no module imports another module's private (underscore) names. Every
import is read with ``ast``, so a violation names its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "lib"
TOP = ("runtime", "skeleton", "images", "flow", "training", "viz")
LAYER = {
    **{name: 0 for name in TOP},
    "world": 1,
    "data": 1,
    "evaluation": 2,
    "nets": 2,
    "methods": 3,
    "reproduce": 4,
    "benchmark": 4,
    "exercises": 4,
    "grading": 4,
}
FORBIDDEN = {"data": {"world", "evaluation"}}  # beyond the left-to-right rule


def unit(module: str) -> str:
    """``lib.world.synth`` -> ``world``; ``lib.runtime`` -> ``runtime``."""
    return module.split(".")[1]


def lib_modules() -> list[Path]:
    return sorted(LIB.rglob("*.py"))


def module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")


def lib_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, imported module, names)`` of every ``lib`` import in ``path`` (at any depth of the file)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lib":
            if node.module == "lib":  # from lib import world -> the package itself
                out += [(node.lineno, f"lib.{a.name}", []) for a in node.names]
            else:
                out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "lib"]
    return out


def violations(path: Path, root: Path = LIB) -> list[str]:
    """What in ``path`` (a module under ``root``, the ``lib`` folder) breaks the rule, one line each."""
    me = module_name(path, root)
    if me == "lib":
        return []
    mine = unit(me)
    bad = []
    for line, target, names in lib_imports(path):
        where = f"{path.relative_to(root.parent)}:{line} imports {target}"
        if target == "lib":
            continue
        theirs = unit(target)
        if theirs not in LAYER:
            bad.append(f"{where}: {theirs!r} is no known part of lib (add it to a layer)")
        elif LAYER[theirs] > LAYER[mine]:
            bad.append(f"{where}: layer {LAYER[theirs]} ({theirs}) is right of layer {LAYER[mine]} ({mine})")
        elif theirs in FORBIDDEN.get(mine, ()):
            bad.append(f"{where}: {mine} never imports {theirs}")
        private = [n for n in names if n.startswith("_")]
        if private and target != me:
            bad.append(f"{where}: private names {private} (move a shared helper down a layer, public)")
    return bad


def test_every_lib_module_belongs_to_a_layer():
    loose = [p.name for p in LIB.glob("*.py") if p.stem not in LAYER and p.stem != "__init__"]
    assert not loose, f"modules in lib/ root outside the layout: {loose}"
    assert {p.name for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "world",
        "data",
        "evaluation",
        "nets",
        "methods",
    }


@pytest.mark.parametrize("path", lib_modules(), ids=lambda p: str(p.relative_to(LIB.parent)))
def test_dependencies_run_one_way(path):
    assert not violations(path), "\n".join(violations(path))


def test_the_rule_catches_each_kind_of_violation(tmp_path):
    """The checker itself: a planted module of each kind is reported, naming file, line and import."""
    fake = tmp_path / "lib"
    for sub in ("data", "evaluation", "methods"):
        (fake / sub).mkdir(parents=True)
    (fake / "data" / "x.py").write_text("from lib.world.synth import make_world\n")
    (fake / "evaluation" / "y.py").write_text("import numpy\n\nfrom lib.methods.matching import match_pair\n")
    (fake / "methods" / "z.py").write_text("def f():\n    from lib.methods.matching import _check_costs\n")
    (fake / "runtime.py").write_text("from lib.nets import vgg\n")
    found = {p.name: violations(p, fake) for p in sorted(fake.rglob("*.py"))}
    assert found["x.py"] == ["lib/data/x.py:1 imports lib.world.synth: data never imports world"]
    assert found["y.py"] == [
        "lib/evaluation/y.py:3 imports lib.methods.matching: layer 3 (methods) is right of layer 2 (evaluation)"
    ]
    assert found["z.py"] == [
        "lib/methods/z.py:2 imports lib.methods.matching: private names ['_check_costs'] "
        "(move a shared helper down a layer, public)"
    ]
    assert found["runtime.py"] == ["lib/runtime.py:1 imports lib.nets: layer 2 (nets) is right of layer 0 (runtime)"]
