"""Property: any YAML document round-trips through encrypt → decrypt, and sops agrees."""

from __future__ import annotations

import os
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from secretops.core.tree import to_plain
from secretops.core.values import Timestamp
from secretops.errors import FormatError
from secretops.stores._yamlscalar import render_number
from secretops.stores.yaml import YamlStore

KEY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
    max_size=12,
)
SCALARS = st.one_of(
    KEY_TEXT,
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.none(),
    # NaN is left out only because NaN != NaN; its spelling is a vector in test_yaml_store.py
    st.floats(allow_nan=False),
    st.sampled_from(["yes", "on", "1.5", "0x1F", "~", "null", "a: b", "#x", "- y", "'q'", '"d"',
                     "line1\nline2\n", "trailing  \nspace", " lead", "é😀", "", "*a", "&b",
                     "1e+06", "1e-07", ".inf", "-0", "1e400"]),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEY_TEXT, children, max_size=4)
    ),
    max_leaves=25,
)
# A top-level "sops" key is where sops keeps its metadata: sops refuses to encrypt such a file
# (exit 203) and the YAML store rejects it (tests/stores/test_yaml_store.py), so it is not data.
DOCS = st.dictionaries(KEY_TEXT.filter(lambda k: k != "sops"), TREES, min_size=1, max_size=5)
STYLES = st.fixed_dictionaries({
    "default_flow_style": st.sampled_from([False, None, True]),
    "indent": st.sampled_from([2, 4]),
    "allow_unicode": st.booleans(),
    "explicit_start": st.booleans(),
    "width": st.sampled_from([80, 20]),
})


def _roundtrip(text: bytes) -> tuple[bytes, bytes]:
    from secretops.core.document import open_documents, seal
    from secretops.core.metadata import Metadata

    store = YamlStore()
    loaded = store.load(text)
    key = os.urandom(32)
    meta = Metadata(key_groups=[[]])
    enc_docs = seal(loaded.docs, meta, key, random=os.urandom, lastmodified="2030-01-01T00:00:00Z")
    enc = store.emit(enc_docs, meta.to_wire(), loaded.layout)
    reloaded = store.load(enc)
    back = Metadata.from_wire(reloaded.metadata)
    plain, _ = open_documents(reloaded.docs, back, key, random=os.urandom)
    return enc, store.emit(plain, None, reloaded.layout)


# How many examples, and whether they are new each run: the profiles in tests/conftest.py.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, style=STYLES)
def test_any_document_round_trips(doc: dict[str, Any], style: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False, **style).encode()
    try:
        loaded = YamlStore().load(text)
    except FormatError as e:
        # PyYAML writes e.g. a key '0E0' plain, which YAML 1.2 (so sops) reads as a float key
        assume("not a string" not in str(e))
        raise
    enc, dec = _roundtrip(text)
    assert YamlStore().load(enc).metadata is not None  # the encrypted file parses, with its block
    assert to_plain(YamlStore().load(dec).docs[0]) == to_plain(YamlStore().load(text).docs[0])
    # Byte identity wherever the encrypted file carries the spelling (docs/format.md): not for
    # a re-emitted flow root, nor for multi-line quoted/plain scalars (PyYAML writes strings
    # with line breaks that way, and folds long ones at `width`).
    strings = _strings(doc)
    multiline = style["width"] < 80 or any("\n" in s for s in strings)
    # and not for escapes in double quotes ("\xA1" comes back as the character it stands for)
    escaped = not style["allow_unicode"] and any(not s.isascii() for s in strings)
    escaped = escaped or any(not c.isprintable() for s in strings for c in s)
    layout = loaded.layout.docs[0]
    # and not for needless single quotes in flow collections (they come back plain)
    flow = style["default_flow_style"] is not False
    lossy = multiline or escaped or flow or _respelled_numbers(text, layout)
    if layout.root_block_map and not lossy:
        assert dec == text


def _respelled_numbers(text: bytes, layout: Any) -> bool:
    """Numbers and timestamps whose spelling is not the canonical one sops stores."""
    src = text.decode()
    for value, span in zip(layout.values, layout.spans, strict=True):
        if isinstance(value, Timestamp):
            return True
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and span and src[span[1] : span[2]] != render_number(value):
            return True
    return False


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*node, *(s for v in node.values() for s in _strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


WORDS = st.one_of(
    st.text(alphabet="0123456789eExXoObBaAfFtTnNyY", min_size=1, max_size=24),
    st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=12),
    st.sampled_from(["true", "TRUE", "null", "Null", "yes", "On", "OFF", "y", "N", "0755",
                     "0x1F", "0o17", "0b101", "1e5", "1E400", "99999999999999999999", "٣٤"]),
)


@given(word=WORDS, flow=st.booleans())
def test_plain_word_shortcut_agrees_with_the_full_rules(word: str, flow: bool) -> None:
    """The emitter's shortcut for plain words never writes a value the full rules would quote."""
    from secretops.stores._yamlscalar import plain_word, render_str_inline

    if plain_word(word):
        assert render_str_inline(word, flow) == word


@given(word=WORDS)
def test_plain_string_shortcut_agrees_with_resolving(word: str) -> None:
    """The reader's shortcut for plain words never takes a number, bool or null for a string."""
    from secretops.stores._yamlscalar import plain_string, resolve_plain

    if plain_string(word):
        assert resolve_plain(word) == word and type(resolve_plain(word)) is str
