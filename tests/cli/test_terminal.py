"""What commands do on a terminal: updatekeys asks (real ptys). The progress bar of many-file
runs: tests/cli/test_many_keys.py."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import AgeKey, make_age_key, secretops

TEXT = "password: s3cret\n"


def _on_terminal(args: list[str], answers: dict[bytes, bytes] | None = None,
                 cwd: Path | None = None) -> tuple[int, bytes]:
    """Run ``secretops ARGS`` with stdin, stdout and stderr on a pty; answer prompts."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "secretops", *args], stdin=slave,
                            stdout=slave, stderr=slave, cwd=cwd)
    os.close(slave)
    seen = b""
    pending = dict(answers or {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            if not chunk and proc.poll() is not None:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
        for prompt in list(pending):
            if prompt in seen:
                os.write(master, pending.pop(prompt))
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, seen


def _setup(tmp_path: Path, age_key: AgeKey, n: int) -> list[Path]:
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key.recipient}\n")
    files = []
    for i in range(n):
        f = tmp_path / f"s{i}.yaml"
        f.write_text(TEXT)
        assert secretops("encrypt", "-i", str(f)).code == 0
        files.append(f)
    return files


def test_updatekeys_asks_on_a_terminal(tmp_path: Path, age_key: AgeKey) -> None:
    (f,) = _setup(tmp_path, age_key, 1)
    new = make_age_key(tmp_path, "new.txt")
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {age_key.recipient},{new.recipient}\n")
    before = f.read_bytes()
    code, seen = _on_terminal(["updatekeys", str(f)], {b"Apply these changes?": b"n\n"})
    assert code == 0, seen
    assert f"+ age recipient {new.recipient}".encode() in seen
    assert f.read_bytes() == before
    code, seen = _on_terminal(["updatekeys", str(f)], {b"Apply these changes?": b"y\n"})
    assert code == 0 and b"keys updated" in seen
    assert new.recipient in f.read_text()
