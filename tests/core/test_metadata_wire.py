"""The ``sops:`` block's key lists, in sops's own order (``stores/stores.go``'s ``metadata`` and
``keygroup`` structs): every kind sops writes survives a read and a write — whether or not a
key source of secretops uses it — at its place, with its fields in their order.

A kind missing from the wire format is silently dropped on the next write (a file sops wrote for
a HuaweiCloud key lost its ``hckms`` entry after ``secretops set``), so this table is sops's,
written out here rather than read from the module under test.
"""

from __future__ import annotations

import pytest

from secretops.core.metadata import Metadata
from secretops.core.tree import Branch, Seq

# (kind, one entry's fields in sops's order): the top-level order of stores.go's metadata struct
SOPS_TOP = [
    ("kms", {"arn": "arn:aws:kms:us-east-1:1:key/k", "created_at": "t", "enc": "e",
             "aws_profile": ""}),
    ("gcp_kms", {"resource_id": "projects/p/locations/l/keyRings/r/cryptoKeys/k",
                 "created_at": "t", "enc": "e"}),
    ("hckms", {"key_id": "tr-west-1:0a1b2c3d", "created_at": "t", "enc": "e"}),
    ("azure_kv", {"vault_url": "https://v.vault.azure.net", "name": "n", "version": "v",
                  "created_at": "t", "enc": "e"}),
    ("hc_vault", {"vault_address": "http://127.0.0.1:8200", "engine_path": "transit",
                  "key_name": "k", "created_at": "t", "enc": "e"}),
    ("age", {"recipient": "age1x", "enc": "e"}),
]
PGP = ("pgp", {"created_at": "t", "enc": "e", "fp": "F00"})
# inside key_groups: pgp first, hc_vault and age always written
SOPS_GROUP = [PGP, *SOPS_TOP]


def _wire(kinds: list[tuple[str, dict[str, str]]]) -> Branch:
    return Branch((kind, Seq([Branch(fields.items())])) for kind, fields in kinds)


def _items(branch: Branch) -> dict[str, object]:
    return {k: v for k, v in branch}


def _single(kinds: list[tuple[str, dict[str, str]]]) -> Branch:
    out = _wire(kinds)
    out += [("lastmodified", "2026-01-01T00:00:00Z"), ("mac", "m"), ("version", "3.11.0")]
    return out


@pytest.mark.parametrize("kind", [k for k, _ in SOPS_TOP])
def test_each_kind_alone_survives_a_rewrite(kind: str) -> None:
    fields = dict(SOPS_TOP)[kind]
    wire = _single([(kind, fields)])
    again = Metadata.from_wire(wire).to_wire()
    assert list(again) == list(wire)


def test_all_kinds_keep_sops_top_level_order() -> None:
    # written in reverse: the rewrite puts them in sops's order
    wire = _single(list(reversed(SOPS_TOP)))
    again = Metadata.from_wire(wire).to_wire()
    assert [k for k, _ in again][:len(SOPS_TOP)] == [k for k, _ in SOPS_TOP]
    assert _items(again)["hckms"] == Seq([Branch(dict(SOPS_TOP)["hckms"].items())])


def test_key_groups_keep_every_kind_in_sops_group_order() -> None:
    groups = Seq([_wire(list(reversed(SOPS_GROUP))), _wire([("age", {"recipient": "a",
                                                                      "enc": "e"})])])
    wire = Branch([("shamir_threshold", 2), ("key_groups", groups), ("lastmodified", "x"),
                   ("mac", "m"), ("version", "3.11.0")])
    again = _items(Metadata.from_wire(wire).to_wire())
    first, second = again["key_groups"]
    assert [k for k, _ in first] == [k for k, _ in SOPS_GROUP]
    assert [k for k, _ in second] == ["hc_vault", "age"]  # the two sops always writes
