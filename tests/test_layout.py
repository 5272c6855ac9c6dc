"""The package's layout and the direction of its imports, read from the source with ``ast``.

Imports flow one way:

* ``zoo.layers`` imports nothing of the zoo but ``zoo.utils``;
* ``zoo.ops`` (pure tensor operations: boxes, IoU, NMS) imports nothing of the zoo;
* ``zoo.models`` imports ``zoo.layers``, ``zoo.registry`` and ``zoo.utils`` only;
* ``zoo.tasks`` and ``zoo.losses`` never import a model family (``zoo.models``), nor the
  commands, benchmarks or reports built on top of them (a task may draw with the plotting
  primitives of ``zoo.reporting.plots``);
* ``datamodules`` imports nothing of ``zoo``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

# package prefix -> the zoo modules (prefixes) it may import; None: any
ALLOWED = {
    "zoo.layers": ("zoo.layers", "zoo.utils"),
    "zoo.ops": ("zoo.ops",),
    "zoo.models": ("zoo.models", "zoo.layers", "zoo.registry", "zoo.utils"),
}
# package prefix -> the zoo modules (prefixes) it must never import
FORBIDDEN = {
    # (a task draws its outputs with the plotting primitives, zoo.reporting.plots; never the report)
    "zoo.tasks": ("zoo.models", "zoo.cli", "zoo.bench", "zoo.reporting.report", "zoo.reporting.sweep"),
    "zoo.losses": ("zoo.models", "zoo.tasks", "zoo.cli", "zoo.bench", "zoo.reporting"),
    "datamodules": ("zoo",),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names in ``path`` (relative imports
    resolved; ``from pkg import name`` counts as ``pkg.name`` too, as it may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted([*(root / "zoo").rglob("*.py"), *(root / "datamodules").rglob("*.py")]):
        me = module_name(path, root)
        for imp in sorted(imported_modules(path, root)):
            if not (_under(imp, "zoo") or _under(imp, "datamodules")):
                continue
            for prefix, allowed in ALLOWED.items():
                if _under(me, prefix) and not any(_under(imp, a) for a in allowed):
                    out.append(f"{me} imports {imp} (a module of {prefix} may import only {', '.join(allowed)})")
            for prefix, forbidden in FORBIDDEN.items():
                if _under(me, prefix) and any(_under(imp, f) for f in forbidden):
                    out.append(f"{me} imports {imp} ({prefix} must not import {', '.join(forbidden)})")
    return out


def test_imports_flow_one_way():
    found = violations()
    assert not found, "imports against the flow:\n" + "\n".join(found)


def test_the_check_fails_when_a_model_imports_a_task(tmp_path):
    """The same check on a copy of the package in which one model file imports a task."""
    import shutil

    for pkg in ("zoo", "datamodules"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    model = tmp_path / "zoo" / "models" / "lenet.py"
    model.write_text("from zoo.tasks import ClassificationTask\n" + model.read_text())
    task = tmp_path / "zoo" / "tasks" / "classification.py"
    task.write_text("from zoo.models.resnet import resnet18\n" + task.read_text())
    dm = tmp_path / "datamodules" / "base.py"
    dm.write_text("import zoo\n" + dm.read_text())
    found = violations(tmp_path)
    assert any(v.startswith("zoo.models.lenet imports zoo.tasks") for v in found), found
    assert any(v.startswith("zoo.tasks.classification imports zoo.models.resnet") for v in found), found
    assert any(v.startswith("datamodules.base imports zoo") for v in found), found
    # and nothing else: every report comes from the three files changed
    assert {v.split(" imports ")[0] for v in found} == {"zoo.models.lenet", "zoo.tasks.classification",
                                                         "datamodules.base"}, found


@pytest.mark.parametrize("folder", ["zoo/bench", "zoo/reporting", "zoo/cli", "zoo/tasks", "zoo/losses",
                                    "zoo/models", "zoo/layers", "zoo/ops", "zoo/weights", "datamodules/vision"])
def test_the_layout_groups_the_package_by_role(folder):
    assert (ROOT / folder / "__init__.py").is_file()


def test_no_flat_benchmark_or_report_modules_are_left():
    flat = sorted(p.name for p in (ROOT / "zoo").glob("*.py")
                  if p.stem.startswith(("bench", "report", "plots", "sweep")) or p.stem.endswith("_cli"))
    assert not flat, f"modules that belong in zoo/bench, zoo/reporting or zoo/cli: {flat}"
