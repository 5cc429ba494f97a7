"""The package's layers, as docs/architecture.md draws them: apps at the top,
each layer importing only the layers beneath it, and apps that start without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gemdiff"
# top down; a module may import its own layer and the layers after it
LAYERS = ["apps", "runtime", "api", "tools", "training", "models", "evaluation", "data",
          "common"]
APPS = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "gemdiff":
        return None
    if len(parts) == 1:
        return "common"  # the package root only re-exports (its model object is lazy)
    return "apps" if parts[1] in APPS or parts[1] == "__main__" else parts[1]


def imports(path: Path) -> list[tuple[int, str]]:
    """Every gemdiff module a file imports, at any depth (imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            found.append((node.lineno, node.module))
            if node.module == "gemdiff":
                found += [(node.lineno, f"gemdiff.{a.name}") for a in node.names
                          if a.name in APPS]
    return [(line, m) for line, m in found if m.split(".")[0] == "gemdiff"]


def package_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append((name, path))
    return out


def test_every_subpackage_is_a_known_layer():
    found = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert found == set(LAYERS) - {"apps"}


def test_no_layer_imports_a_layer_above_it_and_no_app_imports_another_app():
    wrong = []
    for name, path in package_modules():
        own = layer_of(name)
        for line, target in imports(path):
            to = layer_of(target)
            if own == "apps" and to == "apps" and name != "gemdiff.__main__":
                if target.split(".")[1] != name.split(".")[1]:
                    wrong.append(f"{path.name}:{line} app imports app {target}")
            elif LAYERS.index(to) < LAYERS.index(own):
                wrong.append(f"{name}:{line} ({own}) imports {target} ({to})")
    assert not wrong, "\n".join(wrong)


def test_experiment_drivers_use_no_app():
    root = PACKAGE.parents[1] / "experiments"
    wrong = [f"{path}:{line} {target}" for path in sorted(root.rglob("*.py"))
             for line, target in imports(path) if layer_of(target) == "apps"]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("heavy", ["torch", "lightning", "sklearn", "umap", "pandas"])
def test_apps_import_without_heavy_libraries(heavy):
    code = ("import sys\n" + "".join(f"import gemdiff.{a}\n" for a in APPS)
            + "import gemdiff.__main__\n"
            + f"print({heavy!r} in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", f"importing the apps imports {heavy}"
