"""Alias expansion: go-yaml's rule on every YAML read, agreeing with the real sops binary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import AgeKey, secretops, sops

ROOT = Path(__file__).resolve().parents[2]


def laughs(width: int, levels: int) -> str:
    """A 'billion laughs': each level a list of ``width`` aliases of the one before."""
    head = "a0: &a0 [" + ",".join(["lol"] * width) + "]\n"
    return head + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]\n"
                          for i in range(1, levels))


def one_list_many_refs(n: int, k: int) -> str:
    return ("base: &b [" + ",".join(f"v{i}" for i in range(n)) + "]\n"
            + "".join(f"r{j}: *b\n" for j in range(k)))


def merges(defaults: int, envs: int) -> str:
    return ("defaults: &d\n" + "".join(f"  k{i}: v{i}\n" for i in range(defaults))
            + "".join(f"env{i}:\n  <<: *d\n  db: d{i}\n" for i in range(envs)))


# alias-heavy files either side of go-yaml's limit: sops and secretops must agree on each
CORPUS = {
    "laughs-3x6": laughs(3, 6), "laughs-3x8": laughs(3, 8), "laughs-5x4": laughs(5, 4),
    "laughs-5x5": laughs(5, 5), "laughs-9x3": laughs(9, 3), "laughs-9x4": laughs(9, 4),
    "list-1000x101": one_list_many_refs(1000, 101), "list-50x1000": one_list_many_refs(50, 1000),
    "list-2000x150": one_list_many_refs(2000, 150), "merge-300x50": merges(300, 50),
    "merge-3x500": merges(3, 500),
}

BOMB_299 = laughs(9, 9)  # the 299-byte kind: 9**9 leaves once expanded


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_same_acceptance_as_sops(name: str, sops_bin: str, age_key: AgeKey,
                                 tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CORPUS[name])
    theirs = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(path))
    ours = secretops("encrypt", "--age", age_key.recipient, str(path))
    assert (ours.code == 0) == (theirs.code == 0), (ours.err, theirs.err)
    if ours.code == 0:
        # what sops wrote, secretops reads, and the other way round, with the same data
        (tmp_path / "ours.enc.yaml").write_bytes(ours.out)
        (tmp_path / "theirs.enc.yaml").write_bytes(theirs.out)
        a = sops(sops_bin, "decrypt", str(tmp_path / "ours.enc.yaml"))
        b = secretops("decrypt", str(tmp_path / "theirs.enc.yaml"))
        assert a.code == 0 and b.code == 0, (a.err, b.err)
    else:
        assert "excessive aliasing" in theirs.err
        assert ours.code == 150
        assert ours.err.startswith(f"secretops: error: {path}: line ")
        assert "excessive aliasing" in ours.err and "Traceback" not in ours.err


@pytest.mark.timeout(20)
def test_bomb_refused_on_every_path(age_key: AgeKey, tmp_path: Path) -> None:
    """encrypt, check, textconv, seal and .sops.yaml: refused, not expanded (the per-test
    timeout is the hang guard; each refusal happens before anything is copied)."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB_299)
    r = secretops("encrypt", "--age", age_key.recipient, str(bomb))
    assert r.code == 150 and "excessive aliasing" in r.err and not r.out
    secret = tmp_path / "secret-bomb.yaml"  # a Secret the guard must read, or fail closed on
    secret.write_text("apiVersion: v1\nkind: Secret\nstringData: {a: b}\n" + BOMB_299)
    r = secretops("check", str(secret))
    assert r.code == 150 and "excessive aliasing" in r.err and "Traceback" not in r.err
    # an 'encrypted' file made of a bomb and a sops block: textconv never hangs git
    enc = tmp_path / "bomb.enc.yaml"
    enc.write_text(BOMB_299 + "sops:\n  version: 3.11.0\n  mac: ENC[AES256_GCM,data:x]\n")
    r = secretops("git", "textconv", str(enc))
    assert r.code == 0 and b"excessive aliasing" in r.out
    manifest = tmp_path / "secret.yaml"
    manifest.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n" + BOMB_299)
    from secretops.limits import LimitError
    from secretops.sealing.serialize import load_documents

    with pytest.raises(LimitError, match="excessive aliasing"):  # seal, unseal, convert-eso
        load_documents(manifest.read_bytes(), str(manifest))
    (tmp_path / ".sops.yaml").write_text(BOMB_299)
    plain = tmp_path / "plain.yaml"
    plain.write_text("a: b\n")
    for args in (("encrypt", str(plain)), ("check", str(plain))):
        r = secretops(*args)
        assert r.code == 5 and "excessive aliasing" in r.err and ".sops.yaml" in r.err


# every module that may call PyYAML's loading functions: the one loader, and the YAML store
# (which reads libyaml's events itself, through the loader's event_parser, for speed)
_ALLOWED = {"secretops/yamlload.py"}
_LOADING = {"load", "safe_load", "load_all", "safe_load_all", "full_load", "full_load_all",
            "unsafe_load", "unsafe_load_all", "compose", "compose_all", "parse", "scan",
            "CSafeLoader", "SafeLoader", "CLoader", "Loader", "BaseLoader", "CBaseLoader",
            "FullLoader", "UnsafeLoader", "CFullLoader", "CUnsafeLoader", "CParser"}


def test_no_module_parses_yaml_outside_the_loader() -> None:
    offenders = []
    for base in ("secretops", "controller"):
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in _ALLOWED:
                continue
            tree = ast.parse(path.read_text())
            yaml_names = {a.asname or a.name for n in ast.walk(tree)
                          if isinstance(n, ast.Import) for a in n.names if a.name == "yaml"}
            for node in ast.walk(tree):
                if (isinstance(node, ast.ImportFrom) and node.module
                        and (node.module == "yaml" or node.module.startswith("yaml."))
                        and any(a.name in _LOADING for a in node.names)):
                    offenders.append(f"{rel}:{node.lineno}")
                if (isinstance(node, ast.Attribute) and node.attr in _LOADING
                        and isinstance(node.value, ast.Name) and node.value.id in yaml_names):
                    offenders.append(f"{rel}:{node.lineno}: yaml.{node.attr}")
    assert not offenders, "parse YAML through secretops.yamlload: " + ", ".join(offenders)
