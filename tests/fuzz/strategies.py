"""Reusable hypothesis strategies: structured mutations of sops-made and secretops-made files.

The seeds are real encrypted files: the sops binary's (``tests/testdata/sops``) and one
secretops writes at import time, all for the test age key ``tests/testdata/keys/age-test.txt``
so an unmutated seed decrypts. The strategies change what an attacker with write access can
change: any field of the ``sops:`` metadata (replaced by a value of another shape, removed,
duplicated, grown), any ``ENC[…]`` string (fields cut, swapped, filled with non-ASCII,
delimiters or long runs), and the age entries' wrapped keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

TESTDATA = Path(__file__).parent.parent / "testdata"
KEY_FILE = TESTDATA / "keys" / "age-test.txt"
SOPS_SEEDS = {
    "yaml": TESTDATA / "sops" / "errors" / "base.sops.yaml",
    "json": TESTDATA / "sops" / "errors" / "base-json.sops.json",
}
ENC_FIELDS = ("data", "iv", "tag", "type")


@cache
def seeds() -> list[tuple[str, str, dict[str, Any]]]:
    """(origin, format, loaded document) for every seed file."""
    out = [("sops", fmt, _load(path.read_bytes(), fmt)) for fmt, path in SOPS_SEEDS.items()]
    out.append(("secretops", "yaml", _load(_secretops_made(), "yaml")))
    return out


def _secretops_made() -> bytes:
    import secretops

    recipient = next(line.split(": ")[1] for line in KEY_FILE.read_text().splitlines()
                     if line.startswith("# public key:"))
    plain = b"user: admin\nport: 5432\nratio: 0.5\nok: true\nlist:\n  - a\n  - b\n"
    return secretops.encrypt(plain, format="yaml", age=[recipient], env={})


def _load(data: bytes, fmt: str) -> dict[str, Any]:
    doc = yaml.safe_load(data) if fmt == "yaml" else json.loads(data)
    assert isinstance(doc, dict)
    return doc


def dump(doc: Any, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode("utf-8")


# --- values of every shape --------------------------------------------------------------------

_PIECES = [*"AZaz09+/=,:[]", "é", "\u2028", "\x00", " ", "\n", "ENC[", ",iv:", ",tag:",
           ",type:", "-> X25519 ", "---"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=20).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True), _TEXT)
SHAPES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=6)


@st.composite
def enc_strings(draw: st.DrawFn, original: str) -> str:
    """A mutation of one ``ENC[…]`` value: a field replaced, cut, repeated or emptied."""
    how = draw(st.sampled_from(["field", "cut", "soup", "swap", "type"]))
    if how == "cut":
        return original[:draw(st.integers(0, len(original)))]
    if how == "soup":  # many delimiters: a backtracking parser takes cubic time on these
        unit = draw(st.sampled_from([",iv:", ",iv:,tag:", ",iv:,tag:,type:", "]"]))
        return "ENC[AES256_GCM,data:" + unit * draw(st.integers(1, 3000))
    fields = dict(part.split(":", 1) for part in original[len("ENC[AES256_GCM,"):-1].split(","))
    if how == "swap":
        a, b = draw(st.permutations(list(ENC_FIELDS[:3])))[:2]
        fields[a], fields[b] = fields[b], fields[a]
    else:
        name = "type" if how == "type" else draw(st.sampled_from(ENC_FIELDS))
        fields[name] = draw(st.one_of(_TEXT, st.text(max_size=8).map(
            lambda t, v=fields[name]: v[:4] + t + v[4:]),
            st.integers(0, 300).map(lambda n: "A" * n + "==")))
    return "ENC[AES256_GCM," + ",".join(f"{k}:{fields.get(k, '')}" for k in ENC_FIELDS) + "]"


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(origin, format, file bytes): a seed with one to three mutations of its metadata or
    of its ENC values."""
    import copy

    origin, fmt, seed = draw(st.sampled_from(seeds()))
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        mutate = draw(st.sampled_from(MUTATIONS))
        mutate(draw, doc)
    return origin, fmt, dump(doc, fmt)


def _replace(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    """Any node under ``sops`` becomes a value of any shape."""
    path = draw(st.sampled_from(_paths(doc["sops"])[1:] or [()]))
    if not path:
        return
    parent = _get(doc["sops"], path[:-1])
    parent[path[-1]] = draw(SHAPES)


def _remove(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    path = draw(st.sampled_from(_paths(doc["sops"])[1:] or [()]))
    if path:
        parent = _get(doc["sops"], path[:-1])
        del parent[path[-1]]


def _grow(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    """A list in the metadata (key entries) repeated many times, or key groups made up."""
    lists = [p for p in _paths(doc["sops"]) if isinstance(_get(doc["sops"], p), list)]
    if draw(st.booleans()) or not lists:
        doc["sops"]["key_groups"] = draw(st.lists(SHAPES, max_size=4))
        doc["sops"]["shamir_threshold"] = draw(SCALARS)
        return
    target = _get(doc["sops"], draw(st.sampled_from(lists)))
    target.extend(list(target) * draw(st.integers(1, 150)))


def _enc(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    """One ENC value of the file (a value, or the MAC) mutated."""
    paths = [p for p in _paths(doc) if isinstance(_get(doc, p), str)
             and _get(doc, p).startswith("ENC[AES256_GCM,") and _get(doc, p).endswith("]")]
    if not paths:
        return
    path = draw(st.sampled_from(paths))
    _get(doc, path[:-1])[path[-1]] = draw(enc_strings(_get(doc, path)))


def _age_enc(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    """An age entry's wrapped key: cut, its armor lines repeated, or lines of another shape."""
    entries = doc["sops"].get("age")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        return
    enc = str(entries[0].get("enc", ""))
    lines = enc.splitlines()
    how = draw(st.sampled_from(["cut", "repeat", "line"]))
    if how == "cut":
        enc = enc[:draw(st.integers(0, len(enc)))]
    elif how == "repeat" and len(lines) > 2:
        enc = "\n".join([lines[0], *lines[1:-1] * draw(st.integers(2, 400)), lines[-1]])
    elif len(lines) > 2:
        lines[draw(st.integers(1, len(lines) - 2))] = draw(_TEXT)
        enc = "\n".join(lines)
    entries[0]["enc"] = enc


MUTATIONS: list[Callable[[st.DrawFn, dict[str, Any]], None]] = [
    _replace, _remove, _grow, _enc, _enc, _age_enc,
]
