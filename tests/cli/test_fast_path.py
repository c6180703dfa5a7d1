"""The click-free fast path parses exactly what click would, and defers everything else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from secretops.cli._fast import parse
from tests.helpers import AgeKey, run


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["decrypt", "f.yaml"], ("decrypt", {"file": "f.yaml"})),
        (["decrypt", "--extract", '["a"]', "--ignore-mac", "f.yaml"],
         ("decrypt", {"file": "f.yaml", "extract": '["a"]', "ignore_mac": True})),
        (["decrypt", "--input-type=json", "-i", "f"],
         ("decrypt", {"file": "f", "input_type": "json", "in_place": True})),
        (["encrypt", "--age", "age1x", "--encrypted-regex", "^data$", "f.yaml"],
         ("encrypt", {"file": "f.yaml", "age": "age1x", "encrypted_regex": "^data$"})),
        (["decrypt"], ("decrypt", {})),
    ],
)
def test_recognised(argv: list[str], expected: tuple[str, dict[str, object]]) -> None:
    assert parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [], ["--help"], ["decrypt", "--help"], ["decrypt", "-h"], ["keygen"],
        ["decrypt", "--output"], ["decrypt", "--input-type", "toml", "f"],
        ["decrypt", "a", "b"], ["decrypt", "--ignore-mac", "--ignore-mac", "f"],
        ["decrypt", "--nope", "f"], ["encrypt", "--extract", "x", "f"], ["decrypt", "--", "f"],
        ["decrypt", "--ignore-mac=yes", "f"],
    ],
)
def test_deferred_to_click(argv: list[str]) -> None:
    assert parse(argv) is None


def _both(args: list[str], tmp_path: Path) -> tuple[object, object]:
    """Run via the entry point (fast path) and via click directly."""
    fast = run([sys.executable, "-m", "secretops", *args], cwd=tmp_path)
    slow = run([sys.executable, "-c", "from secretops.cli.app import cli; "
                "cli(prog_name='secretops')", *args], cwd=tmp_path)
    return fast, slow


def test_same_results_both_paths(tmp_path: Path, age_key: AgeKey) -> None:
    src = tmp_path / "s.yaml"
    src.write_text("data:\n  password: p\nother: x\n")
    fast, slow = _both(["encrypt", "--age", age_key.recipient, "--encrypted-regex", "^data$",
                        str(src)], tmp_path)
    assert fast.code == slow.code == 0  # type: ignore[attr-defined]
    enc = tmp_path / "s.enc.yaml"
    enc.write_bytes(fast.out)  # type: ignore[attr-defined]
    for args in (["decrypt", str(enc)], ["decrypt", "--extract", '["data"]["password"]', str(enc)],
                 ["decrypt", "--output-type", "json", str(enc)],
                 ["decrypt", str(tmp_path / "missing.yaml")], ["decrypt", str(src)]):
        fast, slow = _both(args, tmp_path)
        assert (fast.code, fast.out, fast.err) == (slow.code, slow.out, slow.err), args  # type: ignore[attr-defined]
