"""YAML interop with the real sops binary, both ways, for every feature of the format.

For each input: secretops encrypts → sops decrypts to the same data; sops encrypts → secretops
decrypts to the same data; and secretops decrypts its own output back to the original bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import AgeKey, data_of, secretops, sops

CASES = {
    "k8s-secret": (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\n"
        "stringData:\n  password: s3cret\n  user: admin\n"
    ),
    "types": (
        "s: hello\ni: 42\nneg: -7\nf: 1.5\nt: true\nfl: false\nyes_str: yes\non_str: on\n"
        "empty: ''\nnothing: null\ntilde: ~\noct: 0o17\nhex: 0x1F\nexp: 1e3\ninf: .inf\n"
        "date: 2001-12-14\nver: 1.20.3\nq_int: '42'\nq_bool: \"true\"\n"
    ),
    "nested-lists": (
        "db:\n  list:\n    - one\n    - 2\n    - nested: x\n      deeper:\n        - y\n"
        "    - [p, q]\n  map:\n    a: {b: c, d: [1, 2]}\n"
    ),
    "comments": (
        "# top comment\ndb:\n  # about user\n  user: admin # inline\n  password: p\n"
        "  list:\n    - a # item\n    # between items\n    - b\n# root again\nother: x\n"
    ),
    "unicode-multiline": (
        "greeting: héllo wörld 😀\nliteral: |\n  line one\n  line two  \n\n  after blank\n"
        "keep: |+\n  kept\n\nstrip: |-\n  stripped\nquoted: \"tab\\tnewline\\n\"\n"
        "single: 'it''s'\n"
    ),
    "multidoc": "a: 1\nb: x\n---\nc:\n  d: true\n---\n# third\ne: [1, two]\n",
    "leading-separator": "---\napiVersion: v1\nkind: Secret\ndata:\n  k: dmFsdWU=\n",
}

# sops stores numbers and timestamps canonically (0o17 → 15, 1e3 → 1000), and a plain YAML 1.1
# lookalike string (y, yes, on) comes back double-quoted as sops writes it: same data, other text
SPELLINGS_NORMALISED = {"types", "nested-lists"}

SELECTIONS = {
    "default": [],
    "encrypted-regex": ["--encrypted-regex", "^(data|stringData|password|d)$"],
    "unencrypted-regex": ["--unencrypted-regex", "^(apiVersion|kind|metadata|s|a)$"],
    "encrypted-suffix": ["--encrypted-suffix", "word"],
    "unencrypted-suffix": ["--unencrypted-suffix", "_plain"],
    "encrypted-comment-regex": ["--encrypted-comment-regex", "^ ?about"],
    "unencrypted-comment-regex": ["--unencrypted-comment-regex", "inline"],
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("case", sorted(CASES))
def test_secretops_encrypts_sops_decrypts(
    case: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    src = _write(tmp_path, "in.yaml", CASES[case])
    enc = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0, enc.err
    encfile = _write(tmp_path, "out.enc.yaml", enc.text)
    dec = sops(sops_bin, "decrypt", str(encfile))
    assert dec.code == 0, dec.err
    assert "ENC[" not in dec.text, "sops left a value (or comment) encrypted"
    assert data_of(dec.out, "yaml") == data_of(src.read_bytes(), "yaml")
    ours = secretops("decrypt", str(encfile))
    assert ours.code == 0, ours.err
    if case in SPELLINGS_NORMALISED:
        assert data_of(ours.out, "yaml") == data_of(src.read_bytes(), "yaml")
    else:
        assert ours.out == src.read_bytes()


@pytest.mark.parametrize("case", sorted(CASES))
def test_sops_encrypts_secretops_decrypts(
    case: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    src = _write(tmp_path, "in.yaml", CASES[case])
    enc = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0, enc.err
    encfile = _write(tmp_path, "out.enc.yaml", enc.text)
    ours = secretops("decrypt", str(encfile))
    assert ours.code == 0, ours.err
    assert data_of(ours.out, "yaml") == data_of(src.read_bytes(), "yaml")
    theirs = sops(sops_bin, "decrypt", str(encfile))
    assert data_of(ours.out, "yaml") == data_of(theirs.out, "yaml")


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
def test_selection_options_both_ways(
    selection: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    text = (
        "# about the data\ndata:\n  password: p\n  keyword: k\n  plain_plain: visible\n"
        "stringData:\n  token: t # inline\napiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n"
    )
    src = _write(tmp_path, "in.yaml", text)
    flags = SELECTIONS[selection]
    ours = secretops("encrypt", "--age", age_key.recipient, *flags, str(src))
    assert ours.code == 0, ours.err
    # sops 3.11's `encrypt` subcommand ignores the comment-regex flags; its legacy form honours them
    theirs = sops(sops_bin, "--encrypt", "--age", age_key.recipient, *flags, str(src))
    assert theirs.code == 0, theirs.err
    # the same values end up encrypted as with sops
    ours_enc = data_of(ours.out, "yaml")[0]
    theirs_enc = data_of(theirs.out, "yaml")[0]

    def shape(node: object) -> object:
        if isinstance(node, dict):
            return {k: shape(v) for k, v in node.items() if k != "sops"}
        return isinstance(node, str) and node.startswith("ENC[")

    assert shape(ours_enc) == shape(theirs_enc)
    for produced in (ours.out, theirs.out):
        f = _write(tmp_path, "x.enc.yaml", produced.decode())
        for tool in ("sops", "secretops"):
            r = (sops(sops_bin, "decrypt", str(f)) if tool == "sops"
                 else secretops("decrypt", str(f)))
            assert r.code == 0, (tool, r.err)
            assert data_of(r.out, "yaml") == data_of(src.read_bytes(), "yaml")
