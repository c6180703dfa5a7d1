"""A tiny process launcher: times one child per request and reads its peak RSS with wait4.

Run as ``python -I -S bench/spawner.py`` (standard library only, nothing else imported), in the
directory the children should run in. Protocol, one JSON object per line::

    in:  {"argv": [...], "env": {...}, "stdout": "/dev/null", "stderr": "/path/err.txt"}
    out: {"wall": 0.0123, "code": 0, "maxrss_kib": 34816, "utime": 0.01, "stime": 0.0}

Why a separate process: on Linux a child's ``ru_maxrss`` is at least the resident size of the
process that spawned it (exec records the parent's high-water mark, even with vfork), so a
harness that has parsed a 100k-value file would make every later child look as big as itself.
This launcher stays at a few MiB, so the numbers it reports are the child's own.
"""

from __future__ import annotations

import json
import os
import sys
import time

TYPE_CHECKING = False  # not importing typing keeps this launcher small
if TYPE_CHECKING:
    from typing import Any


def _run(req: dict[str, Any]) -> dict[str, Any]:
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, req.get("stdout", "/dev/null"),
         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, req.get("stderr", "/dev/null"),
         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    argv = req["argv"]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, req["env"], file_actions=actions)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "code": os.waitstatus_to_exitcode(status),
        "maxrss_kib": ru.ru_maxrss,
        "utime": ru.ru_utime,
        "stime": ru.ru_stime,
    }


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = _run(json.loads(line))
        except Exception as e:  # report, don't die: the harness decides
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
