"""Bounded worker processes: untrusted work done outside the caller, limited while it runs.

A template of the editor's choosing (``spec.template.data``) and a request body from anyone who
can reach the controller's port are untrusted input whose cost depends on the input: a template
can loop, concatenate strings into gigabytes, or fail in ways that depend on the values. Such
work runs here, in a small pool of worker processes (:mod:`secretops.sealing.worker`), each job
bounded **while it runs**:

* **time**: the caller waits at most ``Limits.timeout`` seconds of wall clock; then the worker is
  killed (SIGKILL) and replaced by a new one on the next job. The worker also caps its own CPU
  time (``RLIMIT_CPU``), in case its caller is not there to kill it.
* **memory**: the worker's address space may grow by at most ``Limits.memory`` bytes past what
  it uses at start-up (``RLIMIT_AS``); past that an allocation fails and the job fails.
* **output**: the worker counts what it renders as it renders it and stops past the limit; its
  reply is read with a size cap (so even a worker gone wrong cannot flood its caller).
* **what it sees**: a worker is a fresh interpreter (``sys.executable -m …``, not a fork), with
  an empty environment (no cloud credentials or tokens), no core dumps, no files written
  (``RLIMIT_FSIZE`` 0), stderr to /dev/null, and only the job's own input: a template worker
  never holds a key, and another object's values only while rendering that object.
* **the protocol**: one JSON document per line each way (no pickle: a worker whose sandbox was
  escaped must not be able to run code in its caller by what it answers).

Workers start on first use (a program with no template never starts one) and are reused. At
most ``Limits.workers`` jobs run at once; a caller either waits for a free worker or, with
``wait=False``, is refused at once with :class:`Busy` (the HTTP endpoints answer 429 then).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import secretops

if TYPE_CHECKING:  # asyncio only for the controller's async callers: not imported by the CLI
    import asyncio

T = TypeVar("T")
START_TIMEOUT = 30.0  # a worker's interpreter start-up and imports (not counted in a job)


@dataclass(frozen=True)
class Limits:
    timeout: float = 2.0  # wall-clock seconds per job
    memory: int = 64 << 20  # bytes a worker may grow past its start-up size
    workers: int = 2  # processes at most, each running one job at a time
    max_reply: int = 8 << 20  # bytes of one reply


class WorkerError(Exception):
    """The job did not finish: :class:`WorkerTimeout`, :class:`WorkerFailed` or :class:`Busy`."""


class WorkerTimeout(WorkerError):
    """The job ran past ``Limits.timeout``; its worker was killed."""


class WorkerFailed(WorkerError):
    """The worker died (a memory or CPU limit, most likely) or answered nonsense."""


class Busy(WorkerError):
    """Every worker is busy and the caller asked not to wait."""


def _package_root() -> str:
    return str(Path(secretops.__file__).resolve().parent.parent)


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, role: str, limits: Limits) -> None:
        env = {"PYTHONPATH": _package_root(), "LC_ALL": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-B", "-m", "secretops.sealing.worker", role,
             str(limits.memory), str(limits.timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd="/", close_fds=True, bufsize=0)
        self._buf = bytearray()
        try:
            if self._line(time.monotonic() + START_TIMEOUT, 64) != b"ready":
                raise WorkerFailed("the worker did not start")
        except BaseException:
            self.kill()
            raise

    def call(self, request: bytes, timeout: float, max_reply: int) -> bytes:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(request + b"\n")
        except OSError:
            raise WorkerFailed("the worker is gone") from None
        return self._line(time.monotonic() + timeout, max_reply)

    def _line(self, deadline: float, limit: int) -> bytes:
        stdout = self.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        poller = select.poll()  # not select(): the caller may hold fds past FD_SETSIZE
        poller.register(fd, select.POLLIN)
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise WorkerTimeout("the worker did not answer in time")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise WorkerFailed("the worker exited")
            self._buf += chunk
            if len(self._buf) > limit:
                raise WorkerFailed("the worker's reply is too large")
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return line

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class WorkerPool:
    """Up to ``limits.workers`` worker processes of one ``role`` (``render`` or ``sealed``),
    started lazily and reused. :meth:`call` is thread-safe; :meth:`acall` is for asyncio."""

    def __init__(self, role: str, limits: Limits | None = None) -> None:
        self.role = role
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(self.limits.workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._async_slots: asyncio.Semaphore | None = None
        self._closed = False
        self.started = 0  # worker processes started so far (for tests and metrics)

    def call(self, request: dict[str, Any], *, wait: bool = True) -> dict[str, Any]:
        """Run one job; its reply (a JSON object). Raises :class:`WorkerError`."""
        if not self._slots.acquire(blocking=wait):
            raise Busy("every worker is busy")
        worker: _Worker | None = None
        try:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None or not worker.alive():
                worker = _Worker(self.role, self.limits)
                self.started += 1
            line = worker.call(json.dumps(request).encode("ascii"), self.limits.timeout,
                               self.limits.max_reply)
            try:
                reply = json.loads(line)
            except ValueError:
                raise WorkerFailed("the worker answered nonsense") from None
            if not isinstance(reply, dict):
                raise WorkerFailed("the worker answered nonsense")
            if reply.get("retire"):  # it ran out of memory: a fresh one for the next job
                worker.kill()
                worker = None
            return reply
        except BaseException:
            if worker is not None:
                worker.kill()
                worker = None
            raise
        finally:
            if worker is not None:
                with self._lock:
                    keep = not self._closed
                    if keep:
                        self._idle.append(worker)
                if not keep:
                    worker.kill()
            self._slots.release()

    async def acall(self, request: dict[str, Any], *, wait: bool = True) -> dict[str, Any]:
        """:meth:`call` from asyncio (see :meth:`in_thread`); with ``wait=False`` a caller
        finding every worker busy gets :class:`Busy` at once."""
        if not wait and self._async().locked():
            raise Busy("every worker is busy")
        return await self.in_thread(lambda: self.call(request, wait=wait))

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which calls this pool) in a thread once a worker is free: the waiting
        happens off the loop, and callers queue here, not in the loop's thread pool (where
        they would hold threads that other work needs)."""
        import asyncio

        async with self._async():
            return await asyncio.to_thread(fn)

    def _async(self) -> asyncio.Semaphore:
        import asyncio

        if self._async_slots is None:
            self._async_slots = asyncio.Semaphore(self.limits.workers)
        return self._async_slots

    def close(self) -> None:
        """Stop the idle workers (busy ones stop when their job ends and the caller exits)."""
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for w in idle:
            w.kill()
