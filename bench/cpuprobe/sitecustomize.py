"""Where the controller's and the emulator's CPU goes: a debugging probe, not part of the product.

Put this directory first on ``PYTHONPATH`` and set ``SECRETOPS_CPUPROBE=<dir>``; in every
Python process so started whose command line runs the controller (``secretops_controller``)
or the Kubernetes API emulator (``tests.k8s.emulator``), a thread samples the main thread's
stack at every millisecond of the process's CPU time (``SECRETOPS_CPUPROBE_MS``; a
``SIGPROF`` timer, so a waiting process is not sampled) and counts each stack. What it shows is
what py-spy shows: the share of the CPU time by stack, a C call's time charged to the Python
function that made it. The timer counts every thread's CPU but the handler runs in the main
thread: a worker thread's CPU is charged to whatever the main thread was doing.

``SIGUSR1`` (or the end of the process) writes the counts so far to
``<dir>/<role>-<pid>.<n>.txt`` and starts counting anew: one file per phase of a run (e.g.
the bench's set-up, then the cold start). Each file holds the busy samples, the top functions
by self and by inclusive share, and the stacks in the "collapsed" format flame-graph tools read.

``python bench/cpuprobe/sitecustomize.py FILE [--top N] [--grep TEXT | --below NAME]`` prints
the inclusive shares of the functions (those whose name or file holds TEXT), or the shares of
what NAME calls, callee by callee.

``SECRETOPS_CPUPROBE_MODE=cprofile`` runs cProfile instead (call counts; it roughly doubles
the CPU of Python code): SIGUSR1 and the end write ``<role>-<pid>.<n>.prof`` (pstats).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from types import FrameType

_DIR = os.environ.get("SECRETOPS_CPUPROBE")
Frame = tuple[str, str, int]  # file, function, first line


def _role() -> str | None:
    argv = " ".join(getattr(sys, "orig_argv", []))
    if "secretops_controller" in argv:
        return "controller"
    if "tests.k8s.emulator" in argv:
        return "emulator"
    return None


def _name(f: Frame) -> str:
    path = f[0]
    for marker in ("site-packages/", "/controller/", "/tests/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{f[1]} ({path}:{f[2]})"


def _tables(stacks: Counter[tuple[Frame, ...]], top: int) -> list[str]:
    busy = sum(stacks.values()) or 1
    own: Counter[Frame] = Counter()
    incl: Counter[Frame] = Counter()
    for stack, n in stacks.items():
        own[stack[-1]] += n
        for f in set(stack):
            incl[f] += n
    lines = [f"busy samples: {busy}", "", "== self %"]
    lines += [f"{100 * n / busy:6.2f}  {_name(f)}" for f, n in own.most_common(top)]
    lines += ["", "== inclusive %"]
    lines += [f"{100 * n / busy:6.2f}  {_name(f)}" for f, n in incl.most_common(top)]
    return lines


def _write(path: str, stacks: Counter[tuple[Frame, ...]]) -> None:
    lines = [*_tables(stacks, 60), "", "== stacks (collapsed)"]
    lines += [";".join(_name(f) for f in stack) + f" {n}" for stack, n in stacks.most_common()]
    with open(path + ".tmp", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


class _Sampler:
    """The counts of the stacks sampled so far, written and reset by :meth:`flush`."""

    def __init__(self, directory: str, role: str) -> None:
        self.directory, self.role = directory, role
        self.stacks: Counter[tuple[Frame, ...]] = Counter()
        self.n = 0

    def sample(self, _: int, frame: FrameType | None) -> None:
        stack = []
        while frame is not None:
            c = frame.f_code
            stack.append((c.co_filename, c.co_name, c.co_firstlineno))
            frame = frame.f_back
        self.stacks[tuple(reversed(stack))] += 1

    def flush(self, *_: object) -> None:
        stacks, self.stacks = self.stacks, Counter()
        self.n += 1
        _write(os.path.join(self.directory, f"{self.role}-{os.getpid()}.{self.n}.txt"), stacks)


def _sampler(directory: str, role: str) -> None:
    import atexit
    import signal

    probe = _Sampler(directory, role)
    interval = float(os.environ.get("SECRETOPS_CPUPROBE_MS", "1")) / 1000
    signal.signal(signal.SIGPROF, probe.sample)
    signal.signal(signal.SIGUSR1, probe.flush)
    atexit.register(probe.flush)
    # ITIMER_PROF counts the process's CPU time (user and system): a sample per interval of
    # CPU (the kernel's tick at most: 4 ms at HZ=250), none while the process waits; Python
    # runs the handler in the main thread at the next bytecode, so a C call's time is charged
    # to the Python line that made it
    signal.setitimer(signal.ITIMER_PROF, interval, interval)


def _cprofile(directory: str, role: str) -> None:
    import atexit
    import cProfile
    import signal

    profs = [cProfile.Profile()]  # the current one last

    def flush(*_: object, again: bool = True) -> None:
        profs[-1].disable()
        profs[-1].dump_stats(os.path.join(directory, f"{role}-{os.getpid()}.{len(profs)}.prof"))
        if again:
            profs.append(cProfile.Profile())
            profs[-1].enable()

    signal.signal(signal.SIGUSR1, flush)
    atexit.register(lambda: flush(again=False))
    profs[0].enable()


def _report(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python bench/cpuprobe/sitecustomize.py")
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--grep", help="inclusive shares of the functions whose name holds this")
    ap.add_argument("--below", help="the shares of what the (innermost) function whose name "
                    "starts with this calls, by callee")
    args = ap.parse_args(argv)
    stacks: Counter[tuple[str, ...]] = Counter()
    with open(args.file) as f:
        for line in f:
            if line.startswith("== stacks"):
                break
        for line in f:
            text, _, count = line.rstrip("\n").rpartition(" ")
            stacks[tuple(text.split(";"))] += int(count)
    busy = sum(stacks.values()) or 1
    shares: Counter[str] = Counter()
    for stack, n in stacks.items():
        if args.below:
            at = [i for i, name in enumerate(stack) if name.startswith(args.below)]
            if at:
                shares[stack[at[-1] + 1] if at[-1] + 1 < len(stack) else "(itself)"] += n
        else:
            for name in {name for name in stack if args.grep is None or args.grep in name}:
                shares[name] += n
    print(f"busy samples: {busy}; {'below ' + args.below if args.below else 'inclusive'} %")
    for name, n in shares.most_common(args.top):
        print(f"{100 * n / busy:6.2f}  {name}")


if __name__ == "__main__":
    _report(sys.argv[1:])
elif _DIR and (_ROLE := _role()):
    os.makedirs(_DIR, exist_ok=True)
    if os.environ.get("SECRETOPS_CPUPROBE_MODE") == "cprofile":
        _cprofile(_DIR, _ROLE)
    else:
        _sampler(_DIR, _ROLE)
