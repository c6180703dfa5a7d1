"""What a file costs grows with its nodes, not its bytes: each store refuses a file past the
limits on values, collections, comments, lines, documents and alias copies (docs/security.md,
"Limits on input") before or while it parses, and opens one within them.

The limits are a million nodes and 10,000 documents; the in-process checks here lower them
(each module reads its limit when it parses) so that both sides of each boundary are cheap, and
one CLI run per reader shows the real limit's one-line error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from secretops import jsonload, limits, yamlload
from secretops.limits import MAX_NODES, LimitError
from secretops.stores import get_store
from secretops.stores import yaml as yaml_store
from tests.fuzz.harness import Target, run_input
from tests.helpers import AgeKey, secretops

N = 1000  # the lowered limit


@pytest.fixture
def low(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (yaml_store, yamlload, jsonload, limits):
        monkeypatch.setattr(module, "MAX_NODES", N)
    for module in (yaml_store, yamlload):
        monkeypatch.setattr(module, "MAX_DOCUMENTS", 10)


# Nodes as go-yaml visits them: each document counts itself, its root mapping, and each key,
# value and collection; an alias counts itself and what it copies. Each shape of n nodes has
# at most n, and n + 4 more than n.

def _flow(n: int) -> bytes:
    return b"a: [" + b",".join([b"1"] * (n - 4)) + b"]\n"


def _block(n: int) -> bytes:
    return b"a:\n" + b"- 1\n" * (n - 4)


def _comments(n: int) -> bytes:  # comments are leaves of sops's tree
    return b"a: 1\n" + b"#\n" * (n - 4)


def _aliases(n: int) -> bytes:
    return b"x: &x [1]\ny: [" + b",".join([b"*x"] * ((n - 7) // 3)) + b"]\n"


def _documents(n: int) -> bytes:
    return b"a: 1\n" + b"---\nb: 1\n" * (n // 4 - 1)


YAML_SHAPES: dict[str, Callable[[int], bytes]] = {
    "flow": _flow, "block": _block, "comments": _comments, "aliases": _aliases,
    "documents": _documents,
}


@pytest.mark.parametrize("shape", sorted(YAML_SHAPES))
def test_yaml_nodes_either_side_of_the_limit(shape: str, low: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (yaml_store, yamlload):
        monkeypatch.setattr(module, "MAX_DOCUMENTS", N)
    make, store = YAML_SHAPES[shape], get_store("yaml")
    store.load(make(N))
    with pytest.raises(LimitError, match=f"more than {N:,} values, mappings"):
        store.load(make(N + 4))
    if shape != "comments":  # the readers of manifests and .sops.yaml drop comments
        yamlload.load_all(make(N))
        with pytest.raises(LimitError, match="values, mappings"):
            yamlload.load_all(make(N + 4))


def test_yaml_documents_either_side_of_the_limit(low: None) -> None:
    for load in (get_store("yaml").load, yamlload.load_all):
        load(b"---\n" * 10)
        with pytest.raises(LimitError, match="line 11: the file holds more than 10,000 YAML"):
            load(b"---\n" * 11)


def test_aliases_copy_no_more_bytes_than_the_input_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # a hundred aliases of one large value are within go-yaml's rule (a count of nodes), but
    # sops writes each copy: the values a file expands to are held to the size limit
    monkeypatch.setattr(yaml_store, "MAX_INPUT_BYTES", 100_000)
    text = b"a: &a '" + b"x" * 10_000 + b"'\nb: [" + b",".join([b"*a"] * 8) + b"]\n"
    get_store("yaml").load(text)
    with pytest.raises(LimitError, match="line 2: the values aliases copy would make the file "
                                         "larger than 134,217,728 bytes"):
        get_store("yaml").load(text.replace(b"*a]", b"*a,*a]"))


JSON_SHAPES: dict[str, Callable[[int], bytes]] = {  # n values: the object, the array, n - 2
    "numbers": lambda n: b'{"a": [' + b",".join([b"1"] * (n - 2)) + b"]}",
    "arrays": lambda n: b'{"a": [' + b",".join([b"[ ]"] * (n - 2)) + b"]}",
    "strings": lambda n: b'{"a": [' + b",".join([b'"\\","'] * (n - 2)) + b"]}",
}


@pytest.mark.parametrize("shape", sorted(JSON_SHAPES))
def test_json_values_either_side_of_the_limit(shape: str, low: None) -> None:
    make, store = JSON_SHAPES[shape], get_store("json")
    store.load(make(N))
    with pytest.raises(LimitError, match="more than"):
        store.load(make(N + 1))


def test_commas_inside_json_strings_are_not_values(low: None) -> None:
    get_store("json").load(b'{"csv": "' + b"a,[{" * (10 * N) + b'\\"x"}')


@pytest.mark.parametrize("fmt", ["dotenv", "ini"])
def test_lines_either_side_of_the_limit(fmt: str, low: None) -> None:
    head = b"[s]\n" if fmt == "ini" else b""
    store = get_store(fmt)
    store.load(head + b"a=1\n" + b"\n" * (N - 2 - len(head.splitlines())))
    with pytest.raises(LimitError, match=f"more than {N:,} lines"):
        store.load(head + b"a=1\n" + b"\n" * (N - 1))


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("name", "text"), [
    ("f.yaml", b"a: [" + b"1," * MAX_NODES + b"1]\n"),
    ("f.json", b'{"a": [' + b"[]," * MAX_NODES + b"[]]}"),
    ("f.env", b"a=1\n" + b"\n" * MAX_NODES),
])
def test_the_cli_refuses_a_file_past_the_limit_in_one_line(name: str, text: bytes,
                                                           tmp_path: Path,
                                                           age_key: AgeKey) -> None:
    path = tmp_path / name
    path.write_bytes(text)
    r = secretops("encrypt", "--age", age_key.recipient, str(path))
    assert r.code == 150 and not r.out, r.err
    assert r.err.startswith(f"secretops: error: {path}: ") and "1,000,000" in r.err, r.err
    assert len(r.err.splitlines()) == 2 and "Traceback" not in r.err  # the error and a hint


# --- time: linear in the comments, at any depth -------------------------------------------------

def _yaml_load(data: bytes) -> None:
    get_store("yaml").load(data)


@pytest.mark.parametrize(("shape", "text"), [
    # comment lines after the last value: each used to copy the text back to that value
    ("a run of comments", b"a: 1\n" + b"#\n" * (MAX_NODES - 10_000)),
    # and each was placed by a walk down every open collection (5,000 levels here)
    ("comments under deep nesting",
     b"".join(b" " * i + b"k:\n" for i in range(5000)) + b" " * 5000 + b"v: 1\n"
     + b"#\n" * 400_000),
])
def test_comments_are_placed_in_linear_time(shape: str, text: bytes, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # a hang guard, not a speed test: before, each of these took minutes (quadratic); the
    # memory a million nodes take is the figure docs/security.md gives, not this test's concern
    monkeypatch.setenv("SECRETOPS_FUZZ_SAVE_DIR", str(tmp_path))
    assert run_input(Target("yaml-comments", _yaml_load), text, time_limit=60,
                     memory_limit=2 << 30) == "ok"


# --- output: held to the limits input is read with ----------------------------------------------

@pytest.mark.parametrize(("name", "text"), [
    # re-emitted in sops's style (sops expands the alias): 4 columns a level. Block nesting
    # (flow nesting this deep over this many values is refused as it is read: limits.
    # MAX_FLOW_STEPS), each value 2,001 levels deep
    ("f.yaml", b"x: &q 1\ny: *q\na:\n" + b"- " * 2000 + b"[" + b",".join([b"1"] * 50_000)
     + b"]\n"),
    # JSON is always written indented, a tab a level
    ("f.json", b'{"a": ' + b"[" * 3000 + b",".join([b"1"] * 50_000) + b"]" * 3000 + b"}"),
])
def test_deep_input_cannot_make_output_past_the_limit(name: str, text: bytes, tmp_path: Path,
                                                      age_key: AgeKey) -> None:
    # ~100 KB in, 150-400 MB of indentation out (1.2 GB of memory), tens of GB at the limits
    path = tmp_path / name
    path.write_bytes(text)
    r = secretops("encrypt", "--unencrypted-regex", ".", "--age", age_key.recipient, str(path))
    assert r.code == 150 and not r.out, r.err[:300]
    assert "most of it indentation" in r.err.splitlines()[0]


def test_secretops_writes_no_encrypted_file_it_would_not_read(monkeypatch: pytest.MonkeyPatch,
                                                              age_key: AgeKey) -> None:
    from secretops import api
    from secretops.stores import _output

    for module in (yaml_store, _output):
        monkeypatch.setattr(module, "MAX_NODES", N)
    # just inside the limit as plaintext; the sops block every document gets pushes it past
    plain = b"a: 1\n" + b"#\n" * (N - 10)
    get_store("yaml").load(plain)
    with pytest.raises(LimitError, match=r"with its sops metadata, more than .*could read it back"):
        api.encrypt(plain, format="yaml", age=[age_key.recipient], env={})
    # and its bytes: ENC[…] values are longer than the values
    monkeypatch.setattr(_output, "MAX_INPUT_BYTES", 10_000)
    with pytest.raises(LimitError, match=r"the encrypted file would be .* bytes, over the limit"):
        api.encrypt(b"a: " + b"x" * 9000 + b"\n", format="yaml", age=[age_key.recipient],
                    env={})


@pytest.mark.parametrize(("fmt", "line"), [("dotenv", b"K%d=1\n"), ("json", b"")])
def test_a_flat_file_just_inside_the_limit_encrypts_and_reads_back(
        fmt: str, line: bytes, monkeypatch: pytest.MonkeyPatch, age_key: AgeKey) -> None:
    # each store's output is counted the way its reader counts (lines, JSON values), not
    # as YAML counts keys too: such a file is not refused for nodes its reader never sees
    from secretops import api
    from secretops.stores import _output

    for module in (limits, jsonload, _output):
        monkeypatch.setattr(module, "MAX_NODES", 100_000)
    n = 100_000 - 50  # room for the sops metadata's lines or values
    plain = (b"".join(line % i for i in range(n)) if fmt == "dotenv" else
             b'{"a": [' + b",".join([b"1"] * (n - 2)) + b"]}")
    enc = api.encrypt(plain, format=fmt, age=[age_key.recipient], env={})
    assert api.decrypt(enc, format=fmt, env={"SOPS_AGE_KEY_FILE": str(age_key.path)})
