"""The key-source registry, walked: every source's one record is complete and is what the CLI,
``.sops.yaml``, the metadata and ``updatekeys`` read — and a source whose Python package is
missing fails with exit 154 and the extra to install, never a traceback.

A new source gets these checks by its registry line; the round trip with the real sops needs its
fixture in :data:`RUNNABLE` (the test fails until it is there).
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretops.config import load_config
from secretops.core.metadata import KEY_FIELDS
from secretops.keys import SOURCES, KeySource, source, sources
from secretops.keys.specs import from_env, from_flags
from tests.helpers import CANARY, AgeKey, make_age_key, run, secretops, sops

ROOT = Path(__file__).resolve().parents[2]
KINDS = list(SOURCES)

# How the tests get a real key of each source: a fixture, and its key as typed on the command
# line. age: a fresh identity; pgp: gpg; kms: moto; hc_vault: OpenBao; gcp_kms, azure_kv,
# hckms: the stand-ins of tests/fixtures.
RUNNABLE: dict[str, tuple[str, Callable[[Any], str]]] = {
    "age": ("age_key", lambda k: str(k.recipient)),
    "pgp": ("gpg_key", str),
    "kms": ("aws_kms", lambda k: str(k.arns[0])),
    "hc_vault": ("vault_key", str),
    "gcp_kms": ("gcp_kms", lambda k: str(k.resource_ids[0])),
    "azure_kv": ("azure_kv", lambda k: str(k.urls[0])),
    "hckms": ("hckms", lambda k: str(k.key_ids[0])),
}
# sops 3.11 reaches Cloud KMS only at cloudkms.googleapis.com over gRPC, with no endpoint
# setting: for such a kind secretops makes the file, for the key and an age key sops holds,
# and sops runs with these settings (credentials that fail before any connection)
SOPS_CANNOT_REACH: dict[str, dict[str, str]] = {
    "gcp_kms": {"GOOGLE_CREDENTIALS": "{}", "SOPS_DECRYPTION_ORDER": "age"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_record_is_complete(kind: str) -> None:
    src = source(kind)
    assert isinstance(src, KeySource) and src.kind == kind
    for name in ("title", "flag", "metavar", "help", "example", "env", "config_key",
                 "group_key"):
        assert isinstance(getattr(src, name), str) and getattr(src, name), name
    for name in ("describe", "parse", "parse_group", "recipient", "identity"):
        assert callable(getattr(src, name)), name
    # the wire fields are sops's, and the identity is made of them
    assert src.fields == KEY_FIELDS[kind]
    assert src.identity_fields and set(src.identity_fields) <= set(src.fields)
    assert set(src.upper_fields) <= set(src.identity_fields)
    assert src.remove_fields is None or set(src.remove_fields) <= set(src.identity_fields)
    assert src.env.startswith("SOPS_")
    spec = src.parse(src.example, {o.name: o.parse(None) for o in src.options})
    assert spec.kind == kind and set(spec.fields) <= set(src.fields)
    described = src.describe(spec.fields)
    assert described and "?" not in described
    assert src.identity_key(spec.fields) == src.identity_key(dict(spec.fields))


@pytest.mark.parametrize("kind", KINDS)
def test_an_extra_is_declared_and_installed_for_the_tests(kind: str) -> None:
    import importlib.util

    src = source(kind)
    assert bool(src.extra) == bool(src.requires)
    if not src.extra:
        return
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras.get(src.extra), f"pyproject.toml has no [{src.extra}] extra"
    assert set(extras[src.extra]) <= set(extras["all"]) and set(extras[src.extra]) <= set(
        extras["dev"])
    for module in src.requires:
        assert importlib.util.find_spec(module) is not None, module


def test_the_table_lists_each_module_once_and_decryption_order_is_sops() -> None:
    from secretops.keys import DEFAULT_DECRYPTION_ORDER

    assert len(set(SOURCES.values())) == len(SOURCES)
    assert DEFAULT_DECRYPTION_ORDER == ("age", "pgp")  # sops's DefaultDecryptionOrder
    assert [s.kind for s in sources()] == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_its_flags_and_variable_reach_the_cli(kind: str) -> None:
    from secretops.cli import _fast

    src = source(kind)
    encrypt = secretops("encrypt", "--help").out.decode()
    rotate = secretops("rotate", "--help").out.decode()
    edit = secretops("edit", "--help").out.decode()
    assert f"--{src.flag} {src.metavar}" in encrypt and f"${src.env}" in encrypt
    assert f"--add-{src.flag} LIST" in rotate and f"--rm-{src.flag} LIST" in rotate
    assert f"--{src.flag} {src.metavar}" in edit
    for option in src.options:
        assert option.flag in encrypt and option.flag in rotate
    parsed = _fast.parse(["encrypt", f"--{src.flag}", src.example, "s.yaml"])
    assert parsed is not None and parsed[1][src.keyword] == src.example
    assert [s.kind for s in from_flags(**{src.keyword: src.example})] == [kind]
    assert [s.kind for s in from_env({src.env: f"{src.example},{src.example}"})] == [kind] * 2


@pytest.mark.parametrize("kind", KINDS)
def test_its_sops_yaml_keys_parse(kind: str, tmp_path: Path) -> None:
    src = source(kind)
    config = tmp_path / ".sops.yaml"
    for rule, form in (({src.config_key: src.example}, "top level"),
                       ({"key_groups": [{src.group_key: src.group_example},
                                        {"age": [source("age").example]}]}, "key_groups")):
        config.write_text(yaml.safe_dump({"creation_rules": [rule]}))
        got = load_config(config).rule_for(str(tmp_path / "s.yaml"))
        assert got is not None, form
        assert got.groups[0] == [src.parse(src.example, {o.name: o.parse(None)
                                                         for o in src.options})], form


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_package_is_exit_154_naming_the_extra(kind: str, tmp_path: Path) -> None:
    """As after a plain ``pip install secretops``: the source's package cannot be imported."""
    src = source(kind)
    if not src.requires:
        pytest.skip(f"{kind} needs no optional Python package")
    plain = tmp_path / "s.yaml"
    plain.write_text(f"password: {CANARY}\n")
    blocked = "".join(f"sys.modules[{m!r}] = None; " for m in src.requires)
    code = (f"import sys; {blocked}from secretops.cli import main; "
            "sys.argv[0] = 'secretops'; main()")
    env = {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t",  # reach the client first
           "AWS_EC2_METADATA_DISABLED": "true"}
    r = run([sys.executable, "-c", code, "encrypt", f"--{src.flag}", src.example, str(plain)],
            env={**os.environ, **env}, cwd=tmp_path)
    assert r.code == 154, r.err
    assert "Traceback" not in r.err and CANARY not in r.err
    assert r.err.startswith(f"secretops: error: {plain}: the {src.title} key source needs")
    assert f"secretops: hint: pip install 'secretops[{src.extra}]'" in r.err


def _masked(text: bytes) -> str:
    """The file with every wrapped key and its date replaced (they are random per wrap)."""
    out: list[str] = []
    inside: int | None = None
    for line in text.decode().splitlines():
        indent = len(line) - len(line.lstrip())
        if inside is not None and (indent > inside or not line.strip()):
            continue
        inside = None
        m = re.match(r"(\s*(?:- )?)(enc|created_at): ", line)
        if m:
            out.append(f"{m.group(1)}{m.group(2)}: *")
            inside = len(m.group(1))
            continue
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_round_trips_through_updatekeys_with_sops(
    kind: str, tmp_path: Path, sops_bin: str, request: pytest.FixtureRequest,
) -> None:
    """sops writes a file for the source's key; secretops reads its entry as the same key
    (up to date), adds a key exactly as sops's own updatekeys does (byte for byte but for the
    random wrapped keys), and sops opens the result. For a kind in SOPS_CANNOT_REACH secretops
    writes the file and sops only opens the result (through the age key)."""
    assert kind in RUNNABLE, f"add a fixture for {kind} to RUNNABLE"
    fixture, as_typed = RUNNABLE[kind]
    key = as_typed(request.getfixturevalue(fixture))
    src = source(kind)
    (tmp_path / "extra").mkdir()
    extra: AgeKey = make_age_key(tmp_path / "extra")
    config = tmp_path / ".sops.yaml"

    def rule(*keys: tuple[str, str]) -> None:
        merged: dict[str, list[str]] = {}
        for name, value in keys:
            merged.setdefault(name, []).append(value)
        config.write_text(yaml.safe_dump({"creation_rules": [
            {k: v for k, v in merged.items()}]}))  # lists: sops reads hckms only as one

    plain = tmp_path / "s.yaml"
    plain.write_text(f"password: {CANARY}\nuser: admin\n")
    keys = [(src.config_key, key)]
    guard = SOPS_CANNOT_REACH.get(kind)
    if guard is not None:
        keys.append(("age", request.getfixturevalue("age_key").recipient))
    rule(*keys)
    if guard is None:
        made = sops(sops_bin, "encrypt", "--filename-override", "s.yaml", str(plain),
                    cwd=tmp_path)
    else:
        made = secretops("encrypt", "--filename-override", "s.yaml", str(plain), cwd=tmp_path)
    assert made.code == 0, made.err
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
    for f in (ours, theirs):
        f.write_bytes(made.out)

    same = secretops("updatekeys", "-y", str(ours), cwd=tmp_path)
    assert same.code == 0 and "already up to date" in same.out.decode(), same.err
    assert ours.read_bytes() == made.out

    rule(*keys, ("age", extra.recipient))
    r = secretops("updatekeys", "-y", str(ours), cwd=tmp_path)
    assert r.code == 0, r.err
    sops_env = {**os.environ, **(guard or {})}
    if guard is None:  # sops's updatekeys wraps the data key anew for every key it keeps
        s = run([sops_bin, "updatekeys", "-y", str(theirs)], env=sops_env, cwd=tmp_path)
        assert s.code == 0, s.err
        assert _masked(ours.read_bytes()) == _masked(theirs.read_bytes())
    before, after = (yaml.safe_load(made.out)["sops"], yaml.safe_load(ours.read_bytes())["sops"])
    assert after[kind][:len(before[kind])] == before[kind]  # the source's entry is kept as is
    assert (after["mac"], after["lastmodified"]) == (before["mac"], before["lastmodified"])
    opened = run([sops_bin, "decrypt", str(ours)], env=sops_env, cwd=tmp_path)
    assert opened.code == 0 and CANARY.encode() in opened.out, opened.err
