"""After a plain ``pip install secretops`` (no extras): every way a user can reach a key source
whose package is missing ends in exit 154 (or 128 on decrypt, when no other key opens the file)
with a hint naming the extra — never a ``ModuleNotFoundError`` traceback.

The plain install is modelled faithfully, by distribution rather than by module: a directory
holds links to exactly the distributions ``secretops``'s own requirements (no extras) bring in,
resolved from their metadata, and the CLI runs with ``python -S`` on that directory alone, so
boto3, botocore, hvac and requests are simply not there, as in a fresh virtualenv.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from pathlib import Path

import pytest

from secretops.keys import SOURCES, KeySource, source
from tests.helpers import CANARY, AgeKey, Result, run, secretops

OPTIONAL = [k for k in SOURCES if source(k).requires]


def _closure(name: str) -> set[str]:
    """The distributions ``pip install name`` installs, from their metadata (no extras)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = md.distribution(todo.pop())
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


@pytest.fixture(scope="module")
def plain_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("plain-site")
    for name in _closure("secretops"):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            if top.endswith((".dist-info", ".egg-info", ".pth")) or top in ("..", "__pycache__"):
                continue
            target = Path(str(dist.locate_file(top)))
            if target.exists() and not (site / top).exists():
                (site / top).symlink_to(target)
    import secretops

    if not (site / "secretops").exists():  # an editable install lists no package files
        (site / "secretops").symlink_to(Path(secretops.__file__).parent)
    for module in ("boto3", "botocore", "hvac", "requests"):
        assert not (site / module).exists(), module
    return site


def plain(site: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    code = (f"import sys; sys.path[:0] = [{str(site)!r}]; from secretops.cli import main; "
            "sys.argv[0] = 'secretops'; main()")
    return run([sys.executable, "-S", "-c", code, *args], cwd=cwd,
               env={**os.environ, "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t",
                    **(env or {})})


def _entry_yaml(src: KeySource) -> str:
    """A metadata entry of the source's kind, as sops writes it (its wrapped key is made up:
    it is never unwrapped here)."""
    spec = src.parse(src.example, {o.name: o.parse(None) for o in src.options})
    fields = {f: spec.fields.get(f, "") for f in src.fields}
    fields.update(created_at="2024-01-01T00:00:00Z", enc="AQIDBA==")
    lines = [f"    {src.kind}:"]
    for n, (k, v) in enumerate(fields.items()):
        lines.append(f"        {'- ' if n == 0 else '  '}{k}: {v!r}" if v else
                     f"        {'- ' if n == 0 else '  '}{k}: \"\"")
    return "\n".join(lines) + "\n"


@pytest.fixture
def with_entry(age_key: AgeKey, tmp_path: Path) -> dict[str, bytes]:
    """For each optional kind: a file its entry and an age entry open, and one only it opens."""
    (tmp_path / "p.yaml").write_text(f"password: {CANARY}\n")
    enc = secretops("encrypt", "--age", age_key.recipient, str(tmp_path / "p.yaml")).out
    out = {}
    for kind in OPTIONAL:
        entry = _entry_yaml(source(kind)).encode()
        both = enc.replace(b"\n    age:\n", b"\n" + entry + b"    age:\n", 1)
        start, end = both.index(b"    age:\n"), both.index(b"    lastmodified:")
        out[f"{kind}-both"] = both
        out[f"{kind}-only"] = both[:start] + both[end:]
    return out


def _clean(r: Result, code: int, src: KeySource) -> None:
    assert r.code == code, r.err
    assert "Traceback" not in r.err and "ModuleNotFoundError" not in r.err, r.err
    assert f"pip install 'secretops[{src.extra}]'" in r.err, r.err
    assert CANARY not in r.err + r.text


@pytest.mark.parametrize("kind", OPTIONAL)
def test_encrypt_paths(kind: str, plain_site: Path, tmp_path: Path) -> None:
    src = source(kind)
    (tmp_path / "p.yaml").write_text(f"password: {CANARY}\n")
    for args, env, config in (
        (["encrypt", f"--{src.flag}", src.example, "p.yaml"], {}, None),
        (["encrypt", "p.yaml"], {src.env: src.example}, None),
        (["encrypt", "p.yaml"], {}, {src.config_key: src.example}),
        (["encrypt", "p.yaml"], {}, {"key_groups": [{src.group_key: src.group_example}]}),
        (["edit", f"--{src.flag}", src.example, "new.yaml"], {"EDITOR": "true"}, None),
    ):
        import yaml

        cfg = tmp_path / ".sops.yaml"
        cfg.unlink(missing_ok=True)
        if config is not None:
            cfg.write_text(yaml.safe_dump({"creation_rules": [config]}))
        _clean(plain(plain_site, *args, cwd=tmp_path, env=env), 154, src)
        assert not (tmp_path / "new.yaml").exists()


@pytest.mark.parametrize("kind", OPTIONAL)
def test_paths_through_a_file_that_carries_the_key(kind: str, plain_site: Path,
                                                   with_entry: dict[str, bytes],
                                                   age_key: AgeKey, tmp_path: Path) -> None:
    src = source(kind)
    both, only = tmp_path / "both.yaml", tmp_path / "only.yaml"
    both.write_bytes(with_entry[f"{kind}-both"])
    only.write_bytes(with_entry[f"{kind}-only"])
    before = {p: p.read_bytes() for p in (both, only)}
    # age opens the file: the missing package is never needed, and never imported
    r = plain(plain_site, "decrypt", "both.yaml", cwd=tmp_path)
    assert r.code == 0 and CANARY in r.text, r.err
    for args in (["decrypt", "only.yaml"], ["set", "only.yaml", '["a"]', "1"],
                 ["exec-env", "only.yaml", "true"], ["exec-file", "only.yaml", "true"],
                 ["rotate", "only.yaml"]):
        _clean(plain(plain_site, *args, cwd=tmp_path), 128, src)
    for args in (["rotate", "-i", "both.yaml"],
                 ["rotate", "-i", "--rm-age", age_key.recipient, "both.yaml"],
                 ["rotate", "-i", f"--add-{src.flag}", src.example, "both.yaml"]):
        _clean(plain(plain_site, *args, cwd=tmp_path), 154, src)
    assert {p: p.read_bytes() for p in (both, only)} == before  # nothing written


@pytest.mark.parametrize("kind", OPTIONAL)
def test_updatekeys_adding_the_key(kind: str, plain_site: Path, age_key: AgeKey,
                                   tmp_path: Path) -> None:
    import yaml

    src = source(kind)
    (tmp_path / "s.yaml").write_text(f"password: {CANARY}\n")
    assert secretops("encrypt", "-i", "--age", age_key.recipient,
                     str(tmp_path / "s.yaml")).code == 0
    before = (tmp_path / "s.yaml").read_bytes()
    (tmp_path / ".sops.yaml").write_text(yaml.safe_dump({"creation_rules": [
        {"age": age_key.recipient, src.config_key: src.example}]}))
    _clean(plain(plain_site, "updatekeys", "-y", "s.yaml", cwd=tmp_path), 154, src)
    assert (tmp_path / "s.yaml").read_bytes() == before


def test_key_services_without_their_extra(plain_site: Path, age_key: AgeKey,
                                          tmp_path: Path) -> None:
    """grpc and protobuf come with ``secretops[keyservice]``: asking for a key service without
    them is exit 154 naming that extra; without --keyservice nothing of it is needed."""
    (tmp_path / "s.yaml").write_text(f"password: {CANARY}\n")
    assert secretops("encrypt", "-i", "--age", age_key.recipient,
                     str(tmp_path / "s.yaml")).code == 0
    (tmp_path / "p.yaml").write_text(f"password: {CANARY}\n")
    r = plain(plain_site, "decrypt", "s.yaml", cwd=tmp_path)
    assert r.code == 0 and CANARY in r.text, r.err
    for args in (["decrypt", "--keyservice", "tcp://127.0.0.1:1", "s.yaml"],
                 ["encrypt", "--keyservice", "tcp://127.0.0.1:1", "--age", age_key.recipient,
                  "p.yaml"],
                 ["keyservice", "--address", "127.0.0.1:0"]):
        r = plain(plain_site, *args, cwd=tmp_path)
        assert "secretops[keyservice]" in r.err and "Traceback" not in r.err, (args, r.err)
        assert r.code in (154, 128), (args, r.code)
        assert CANARY not in r.text
