"""The harness catches what it promises to: a hang inside C code, an allocation past the
memory bound, growth past it, a crash, an untyped exception (saved as a seed) — and lets typed
errors through. Each check runs a small target that does exactly the bad thing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from secretops.errors import ExitCode, SecretOpsError
from tests.fuzz.harness import FuzzFailure, Target, run_input


def _c_loop(_: bytes) -> None:
    sum(range(10**15))  # one C call: a signal handler would never get to run


def _allocate(_: bytes) -> None:
    bytearray(8 << 30)


def _grow(_: bytes) -> None:
    blob = bytearray(200 << 20)
    blob[::4096] = b"x" * len(blob[::4096])  # touched: resident, not only reserved


def _segfault(_: bytes) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _untyped(data: bytes) -> None:
    {}[data]  # a KeyError, as a parser that forgot a check raises


def _typed(_: bytes) -> None:
    raise SecretOpsError("refused", code=ExitCode.INVALID_INPUT)


@pytest.fixture
def saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SECRETOPS_FUZZ_SAVE_DIR", str(tmp_path / "saved"))
    return tmp_path / "saved"


def test_a_loop_inside_c_code_is_stopped(saved: Path) -> None:
    began = time.monotonic()
    with pytest.raises(FuzzFailure, match="hang: no answer within 1 s"):
        run_input(Target("t-loop", _c_loop), b"x", time_limit=1)
    assert time.monotonic() - began < 30  # stopped, not run to its end (hours)


def _starved(_: bytes) -> None:
    """A quarter second of CPU work on a CPU shared with two busier processes."""
    import sys

    os.sched_setaffinity(0, {0})
    spin = "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass\n"
    for _ in range(2):  # in the child's process group: killed with it afterwards
        subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.DEVNULL)
    os.nice(5)  # after starting them: they keep the usual priority
    time.sleep(0.2)
    end = time.process_time() + 0.25
    while time.process_time() < end:
        pass


def test_a_starved_input_is_not_a_hang(saved: Path) -> None:
    # its time in the run queue is not its own: on a busy machine the long run reported
    # nice'd inputs that took well under a second of CPU as hangs
    assert run_input(Target("t-starved", _starved), b"x", time_limit=1, wall_factor=60) == "ok"


def test_an_allocation_past_the_bound_fails(saved: Path) -> None:
    with pytest.raises(FuzzFailure, match="MemoryError"):
        run_input(Target("t-alloc", _allocate), b"x", memory_limit=64 << 20)


def test_growth_past_the_bound_fails(saved: Path) -> None:
    with pytest.raises(FuzzFailure, match=r"grew by \d+ MiB \(over 64 MiB\)"):
        run_input(Target("t-grow", _grow), b"x", memory_limit=64 << 20)


def test_a_crash_fails(saved: Path) -> None:
    with pytest.raises(FuzzFailure, match="crash: killed by signal 11"):
        run_input(Target("t-crash", _segfault), b"x")


def test_an_untyped_exception_fails_and_its_input_is_saved(saved: Path) -> None:
    with pytest.raises(FuzzFailure, match=r"untyped builtins\.KeyError") as e:
        run_input(Target("t-untyped", _untyped, ".yaml"), b"key: \xff")
    assert "input: b'key: \\xff'" in str(e.value)
    files = list((saved / "t-untyped").iterdir())
    assert [f.read_bytes() for f in files] == [b"key: \xff"]
    assert files[0].suffix == ".yaml" and str(files[0]) in str(e.value)


def test_typed_errors_pass_and_are_named(saved: Path) -> None:
    assert run_input(Target("t-typed", _typed), b"x") == "SecretOpsError(150)"
    assert run_input(Target("t-ok", lambda _: None), b"x") == "ok"
    assert run_input(Target("t-own", _untyped, typed=(KeyError,)), b"x") == "KeyError"
    assert not saved.exists() or not any(saved.iterdir())


def test_what_a_hung_input_started_is_stopped_with_it(saved: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    def start_and_hang(_: bytes) -> None:
        p = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
        pidfile.write_text(str(p.pid))
        _c_loop(b"")

    with pytest.raises(FuzzFailure, match="hang"):
        run_input(Target("t-orphan", start_and_hang), b"x", time_limit=2)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # dead, waiting for its (adopting) parent to reap it
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the sleep {pid} the hung input started is still running")


def _several(data: bytes) -> None:
    from tests.fuzz.targets import each

    def refuse() -> None:
        raise SecretOpsError("no", code=ExitCode.INVALID_INPUT)

    each(*(refuse if c == ord("r") else (lambda: None) for c in data))


def test_a_target_of_several_calls_names_how_each_ended(saved: Path) -> None:
    # one call refusing must not hide what the others did (the keyservice target runs Decrypt
    # and Encrypt on every input: each input used to be "_Aborted", whichever call refused)
    assert run_input(Target("t-several", _several), b"or") == \
        "SecretOpsError(150) [ok, SecretOpsError(150)]"
    assert run_input(Target("t-several", _several), b"oo") == "ok"
    both = run_input(Target("t-several", _several), b"rr")
    assert "[" not in both  # they all ended alike: the plain name
