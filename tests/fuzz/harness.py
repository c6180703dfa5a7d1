"""The fuzz harness: one input through one target, in a forked child that cannot hang or swell.

A *target* (:class:`Target`) is a function of one input's bytes that calls the parsers a file
reaches from the CLI. :func:`run_input` runs it once, and the input fails when:

* **it raises anything untyped** — only :class:`secretops.errors.SecretOpsError` (and, per
  target, the few typed errors a module documents, e.g. ``CipherError`` below the store layer)
  may escape; an ``AssertionError`` from the target's own checks fails too;
* **it hangs** — the child is killed (``SIGKILL`` to its process group, so a gpg it started
  goes too) once :data:`TIME_LIMIT` seconds have passed, not counting the time it waited
  for a CPU (``/proc/<pid>/schedstat``: on a busy machine a nice'd child can wait most of
  its time in the run queue, and wall clock alone reported such starved inputs as hangs),
  and at the latest after :data:`HANG_WALL_FACTOR` times that of wall clock. A signal handler
  (``signal.setitimer``) would not do: Python runs handlers between bytecodes only, so a tight
  loop inside C code (a regex engine, ``sum(range(10**12))``, the age library's Rust) would
  never see it. A killed process stops wherever it is;
* **it swells** — the child's address space is capped (``RLIMIT_AS``: :data:`MEMORY_LIMIT`
  plus :data:`AS_HEADROOM` for thread stacks that are reserved but not used; an allocation
  past it is a ``MemoryError``, a failure), and its peak resident size may grow by at most
  :data:`MEMORY_LIMIT` over the run (``ru_maxrss``);
* **it crashes** — the child dies of a signal (a segfault, a C stack overflow) or says nothing.

A failing input is printed (its ``repr``, cut) and saved to ``tests/testdata/fuzz/<target>/``
under a name made from what went wrong (the same fault overwrites its file, so when hypothesis
has shrunk the input the file holds the smallest one); the default run replays every file
there (``test_fuzz.py::test_saved_inputs``), so a saved input is a regression seed.

Fork per input costs about 4 ms. The parent imports what the targets need and runs each
target once on a seed before fuzzing (:func:`warm`), so a child inherits a warm process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import json
import os
import re
import resource
import select
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secretops.errors import SecretOpsError

FUZZ_DATA = Path(__file__).parent.parent / "testdata" / "fuzz"
#: Wall-clock seconds one input may take (all the target's calls together): a hang guard, far
#: above what any input takes on a busy 2-core machine (a few ms to ~0.3 s).
TIME_LIMIT = float(os.environ.get("SECRETOPS_FUZZ_TIME_LIMIT", "20"))
#: Wall clock is allowed this many times :data:`TIME_LIMIT` when the child waits for a CPU.
HANG_WALL_FACTOR = float(os.environ.get("SECRETOPS_FUZZ_WALL_FACTOR", "10"))
#: Bytes one input may make the process grow by (peak resident size, and address space).
MEMORY_LIMIT = int(os.environ.get("SECRETOPS_FUZZ_MEMORY_MB", "256")) << 20
#: Address space that may be reserved and never touched: jsonload's and the merge's 512 MiB
#: thread stack (secretops.jsonload.on_big_stack), gpg's and Python's arenas.
AS_HEADROOM = 1 << 30
_MAX_SHOWN = 1500
MAX_SAVED = 8 << 20  # bytes: a seed in the repository is small


class FuzzFailure(AssertionError):
    """An input broke a rule of the harness (the message says which, and shows the input)."""


@dataclass(frozen=True)
class Target:
    """What one input goes through. ``run`` is called in the child with the input's bytes;
    ``typed`` lists exception types allowed to escape besides SecretOpsError; ``ext`` names
    saved inputs."""

    name: str
    run: Callable[[bytes], object]
    ext: str = ".bin"
    typed: tuple[type[BaseException], ...] = ()


@dataclass
class Stats:
    """Per-target tallies of one pytest process (the long run prints them)."""

    inputs: Counter[str] = field(default_factory=Counter)
    distinct: dict[str, set[str]] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    slowest: dict[str, float] = field(default_factory=dict)
    seconds: Counter[str] = field(default_factory=Counter)

    def add(self, target: str, data: bytes, outcome: str, took: float) -> None:
        self.inputs[target] += 1
        self.distinct.setdefault(target, set()).add(hashlib.sha256(data).hexdigest()[:16])
        self.outcomes.setdefault(target, Counter())[outcome] += 1
        self.slowest[target] = max(self.slowest.get(target, 0.0), took)
        self.seconds[target] += took

    def as_json(self) -> dict[str, object]:
        return {t: {"inputs": self.inputs[t], "distinct": len(self.distinct.get(t, ())),
                    "outcomes": dict(self.outcomes.get(t, {})),
                    "slowest": round(self.slowest.get(t, 0.0), 3),
                    "seconds": round(self.seconds[t], 1)} for t in sorted(self.inputs)}


STATS = Stats()
#: Where interesting inputs of the long run are kept (SECRETOPS_FUZZ_KEEP=1): the first input
#: of each distinct outcome per target, saved at the end of the run.
KEPT: dict[str, dict[str, tuple[str, bytes]]] = {}


def save_dir() -> Path:
    return Path(os.environ.get("SECRETOPS_FUZZ_SAVE_DIR", str(FUZZ_DATA)))


#: In the child: what each call of a target that runs several (``targets.each``) ended with, in
#: order. The outcome names them all, so a target whose first call always refuses still shows
#: what the others did (``_Aborted [ok, _Aborted]``, not ``_Aborted`` for every input).
CALLS: list[str] = []


def call_name(e: BaseException) -> str:
    code = getattr(e, "code", None)
    return f"{type(e).__name__}" + (f"({int(code)})" if code else "")


def outcome_of(first: str) -> str:
    """The outcome of one input: ``first`` (``ok`` or the first typed error), and when the
    target ran several calls and they did not all end alike, each call's ending."""
    if len(set(CALLS)) > 1:
        return f"{first} [{', '.join(CALLS)}]"
    return first


def _child(target: Target, data: bytes, wfd: int, memory: int) -> None:
    """In the forked child: limits, the target, one JSON line on ``wfd``, ``os._exit``."""
    report: dict[str, object]
    try:
        faulthandler.disable()  # a crash is reported by the parent, not dumped into the log
        os.setpgid(0, 0)  # its own process group: the parent kills gpg with it
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (size + memory + AS_HEADROOM,
                                                resource.RLIM_INFINITY))
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
        CALLS.clear()
        try:
            target.run(data)
            report = {"outcome": outcome_of("ok")}
        except (SecretOpsError, *target.typed) as e:
            report = {"outcome": outcome_of(call_name(e)), "message": str(e)[:200]}
        except MemoryError:
            report = {"failure": f"MemoryError (over {memory >> 20} MiB)",
                      "traceback": traceback.format_exc(limit=-12)}
        except BaseException as e:  # the point of the harness: anything else is a bug
            report = {"failure": f"untyped {type(e).__module__}.{type(e).__qualname__}",
                      "traceback": traceback.format_exc(limit=-12), "where": _where(e)}
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - start
        if grown > memory and "failure" not in report:
            report = {"failure": f"grew by {grown >> 20} MiB (over {memory >> 20} MiB)"}
        line = json.dumps(report).encode() + b"\n"
        while line:
            line = line[os.write(wfd, line):]
    finally:
        os._exit(0)


def _where(e: BaseException) -> str:
    """The innermost frame of the project's code: what names a fault in a saved file."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if "/secretops" in f.filename or "/tests/" in f.filename]
    f = frames[-1] if frames else None
    return f"{Path(f.filename).name}:{f.name}" if f else "?"


def _queued(pid: int) -> float:
    """Seconds ``pid`` has waited in the run queue for a CPU (0 when the kernel does not say)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _wait(pid: int, rfd: int, began: float, limit: float,
          wall_factor: float = HANG_WALL_FACTOR) -> tuple[bytes, str | None]:
    """The child's report, or why there is none (it hung, or died)."""
    buf = b""
    cap = began + limit * wall_factor
    deadline = began + limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            # its time waiting for a CPU is not its own: a starved child gets it back
            deadline = min(began + limit + _queued(pid), cap)
            left = deadline - time.monotonic()
        if left <= 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return b"", (f"hang: no answer within {limit:g} s (killed after "
                         f"{time.monotonic() - began:.1f} s of wall clock)")
        ready, _, _ = select.select([rfd], [], [], left)
        if not ready:
            continue
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            break
        buf += chunk
    _, status, _ = os.wait4(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # anything it started and left behind
    if os.WIFSIGNALED(status):
        return b"", f"crash: killed by signal {os.WTERMSIG(status)}"
    if not buf:
        return b"", "crash: the child exited without a report"
    return buf, None


def run_input(target: Target, data: bytes, *, time_limit: float = TIME_LIMIT,
              memory_limit: int = MEMORY_LIMIT, wall_factor: float = HANG_WALL_FACTOR) -> str:
    """Run ``target`` on ``data`` under the limits; the outcome (``ok`` or a typed error's
    name), or :class:`FuzzFailure`."""
    rfd, wfd = os.pipe()
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(rfd)
        _child(target, data, wfd, memory_limit)
    os.close(wfd)
    try:
        raw, problem = _wait(pid, rfd, began, time_limit, wall_factor)
    finally:
        os.close(rfd)
    took = time.monotonic() - began
    report = json.loads(raw) if raw else {"failure": problem}
    outcome = str(report.get("outcome") or "FAILED")
    STATS.add(target.name, data, outcome, took)
    if "failure" in report:
        _fail(target, data, report)
    if os.environ.get("SECRETOPS_FUZZ_KEEP") and len(data) <= 64 * 1024:
        kind = re.sub(r"[0-9]+", "N", f"{outcome} {report.get('message', '')}")[:60]
        KEPT.setdefault(target.name, {}).setdefault(kind, (target.ext, data))
    return outcome


def _fail(target: Target, data: bytes, report: dict[str, object]) -> None:
    what = str(report["failure"])
    kind = what.split(":")[0].split(" (")[0]
    sig = f"{target.name}|{kind}|{report.get('where', '')}"
    name = f"{re.sub(r'[^a-z0-9]+', '-', kind.lower()).strip('-')[:40]}-" \
           f"{hashlib.sha256(sig.encode()).hexdigest()[:10]}{target.ext}"
    path = save_dir() / target.name / name
    if len(data) <= MAX_SAVED:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:  # a strategy that made an input this large is itself at fault
        path = Path(f"(not saved: {len(data):,} bytes, over {MAX_SAVED:,})")
    shown = repr(data[:_MAX_SHOWN]) + (f" … ({len(data)} bytes)" if len(data) > _MAX_SHOWN
                                       else "")
    raise FuzzFailure(f"{target.name}: {what}\ninput: {shown}\nsaved to {path}\n"
                      f"{report.get('traceback', '')}")


def write_kept() -> list[Path]:
    """Save the long run's interesting inputs (one per distinct outcome and target)."""
    out = []
    for target, kinds in KEPT.items():
        for kind, (ext, data) in kinds.items():
            slug = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")[:48]
            path = save_dir() / target / f"kept-{slug}-{hashlib.sha256(data).hexdigest()[:8]}" \
                                         f"{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            out.append(path)
    return out


def warm(target: Target, seed: bytes) -> None:
    """Run ``target`` once in this process on a seed the caller knows to be well-behaved, so
    lazy imports and caches are in place before the children are forked."""
    try:
        target.run(seed)
    except (SecretOpsError, *target.typed):
        pass
