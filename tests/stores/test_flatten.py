"""Metadata flattening for flat formats and Go's ValToString."""

from __future__ import annotations

import pytest

from secretops.core.tree import Branch, Seq
from secretops.core.values import Timestamp
from secretops.errors import MetadataError
from secretops.stores._flatten import (
    flatten_metadata,
    go_float_g,
    unflatten_metadata,
    val_to_string,
)


def test_flatten_and_back() -> None:
    wire = Branch([
        ("kms", Seq([Branch([("arn", "arn:x"), ("context", {"b": "2", "a": "1"}),
                             ("aws_profile", "")])])),
        ("key_groups", Seq([Branch([("hc_vault", Seq()), ("age", Seq())])])),
        ("shamir_threshold", 3), ("mac_only_encrypted", False), ("version", "3.11.0"),
    ])  # fmt: skip
    flat = flatten_metadata(wire)
    assert flat == [
        ("kms__list_0__map_arn", "arn:x"),
        ("kms__list_0__map_context__map_a", "1"),
        ("kms__list_0__map_context__map_b", "2"),
        ("kms__list_0__map_aws_profile", ""),
        ("shamir_threshold", "3"),
        ("mac_only_encrypted", "false"),
        ("version", "3.11.0"),
    ]
    back = unflatten_metadata(flat)
    assert back.get("kms") == [[("arn", "arn:x"), ("context", [("a", "1"), ("b", "2")]),
                                ("aws_profile", "")]]  # fmt: skip
    assert back.get("shamir_threshold") == 3 and back.get("mac_only_encrypted") is False


def test_unflatten_list_positions_and_float_threshold() -> None:
    back = unflatten_metadata([("age__list_1__map_enc", "b"), ("age__list_0__map_enc", "a"),
                               ("shamir_threshold", "2.0")])  # fmt: skip
    assert back == [("age", [[("enc", "a")], [("enc", "b")]]), ("shamir_threshold", 2)]


def test_bad_threshold() -> None:
    with pytest.raises(MetadataError):
        unflatten_metadata([("shamir_threshold", "2.5")])


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.5, "1.5"), (100.0, "100"), (123456.0, "123456"), (1234567.0, "1.234567E+06"),
     (0.0001, "0.0001"), (1e-5, "1E-05"), (0.0, "0"), (-0.0, "-0"), (1e100, "1E+100"),
     (float("inf"), "+Inf")],
)  # fmt: skip
def test_go_float_g(value: float, text: str) -> None:
    assert go_float_g(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(100.0, "100.0"), (-0.0, "-0.0"), (1e-5, "1E-05"), (True, "true"), (7, "7"),
     (None, "<nil>"), (b"hi", "[104 105]"), (Timestamp("2001-12-14T21:59:43.1-05:00"),
     "2001-12-14T21:59:43-05:00"), ("s", "s")],
)  # fmt: skip
def test_val_to_string(value: object, text: str) -> None:
    assert val_to_string(value) == text
