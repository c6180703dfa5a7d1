"""Encrypting and decrypting make no reference cycles.

The ``secretops`` entry point turns the cyclic garbage collector off for plain encrypt/decrypt
(it would only rescan the growing trees), and the controller decrypts in a long-lived process:
both rely on every object here being freed by reference counting, data keys included.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import secretops
from tests.helpers import AgeKey

FIDELITY = Path(__file__).parent / "testdata" / "fidelity"


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("name", sorted(p.name for p in FIDELITY.glob("*.yaml")))
def test_no_reference_cycles(name: str, age_key: AgeKey, no_collector: None) -> None:
    plain = (FIDELITY / name).read_bytes()
    enc = secretops.encrypt(plain, format="yaml", age=[age_key.recipient])
    assert secretops.decrypt(enc, format="yaml") == plain
    assert gc.collect() == 0
