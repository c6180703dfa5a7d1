"""The package's layering rules that import-linter cannot express.

* No module uses another module's private names (``from secretops.keyops import _identity``,
  ``api._now``): what is shared is public in the module that owns it. A private *module*
  (``secretops.cli._actions``) may be used inside its own package only.
* ``secretops.api`` holds only the stable calls ``docs/library.md`` promises.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "secretops", ROOT / "controller" / "secretops_controller"]


def _module_name(path: Path) -> str:
    base = ROOT / "controller" if "secretops_controller" in path.parts else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_uses(path: Path) -> list[str]:
    own = _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found: list[str] = []
    imported: dict[str, str] = {}  # local name -> module it names (ours only)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                ("secretops", "secretops_controller")):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*full.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*full.split("."))).is_dir() or (
                    ROOT / "controller" / Path(*full.split("."))).with_suffix(".py").exists()
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    if not is_module:
                        found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                    elif node.module != package:
                        found.append(f"{node.lineno}: private module {full} from {package}")
                if is_module:
                    imported[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("secretops") and alias.asname:
                    imported[alias.asname] = alias.name
        if isinstance(node, ast.ImportFrom) and node.module and ("._" in node.module):
            private_pkg = node.module.rsplit("._", 1)[0]
            if not (package + ".").startswith(private_pkg + "."):
                found.append(f"{node.lineno}: private module {node.module} from {package}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in imported and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "path", sorted(p for pkg in PACKAGES for p in pkg.rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path: Path) -> None:
    assert _private_uses(path) == []


def test_api_holds_only_the_stable_calls() -> None:
    from secretops import api

    assert sorted(api.__all__) == ["decrypt", "decrypt_file", "encrypt", "encrypt_file"]
    tree = ast.parse((ROOT / "secretops" / "api.py").read_text())
    public = {n.name for n in tree.body
              if isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_")}
    assert public == set(api.__all__)
    library = (ROOT / "docs" / "library.md").read_text()
    for name in api.__all__:
        assert f"secretops.{name}(" in library
