"""The side-by-side harness itself: it sees agreement and it sees a difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.sidebyside import assert_same, run_both
from tests.helpers import AgeKey, secretops

PLAIN = "user: admin\npassword: hunter2\n"


@pytest.fixture
def enc(age_key: AgeKey, tmp_path: Path) -> bytes:
    (tmp_path / "s.yaml").write_text(PLAIN)
    r = secretops("encrypt", "--age", age_key.recipient, str(tmp_path / "s.yaml"))
    assert r.code == 0, r.err
    return r.out


def test_decrypt_subcommand_agrees(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["decrypt", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok
    assert_same(pair, stdout="bytes", files="bytes")


def test_the_harness_sees_a_difference(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """`--version` prints different text: assert_same must fail on it."""
    pair = run_both(sops_bin, ["--version"], {}, tmp_path)
    with pytest.raises(AssertionError):
        assert_same(pair, stdout="bytes", files="bytes")
