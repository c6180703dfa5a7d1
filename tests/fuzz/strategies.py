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

from tests.fuzz.mutate import MAX_INPUT

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
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: ~10x faster
    return yaml.dump(doc, Dumper=dumper, allow_unicode=True, sort_keys=False).encode("utf-8")


# --- values of every shape --------------------------------------------------------------------

_PIECES = [*"AZaz09+/=,:[]", "é", "\u2028", "\x00", " ", "\n", "ENC[", ",iv:", ",tag:",
           ",type:", "-> X25519 ", "---"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=20).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True), _TEXT)
SHAPES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=6)


def _enc_fields(original: str) -> dict[str, str]:
    """The fields of an ENC value as far as it has them: an earlier mutation may have cut one
    (``ENC[AES256_GCM,data:]``), dropped a ``:`` or put a ``,`` inside a field; a field it
    lacks is empty, a part without a name is ignored."""
    body = original.removeprefix("ENC[AES256_GCM,").removesuffix("]")
    fields = dict.fromkeys(ENC_FIELDS, "")
    for part in body.split(","):
        name, sep, value = part.partition(":")
        if sep and name in fields:
            fields[name] = value
    return fields


@st.composite
def enc_strings(draw: st.DrawFn, original: str) -> str:
    """A mutation of one ``ENC[…]`` value: a field replaced, cut, repeated or emptied."""
    how = draw(st.sampled_from(["field", "cut", "soup", "swap", "type"]))
    if how == "cut":
        return original[:draw(st.integers(0, len(original)))]
    if how == "soup":  # many delimiters: a backtracking parser takes cubic time on these
        unit = draw(st.sampled_from([",iv:", ",iv:,tag:", ",iv:,tag:,type:", "]"]))
        return "ENC[AES256_GCM,data:" + unit * draw(st.integers(1, 3000))
    fields = _enc_fields(original)
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
def mutated_files(draw: st.DrawFn, fmt: str | None = None) -> tuple[str, str, bytes]:
    """(origin, format, file bytes): a seed (of ``fmt``, or any) with one to three mutations of
    its metadata or of its ENC values."""
    import copy

    origin, fmt, seed = draw(st.sampled_from([s for s in seeds() if fmt in (None, s[1])]))
    doc, data = seed, dump(seed, fmt)
    for _ in range(draw(st.integers(1, 3))):
        trial = copy.deepcopy(doc)
        draw(st.sampled_from(MUTATIONS))(draw, trial)
        out = bounded_dump(trial, fmt)
        if out is not None:  # else skipped, as mutate.mutated skips one that grows too much
            doc, data = trial, out
    return origin, fmt, data


def _over(node: Any, limit: int) -> bool:
    """Is ``node`` surely more than ``limit`` bytes once dumped? (Counted until it is: a
    repeated list holds its items by reference, and dumping 151**3 of them would take minutes.)"""
    total, todo = 0, [node]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            todo += value
        total += 2 + (len(value) if isinstance(value, str) else
                      0 if isinstance(value, dict | list) else len(repr(value)))
        if total > limit:
            return True
    return False


def bounded_dump(doc: Any, fmt: str) -> bytes | None:
    """``doc`` dumped, or None when that is over :data:`~tests.fuzz.mutate.MAX_INPUT`: the
    mutations of trees (lists repeated 150 times, armor lines 400 times, one after another)
    obey the same bound as the text mutations. Sizes past it are the limit tests' job."""
    if _over(doc, MAX_INPUT):
        return None
    out = dump(doc, fmt)
    return out if len(out) <= MAX_INPUT else None


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


# --- trees of any manifest ----------------------------------------------------------------------

@st.composite
def tree_mutations(draw: st.DrawFn, seed_files: list[bytes]) -> bytes:
    """A YAML or JSON manifest (or a list of them) with one to three nodes replaced by a value
    of another shape, removed, or repeated: every field of the right name with a wrong value."""
    import copy

    from secretops.sealing.serialize import load_documents

    docs = []
    for data in seed_files:
        try:
            docs.append((data.lstrip().startswith(b"{"), load_documents(data)))
        except Exception: # a seed that is not a manifest (a key file)
            continue
    as_json, doc = draw(st.sampled_from(docs))
    fmt = "json" if as_json else "yaml"
    data = dump(_manifest(doc), fmt)
    for _ in range(draw(st.integers(1, 3))):
        trial = copy.deepcopy(doc)
        paths = _paths(trial)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(trial, path[:-1])
        how = draw(st.sampled_from(["replace", "replace", "remove", "repeat"]))
        if how == "remove":
            del parent[path[-1]]
        elif how == "repeat" and isinstance(parent[path[-1]], list):
            parent[path[-1]] = parent[path[-1]] * draw(st.integers(2, 70))
        else:
            parent[path[-1]] = draw(SHAPES)
        out = bounded_dump(_manifest(trial), fmt)
        if out is not None:  # a mutation past the bound is skipped
            doc, data = trial, out
    return data


def _manifest(docs: list[Any]) -> Any:
    items = docs if len(docs) != 1 else docs[0]
    if isinstance(items, list):
        items = {"apiVersion": "v1", "kind": "List", "items": items}
    return items


# --- age messages -------------------------------------------------------------------------------

_ARGS = ["X25519", "scrypt", "ssh-ed25519", "ssh-rsa", "piv-p256", "x-grease", "", "é",
         "A" * 300, "-", "-> X25519", "AAAA", "==", "\x00"]


def _dearmor(text: bytes) -> bytes:
    import base64

    body = b"".join(text.strip().splitlines()[1:-1])
    return base64.b64decode(body)


@st.composite
def age_mutations(draw: st.DrawFn, messages: list[bytes]) -> bytes:
    """An age message changed where its header's grammar is: stanzas repeated (to and past
    the 64-stanza limit), a stanza's type or arguments replaced, a body line longer or shorter
    than 64 columns, the MAC line or the payload cut or grown; armored again (maybe with other
    line lengths) or left binary."""
    import base64

    raw = _dearmor(draw(st.sampled_from(messages)))
    head, sep, payload = raw.partition(b"\n--- ")
    mac, _, body = payload.partition(b"\n")
    lines = head.split(b"\n")
    stanzas = [i for i, ln in enumerate(lines) if ln.startswith(b"-> ")]
    how = draw(st.sampled_from(["repeat", "args", "body", "mac", "payload", "version"]))
    if how == "repeat" and stanzas:
        i = draw(st.sampled_from(stanzas))
        block = lines[i:i + 2]
        lines[i:i + 2] = block * draw(st.sampled_from([2, 63, 64, 65, 400]))
    elif how == "args" and stanzas:
        i = draw(st.sampled_from(stanzas))
        args = lines[i].split(b" ")
        j = draw(st.integers(1, len(args)))
        args[j:j + 1] = [draw(st.sampled_from(_ARGS)).encode()] * draw(st.integers(0, 3))
        lines[i] = b" ".join(args)
    elif how == "body" and stanzas:
        i = draw(st.sampled_from(stanzas)) + 1
        if i < len(lines):
            lines[i] = lines[i][:draw(st.integers(0, 80))] + b"A" * draw(st.sampled_from(
                [0, 1, 64, 65, 5000]))
    elif how == "mac":
        mac = mac[:draw(st.integers(0, len(mac)))] + draw(st.sampled_from([b"", b"=", b"A"]))
    elif how == "payload":
        body = body[:draw(st.integers(0, len(body)))] + b"\0" * draw(st.sampled_from(
            [0, 1, 16, 2000]))
    else:
        lines[0] = draw(st.sampled_from([b"age-encryption.org/v2", b"age", b"",
                                         b"age-encryption.org/v1 "]))
    raw = b"\n".join(lines) + sep + mac + b"\n" + body
    if draw(st.integers(0, 4)) == 0:
        return raw
    b64 = base64.b64encode(raw).decode()
    width = draw(st.sampled_from([64, 64, 63, 76, 1000]))
    wrapped = "\n".join(b64[i:i + width] for i in range(0, len(b64), width))
    return ("-----BEGIN AGE ENCRYPTED FILE-----\n" + wrapped
            + "\n-----END AGE ENCRYPTED FILE-----\n").encode()


# --- sealed values ------------------------------------------------------------------------------

@st.composite
def sealed_value_mutations(draw: st.DrawFn, values: list[bytes]) -> bytes:
    """A sealed value changed where its layout is (docs/crypto.md): the version, the scope
    code, a length prefix (over or under what follows), a header field, the template digest,
    the wrapped age message (its header mutated as above), the nonce or ciphertext."""
    import base64
    import struct

    raw = bytearray(base64.b64decode(draw(st.sampled_from(values))))
    how = draw(st.sampled_from(["byte", "length", "cut", "grow", "age"]))
    if how == "byte":
        at = draw(st.integers(0, min(len(raw) - 1, 200)))
        raw[at] = draw(st.integers(0, 255))
    elif how == "length":
        at = draw(st.integers(6, max(6, min(len(raw) - 4, 120))))
        struct.pack_into(">H", raw, at, draw(st.sampled_from([0, 1, 0xFFFF, 40, 300])))
    elif how == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif how == "grow":
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = draw(st.binary(min_size=1, max_size=64)) * draw(st.sampled_from([1, 500]))
    else:
        start = raw.find(b"age-encryption.org/v1")
        if start > 4:
            (n,) = struct.unpack_from(">I", raw, start - 4)
            message = bytes(raw[start:start + n])
            armored = b"-----BEGIN AGE ENCRYPTED FILE-----\n" + base64.b64encode(message) + \
                b"\n-----END AGE ENCRYPTED FILE-----\n"
            new = draw(age_mutations([armored]))
            if new.startswith(b"-----"):
                new = _dearmor(new)
            raw[start - 4:start + n] = struct.pack(">I", len(new)) + new
    return base64.b64encode(bytes(raw))
