"""The controller's layering, beyond what import-linter can say (pyproject.toml has the
contracts): the exact aiohttp names each module imports, providers' abilities declared as
protocols and listed in one table, and module sizes."""

from __future__ import annotations

import ast
from pathlib import Path

from secretops_controller.external import provider, providers
from secretops_controller.external.providers import aws, vault, vault_store

PACKAGE = Path(__file__).resolve().parents[2] / "controller" / "secretops_controller"


def _imports(path: Path) -> list[str]:
    """Every imported name of ``path``: ``aiohttp``, ``aiohttp.web``, ``aiohttp:web``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [f"{node.module}:{a.name}" for a in node.names]
    return out


def test_only_kube_is_an_http_client_and_http_py_only_serves() -> None:
    """import-linter sees ``aiohttp`` only as a whole: here, the HTTP server module may take
    ``aiohttp.web`` and nothing else (no ClientSession), kube.py anything."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names = [n for n in _imports(path) if n.split(":")[0].split(".")[0] == "aiohttp"]
        if names:
            found[str(path.relative_to(PACKAGE))] = names
    assert set(found) == {"kube.py", "http.py"}, found
    assert found["http.py"] == ["aiohttp:web"], found


def test_no_ability_is_found_by_probing_attributes() -> None:
    """Optional provider abilities are protocols checked with isinstance: no getattr on a
    provider anywhere in the controller."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and node.args
                    and isinstance(node.args[0], ast.Name)):
                assert "provider" not in node.args[0].id, f"{path}: {ast.unparse(node)}"


def test_providers_declare_their_abilities_and_register_once() -> None:
    assert {"vault": vault_store.from_store, "aws": aws.from_store} == providers.REGISTRY
    abilities = {cls.__name__: sorted(p.__name__ for p in (provider.Finder, provider.Writer,
                                                            provider.Checker)
                                      if issubclass(cls, p))
                 for cls in (vault.VaultProvider, aws.SecretsManagerProvider,
                             aws.ParameterStoreProvider)}
    assert abilities == {"VaultProvider": ["Checker", "Finder", "Writer"],
                         "SecretsManagerProvider": ["Finder", "Writer"],
                         "ParameterStoreProvider": ["Finder", "Writer"]}


def test_modules_stay_small() -> None:
    """STYLE.md: modules under ~500 lines; the external half's under ~400 but its providers'
    clients and the scheduler."""
    big = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        rel = str(path.relative_to(PACKAGE))
        limit = 400 if rel.startswith("external/") and rel not in (
            "external/scheduler.py", "external/providers/aws.py") else 500
        if lines > limit:
            big[rel] = lines
    assert not big, big
