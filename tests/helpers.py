"""Helpers for tests: running the CLI and the real sops binary, making keys, reading data."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTDATA = Path(__file__).parent / "testdata"
CANARY = "canary-Pl41nT3xt-7f3a9"  # a plaintext that must never show up in logs or errors
SLICE = 8  # a run of this many characters of the canary counts as a leak of it


def canary_forms(secret: str = CANARY) -> list[str]:
    """What a leak of ``secret`` may look like, lower-cased: every ``SLICE``-character run of
    it and of its reverse (so slices, ``[1:]``, ``[::-1]``, upper- and lower-casing are all
    caught), of it spaced out (``|list|join(" ")``), and whole: its base64 and its unkeyed
    SHA-256."""
    import base64
    import hashlib

    low = secret.lower()
    runs = {s[i:i + SLICE] for s in (low, low[::-1]) for i in range(len(s) - SLICE + 1)}
    spaced = " ".join(low)
    runs |= {spaced[i:i + 2 * SLICE - 1] for i in range(0, len(spaced) - 2 * SLICE + 2, 2)}
    runs.add(base64.b64encode(secret.encode()).decode().lower())
    runs.add(hashlib.sha256(secret.encode()).hexdigest())
    return sorted(runs)


def canary_leaks(text: str, secret: str = CANARY) -> list[str]:
    """The forms of ``secret`` (see :func:`canary_forms`) found in ``text``."""
    low = text.lower()
    return [f for f in canary_forms(secret) if f in low]


def assert_no_canary(text: str, where: str, secret: str = CANARY) -> None:
    """Neither the canary nor anything computed from it (a slice, its reverse, another case,
    its base64 or SHA-256) in ``text``; ``where`` says what ``text`` is."""
    found = canary_leaks(text, secret)
    assert not found, f"the canary leaked into {where}: {found[:3]}"


@dataclass
class AgeKey:
    path: Path
    recipient: str
    secret: str


def make_age_key(directory: Path, name: str = "key.txt") -> AgeKey:
    from pyrage import x25519

    ident = x25519.Identity.generate()
    path = directory / name
    path.write_text(f"# public key: {ident.to_public()}\n{ident}\n")
    path.chmod(0o600)
    return AgeKey(path, str(ident.to_public()), str(ident))


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")


def run(args: list[str], *, input: bytes | None = None, env: dict[str, str] | None = None,
        cwd: str | Path | None = None) -> Result:
    """Run a command with no terminal on stdin (stdin is DEVNULL unless input is given)."""
    p = subprocess.run(
        args,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env or dict(os.environ),
        cwd=cwd,
        timeout=60,
    )
    return Result(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))


def secretops(*args: str, input: bytes | None = None, cwd: str | Path | None = None) -> Result:
    return run([sys.executable, "-m", "secretops", *args], input=input, cwd=cwd)


def encrypted_tree(directory: Path, recipient: str, count: int) -> None:
    """``count`` files ``s/f{n}.yaml`` under ``directory``, encrypted to ``recipient`` by the
    rule of a ``.sops.yaml`` there (one many-file ``encrypt -i``)."""
    (directory / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: s/.*\\.yaml$\n    age: {recipient}\n")
    (directory / "s").mkdir()
    for n in range(count):
        (directory / "s" / f"f{n}.yaml").write_text(f"a: {n}\n")
    assert secretops("encrypt", "-i", "s", cwd=directory).code == 0


def sops(sops_bin: str, *args: str, input: bytes | None = None,
         cwd: str | Path | None = None) -> Result:
    return run([sops_bin, *args], input=input, cwd=cwd)


def data_of(content: bytes, fmt: str) -> Any:
    """The data of a plaintext file as sops sees it (comments dropped, order kept)."""
    from secretops.core.tree import to_plain
    from secretops.stores import get_store

    docs = get_store(fmt).load(content).docs
    return [to_plain(d) for d in docs]


def git(repo: Path, *args: str, date: str | None = None) -> str:
    """Run git in ``repo`` (no terminal, no signing); ``date`` sets author and committer date."""
    env = dict(os.environ)
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    p = subprocess.run(["git", "-C", str(repo), *args], stdin=subprocess.DEVNULL,
                       capture_output=True, env=env, timeout=60, check=True)
    return p.stdout.decode()


def git_init(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.name", "Test"), ("user.email", "test@example.invalid"),
                       ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    return repo


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a server we started, by its PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
