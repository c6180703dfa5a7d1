"""Run one command line with the real sops and with secretops, side by side (issue 17).

A *form* is an argv as a sops user types it, without the program name. ``run_both`` copies
the same files into two fresh directories, runs ``sops <argv>`` in one and
``secretops <argv>`` in the other (same environment, same stdin, no terminal), and returns
what each did: exit code, stdout, stderr and every file of its directory afterwards.

Ciphertext differs between any two runs (random IVs and data keys), so comparisons are by
meaning: ``decrypted`` reads an encrypted file back with secretops (the interop suite proves
secretops and sops read each other's files); ``data`` parses plaintext by format. A test then
states what must be equal: ``assert_same(pair, stdout="data", files="decrypted")``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.helpers import data_of

TIMEOUT = 60  # a hang guard, not a timing assertion


@dataclass
class Side:
    """What one program did: its exit code and output, and its directory's files afterwards."""

    name: str
    code: int
    out: bytes
    err: str
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass
class Pair:
    sops: Side
    ours: Side
    before: dict[str, bytes]

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return "\n".join(
            f"--- {s.name}: exit {s.code}\nstdout: {s.out[:600]!r}\nstderr: {s.err[:600]}"
            for s in (self.sops, self.ours)
        )


def _snapshot(directory: Path) -> tuple[dict[str, bytes], dict[str, int]]:
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and not p.is_symlink():
            rel = p.relative_to(directory).as_posix()
            files[rel] = p.read_bytes()
            modes[rel] = p.stat().st_mode & 0o777
    return files, modes


def _run(name: str, program: list[str], argv: list[str], cwd: Path, env: Mapping[str, str],
         stdin: bytes | None) -> Side:
    p = subprocess.run(
        [*program, *argv], cwd=cwd, env=dict(env), input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, timeout=TIMEOUT,
    )
    files, modes = _snapshot(cwd)
    return Side(name, p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"), files, modes)


def run_both(sops_bin: str, argv: list[str], files: Mapping[str, bytes | str], tmp: Path, *,
             env: Mapping[str, str] | None = None, stdin: bytes | None = None,
             after: Callable[[str], None] | None = None) -> Pair:
    """Run ``sops argv`` and ``secretops argv`` in two copies of ``files`` (paths relative to
    the working directory). ``env`` defaults to the test's environment (isolated by conftest);
    ``{dir}`` in an argv item or env value becomes that side's working directory. ``after``
    is called with the side's name (``sops``, ``secretops``) once it has run: for commands
    whose effect is on a server, it collects that effect and clears it for the other side."""
    before = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    base = dict(os.environ if env is None else env)
    sides = []
    for name, program in (("sops", [sops_bin]), ("secretops", [sys.executable, "-m", "secretops"])):
        d = tmp / f"side-{name}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for rel, content in before.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(content)
        side_env = {k: v.replace("{dir}", str(d)) for k, v in base.items()}
        side_argv = [a.replace("{dir}", str(d)) for a in argv]
        sides.append(_run(name, program, side_argv, d, side_env, stdin))
        if after is not None:
            after(name)
    return Pair(sides[0], sides[1], before)


Compare = Literal["bytes", "data", "decrypted", "ignore"]


def decrypted(content: bytes, fmt: str) -> Any:
    """The plaintext data of an encrypted file, read back by secretops (keys from the env)."""
    from secretops import api

    return data_of(api.decrypt(content, format=fmt), fmt)


def _view(content: bytes, how: Compare, fmt: str) -> Any:
    if how == "bytes" or (not content and how != "ignore"):
        return content  # no output is compared as it is (rotate -i prints nothing)
    if how == "data":
        return data_of(content, fmt)
    if how == "decrypted":
        return decrypted(content, fmt)
    return None


def assert_same(pair: Pair, *, code: bool = True, stdout: Compare = "bytes",
                files: Compare = "bytes", fmt: str = "yaml",
                file_formats: Mapping[str, str] | None = None,
                per_file: Mapping[str, Compare] | None = None, modes: bool = True) -> None:
    """Both sides ended alike: same exit status class (0 / non-zero, or the exact code when
    ``code``), the same stdout and the same files (compared as ``stdout``/``files`` say, or
    as ``per_file`` says for a file; ``file_formats`` names a file's format when its extension
    does not). ``modes=False`` leaves the files' permission bits to the test (where secretops
    is stricter on purpose)."""
    s, o = pair.sops, pair.ours
    if code:
        assert s.code == o.code, pair
    else:
        assert (s.code == 0) == (o.code == 0), pair
    if stdout != "ignore" and s.ok:
        assert _view(s.out, stdout, fmt) == _view(o.out, stdout, fmt), pair
    if files != "ignore":
        assert sorted(s.files) == sorted(o.files), (sorted(s.files), sorted(o.files))
        for rel in s.files:
            ffmt = (file_formats or {}).get(rel) or _format_of(rel)
            how: Compare = ("bytes" if s.files[rel] == pair.before.get(rel)
                            else (per_file or {}).get(rel, files))
            if how == "bytes" and s.files[rel] == pair.before.get(rel):
                assert o.files[rel] == pair.before[rel], f"{rel}: sops left it untouched\n{pair}"
            else:
                assert _view(s.files[rel], how, ffmt) == _view(o.files[rel], how, ffmt), (
                    f"{rel} differs\n{pair}")
            if modes:
                assert s.modes[rel] == o.modes[rel], (
                    f"{rel}: mode {s.modes[rel]:o} vs {o.modes[rel]:o}")


def _format_of(rel: str) -> str:
    from secretops.stores import format_for_path

    return format_for_path(rel)
