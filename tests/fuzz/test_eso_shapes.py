"""convert-eso on hostile input shapes: every field of the right name with a value of any
shape, and the test vectors with subtrees replaced. No traceback, ever: each manifest is
translated, passed through, or refused with issues that name a path (issue 15 item 12: a Vault
store whose ``auth`` was a scalar crashed). The default profile replays the same examples;
``HYPOTHESIS_PROFILE=explore`` draws new ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from secretops.eso import KINDS, convert_all
from secretops.sealing.serialize import load_documents
from tests.helpers import secretops

DATA = Path(__file__).parent.parent / "testdata" / "eso"
VECTORS = [d for f in sorted(DATA.glob("*.yaml"))
           for d in load_documents(f.read_bytes(), f.name)]
NAMES = ["spec", "provider", "vault", "aws", "auth", "tokenSecretRef", "appRole", "kubernetes",
         "serviceAccountRef", "secretRef", "name", "key", "namespace", "roleId", "role", "path",
         "server", "version", "region", "service", "target", "template", "data", "dataFrom",
         "metadata", "labels", "annotations", "type", "engineVersion", "mergePolicy",
         "secretKey", "remoteRef", "property", "extract", "find", "rewrite", "tags", "regexp",
         "refreshInterval", "refreshPolicy", "secretStoreRef", "kind", "conditions",
         "namespaces", "audiences", "creationPolicy", "deletionPolicy", "immutable",
         "decodingStrategy", "conversionStrategy", "sourceRef", "jwt", "mountPath"]
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(),
                    st.text(max_size=12), st.sampled_from(["v2", "Base64", "{{ .a }}", "{{"]))
_TREE = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), inner,
                    max_size=5)), max_leaves=25)


@st.composite
def _manifest(draw: st.DrawFn) -> dict[str, Any]:
    doc = {"apiVersion": draw(st.sampled_from(["external-secrets.io/v1",
                                               "external-secrets.io/v1beta1",
                                               "external-secrets.io/v1alpha1"])),
           "kind": draw(st.sampled_from([*KINDS, "PushSecret"])),
           "metadata": draw(st.one_of(_TREE, st.just({"name": "n", "namespace": "ns"}))),
           "spec": draw(_TREE)}
    return doc


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def _mutated_vector(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(VECTORS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)[1:] or [("spec",)]))
        node = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = draw(_TREE)
    return dict(doc)


def _check(docs: list[dict[str, Any]]) -> None:
    out, issues = convert_all(docs)
    assert all(isinstance(o, dict) for o in out)
    assert all(i.path and i.message for i in issues)
    json.dumps(out)  # what is written can be written


@given(st.lists(_manifest(), min_size=1, max_size=3))
def test_any_shape_is_translated_or_refused(docs: list[dict[str, Any]]) -> None:
    _check(docs)


@given(_mutated_vector())
def test_mutated_vectors_are_translated_or_refused(doc: dict[str, Any]) -> None:
    _check([doc])


def test_the_cli_on_hostile_shapes_answers_in_one_line_per_path() -> None:
    docs = [{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
             "metadata": {"name": "s", "namespace": "n"},
             "spec": {"provider": {"vault": {"server": "https://v", "path": "kv",
                                             "auth": "token"}}}},
            {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
             "metadata": ["not", "a", "mapping"], "spec": {"secretStoreRef": {"name": 5},
                                                          "data": 7, "dataFrom": "x"}}]
    r = secretops("convert-eso", input=json.dumps({"kind": "List", "items": docs}).encode())
    assert r.code == 170 and r.out == b"", r.err
    assert "Traceback" not in r.err
    assert "SecretStore n/s: spec.provider.vault.auth: not translated: a mapping was expected, " \
           "not a string" in r.err
