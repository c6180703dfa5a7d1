"""The file commands end without the interpreter's module teardown (``secretops.cli._exit_now``),
with everything a normal exit does for the user: output flushed, the exit status kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import AgeKey, encrypted_tree, secretops


def _verbose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -v`` prints ``# cleanup[…]``/``# destroy`` lines while it tears modules down."""
    return subprocess.run([sys.executable, "-v", "-m", "secretops", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, cwd=cwd)


@pytest.fixture
def tree(tmp_path: Path, age_key: AgeKey) -> Path:
    encrypted_tree(tmp_path, age_key.recipient, 4)
    return tmp_path


@pytest.mark.parametrize("command", [["check"], ["rotate", "-i"], ["decrypt", "-i"]])
def test_a_many_file_run_skips_the_teardown(tree: Path, command: list[str]) -> None:
    p = _verbose(*command, "-j", "2", "s", cwd=tree)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "# cleanup[" not in p.stderr and "# destroy " not in p.stderr
    if command[0] != "check":  # every file's line and the summary, all flushed
        assert len(p.stdout.splitlines()) == 5, p.stdout


def test_the_exit_status_is_kept(tree: Path) -> None:
    """A run whose only file fails exits with that file's status, as ``decrypt FILE`` does."""
    text = (tree / "s" / "f0.yaml").read_text()
    at = text.index("data:") + 5
    (tree / "s" / "bad").mkdir()
    bad = tree / "s" / "bad" / "f.yaml"
    bad.write_text(text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:])
    p = _verbose("decrypt", "-i", "s/bad", cwd=tree)
    assert "# cleanup[" not in p.stderr
    assert p.returncode == secretops("decrypt", str(bad), cwd=tree).code != 0


def test_other_commands_exit_as_python_does(tree: Path) -> None:
    p = _verbose("filestatus", "s/f0.yaml", cwd=tree)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "# cleanup[" in p.stderr
