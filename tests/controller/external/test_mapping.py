"""Remote values → Secret data: property, decoding, dataFrom, templates, hash; value-free errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from secretops_controller.external.mapping import (
    HASH_ANNOTATION,
    MappingError,
    build,
    parse_spec,
    secret_key,
)
from secretops_controller.external.provider import FindRef, RemoteRef, RemoteValue
from secretops_controller.external.scheduler import Snapshot

from tests.helpers import CANARY


def snap(values: dict[RemoteRef, Any], found: dict[FindRef, dict[str, Any]] | None = None,
         missing: set[RemoteRef] | None = None) -> Snapshot:
    return Snapshot({r: RemoteValue(v, "3") for r, v in values.items()},
                    {q: {k: RemoteValue(v, "1") for k, v in f.items()}
                     for q, f in (found or {}).items()},
                    frozenset(missing or ()), {}, frozenset())


VAULT = {"username": "app", "password": CANARY, "db": {"host": "pg", "port": 5432},
         "tls.crt": "CERT", "b64": base64.b64encode(b"\x00bin").decode()}


def test_properties_nested_paths_and_whole_values() -> None:
    spec = parse_spec({
        "secretStoreRef": {"name": "vault"},
        "data": [
            {"secretKey": "user", "remoteRef": {"key": "app/db", "property": "username"}},
            {"secretKey": "host", "remoteRef": {"key": "app/db", "property": "db.host"}},
            {"secretKey": "port", "remoteRef": {"key": "app/db", "property": "db.port"}},
            {"secretKey": "crt", "remoteRef": {"key": "app/db", "property": "tls.crt"}},
            {"secretKey": "all", "remoteRef": {"key": "app/db"}},
            {"secretKey": "raw", "remoteRef": {"key": "aws/raw"}},
            {"secretKey": "bin", "remoteRef": {"key": "app/db", "property": "b64",
                                               "decodingStrategy": "Base64"}},
            {"secretKey": "json", "remoteRef": {"key": "aws/json", "property": "a.b"}},
        ],
    })
    assert spec.wants() == {RemoteRef("app/db"), RemoteRef("aws/raw"), RemoteRef("aws/json")}
    out = build(spec, snap({RemoteRef("app/db"): VAULT, RemoteRef("aws/raw"): b"plain",
                            RemoteRef("aws/json"): b'{"a": {"b": "deep"}}'}))
    assert out.data["user"] == b"app" and out.data["host"] == b"pg"
    assert out.data["port"] == b"5432" and out.data["crt"] == b"CERT"  # exact key before dots
    assert json.loads(out.data["all"]) == VAULT
    assert out.data["raw"] == b"plain" and out.data["bin"] == b"\x00bin"
    assert out.data["json"] == b"deep"
    assert HASH_ANNOTATION not in out.annotations  # the caller adds the keyed fingerprint
    assert out.versions == {"app/db": "3", "aws/json": "3", "aws/raw": "3"}
    assert CANARY not in repr(out)


@pytest.mark.parametrize(("strategy", "raw", "want"), [
    ("None", b"aGk=", b"aGk="),
    ("Base64", b"aGk=", b"hi"),
    ("Base64URL", base64.urlsafe_b64encode(b"\xfb\xff").rstrip(b"="), b"\xfb\xff"),
    ("Auto", b"aGk=", b"hi"),
    ("Auto", base64.urlsafe_b64encode(b"\xfb\xff"), b"\xfb\xff"),
    ("Auto", b"not base64!", b"not base64!"),
])
def test_decoding_strategies(strategy: str, raw: bytes, want: bytes) -> None:
    spec = parse_spec({"data": [{"secretKey": "k", "remoteRef": {
        "key": "x", "decodingStrategy": strategy}}]})
    assert build(spec, snap({RemoteRef("x"): raw})).data["k"] == want


def test_data_from_extract_and_find_then_data_wins() -> None:
    spec = parse_spec({
        "dataFrom": [{"extract": {"key": "app/db"}},
                     {"find": {"path": "app/", "name": {"regexp": "^app/c"}}}],
        "data": [{"secretKey": "username", "remoteRef": {"key": "app/other"}}],
    })
    q = FindRef("app/", "^app/c")
    assert spec.wants() == {RemoteRef("app/db"), RemoteRef("app/other"), q}
    out = build(spec, snap({RemoteRef("app/db"): VAULT, RemoteRef("app/other"): b"override"},
                           {q: {"app/cache": b"c1", "app/certs/x": b"c2"}}))
    assert out.data["password"] == CANARY.encode() and out.data["username"] == b"override"
    assert json.loads(out.data["db"]) == {"host": "pg", "port": 5432}
    assert out.data["app_cache"] == b"c1" and out.data["app_certs_x"] == b"c2"
    assert secret_key("/a b/c") == "a_b_c"


def test_templates_with_go_forms_merge_policy_and_metadata() -> None:
    base = {"data": [{"secretKey": "password", "remoteRef": {"key": "db", "property": "password"}},
                     {"secretKey": "user", "remoteRef": {"key": "db", "property": "username"}}]}
    tpl = {"type": "kubernetes.io/basic-auth",
           "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
           "data": {"dsn": "postgres://{{ .user }}:{{ .password }}@pg/app",
                    "hash": "{{ .password | sha256sum }}"}}
    values = {RemoteRef("db"): VAULT}
    out = build(parse_spec({**base, "target": {"template": tpl}}), snap(values))
    assert sorted(out.data) == ["dsn", "hash"]  # Replace: only the rendered keys
    assert out.data["dsn"] == f"postgres://app:{CANARY}@pg/app".encode()
    assert out.type == "kubernetes.io/basic-auth"
    assert out.labels["team"] == "a" and out.annotations["note"] == "x"
    merged = build(parse_spec({**base, "target": {"template": {**tpl, "mergePolicy": "Merge"}}}),
                   snap(values))
    assert sorted(merged.data) == ["dsn", "hash", "password", "user"]


def test_errors_name_the_field_and_never_a_value() -> None:
    cases = [
        ({"data": [{"secretKey": "k", "remoteRef": {"key": "db", "property": "nope"}}]},
         "spec.data[0].remoteRef.property"),
        ({"data": [{"secretKey": "k", "remoteRef": {"key": "db", "property": "password",
                                                    "decodingStrategy": "Base64"}}]},
         "spec.data[0].remoteRef.decodingStrategy"),
        ({"data": [{"secretKey": "k", "remoteRef": {"key": "gone"}}]},
         "spec.data[0].remoteRef.key"),
        ({"dataFrom": [{"extract": {"key": "raw"}}]}, "spec.dataFrom[0].extract"),
        ({"data": [{"secretKey": "k", "remoteRef": {"key": "db", "property": "password"}}],
          "target": {"template": {"data": {"x": "{{ .password | nosuchfilter }}"}}}},
         "spec.target.template.data"),
        ({"data": [{"secretKey": "k", "remoteRef": {"key": "db", "property": "password"}}],
          "target": {"template": {"data": {"x": "{{ .password.__class__ }}"}}}},
         "spec.target.template.data"),
    ]
    for spec, path in cases:
        with pytest.raises(MappingError) as e:
            build(parse_spec(spec), snap({RemoteRef("db"): VAULT,
                                          RemoteRef("raw"): CANARY.encode()},
                                         missing={RemoteRef("gone")}))
        assert e.value.path is not None and e.value.path.startswith(path), (e.value, path)
        assert CANARY not in str(e.value)
    for bad, path in [({"data": [{"secretKey": "k", "remoteRef": {}}]}, "spec.data[0].remoteRef"),
                      ({"dataFrom": [{"find": {"name": {"regexp": "("}}}]},
                       "spec.dataFrom[0].find.name.regexp"),
                      ({"data": [{"secretKey": "k", "remoteRef": {
                          "key": "x", "decodingStrategy": "Hex"}}]},
                       "spec.data[0].remoteRef.decodingStrategy")]:
        with pytest.raises(MappingError) as e:
            parse_spec(bad)
        assert e.value.path == path
