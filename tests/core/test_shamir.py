"""Shamir over GF(2^8) in sops's layout (x = group index + 1, trailing x byte)."""

from __future__ import annotations

import itertools
import os

import pytest

from secretops.core.shamir import combine, split


@pytest.mark.parametrize(("parts", "threshold"), [(2, 2), (3, 2), (5, 3), (4, 4)])
def test_any_threshold_subset_recovers(parts: int, threshold: int) -> None:
    secret = os.urandom(32)
    shares = split(secret, parts, threshold, os.urandom)
    assert [s[-1] for s in shares] == list(range(1, parts + 1))
    assert all(len(s) == 33 for s in shares)
    for subset in itertools.combinations(shares, threshold):
        assert combine(list(subset)) == secret


def test_fewer_than_threshold_does_not_recover() -> None:
    secret = os.urandom(32)
    shares = split(secret, 3, 3, os.urandom)
    assert combine(shares[:2]) != secret


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        split(b"k", 2, 3, os.urandom)
    with pytest.raises(ValueError):
        combine([b"\x01\x01", b"\x02\x01"])  # duplicate x coordinate
