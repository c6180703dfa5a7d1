"""Running one job per file over worker processes, each file on its own.

:func:`run` hands the items of a many-file run to a pool of worker processes — one per CPU
this process may use, or ``jobs`` — and yields their :class:`Outcome` objects **in the order of
the items**, so output is the same however the work was spread. What it promises:

* **Bounded memory.** Items go to the workers in small batches, and at most a few batches per
  worker are in flight: each worker reads, changes and writes one file at a time, and nothing
  waits in memory but names and the short outcomes. The memory of a run does not grow with
  the size or number of files beyond the list of names.
* **Each file on its own.** A job's exception becomes that file's :class:`Failure` (its exit
  code and one secret-free line; an unexpected exception only by its type's name), and the
  next file is started. A job writes through :func:`secretops.fileio.write_file`, so a file is
  replaced atomically or not at all. A worker process that dies (killed, out of memory) fails
  the files in flight whose outcome had not come back (each as it was, or written whole), and
  a new pool takes the rest.
* **Durable in batches.** The files a batch of items writes are staged and made durable
  together when the batch ends (:func:`attempt_batch`, :mod:`secretops.batchwrite`): one
  ``syncfs`` per batch and filesystem and one fsync per directory, instead of two fsyncs per
  file. A file's outcome comes back only once it is in place; a failed job's staged file is
  discarded.
* **Set up once per process.** :meth:`Job.setup` runs once in every process before its first
  file: identities are loaded there once, not per file, and the modules a file's work needs
  (:attr:`Job.preload`) are imported. On Linux the workers are forked after the parent ran
  it, so they inherit what it loaded (an age key command runs once per run, not once per
  worker, and no worker imports the YAML store or the cipher again); elsewhere each worker
  runs it.
* **Bounded calls to key services.** The workers share one semaphore of
  :data:`secretops.keys.remote.MAX_CALLS` slots around every KMS, Vault or cloud key call
  (:mod:`secretops.keys.remote`, which also backs off when a service throttles).
* **Ctrl-C.** Workers ignore SIGINT; the parent stops handing out files, lets the ones in
  progress finish (each is written whole or not at all) and raises :class:`KeyboardInterrupt`.

With one job, or one item, everything runs in this process. Nothing here prints.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from secretops.bulk.paths import Item
from secretops.errors import ExitCode, SecretOpsError

# Batches per worker in flight: enough that no worker waits for the next batch, few enough
# that a slow file at the head of the output holds back little.
_WINDOW = 3
_MAX_BATCH = 16


class Failure(NamedTuple):
    """Why a file failed: its exit code, the one-line message (file first) and hints."""

    code: int
    message: str
    hints: tuple[str, ...] = ()

    @classmethod
    def of(cls, err: SecretOpsError, file: str) -> Failure:
        return cls(int(err.code), str(err.with_file(file)), err.hints)


class Outcome(NamedTuple):
    """What a job did with one file. ``lines`` go to standard output and ``notes`` to standard
    error, in the order of the files; ``tags`` count what happened (``"rotated"`` …);
    ``skipped``: a file found in a directory that the command does not apply to."""

    file: str
    lines: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    failure: Failure | None = None
    skipped: bool = False


class Job:
    """One command's work on one file. A job is sent to spawned workers by pickling, so what
    :meth:`setup` builds belongs in ``self.state``, which is not sent."""

    state: dict[str, Any]
    #: Modules the work on a file imports, imported with :meth:`setup`: before the workers
    #: fork, so they share them instead of each importing them again for its first file.
    preload: tuple[str, ...] = ()

    def setup(self) -> None:
        """Prepare this process (load identities …); called once per process."""

    def __call__(self, item: Item) -> Outcome:  # pragma: no cover - every job overrides it
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "state"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run(job: Job, items: Sequence[Item], *, jobs: int = 0,
        progress: Callable[[int], None] | None = None) -> Iterator[Outcome]:
    """Every item's outcome, in the order of ``items``; ``progress`` is told how many files
    are done (in any order) from time to time."""
    jobs = jobs or default_jobs()
    tell = progress or (lambda done: None)
    if jobs <= 1 or len(items) <= 1:
        _prepare(job)
        for start in range(0, len(items), _MAX_BATCH):
            yield from attempt_batch(job, items[start:start + _MAX_BATCH])
            tell(min(start + _MAX_BATCH, len(items)))
        return
    yield from _Pool(job, items, jobs, tell).outcomes()


def attempt(job: Job, item: Item) -> Outcome:
    """The job on one item, any exception turned into the item's failure."""
    try:
        return job(item)
    except SecretOpsError as e:
        return Outcome(item.path, failure=Failure.of(e, item.path))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # one file's bug must not stop the others; its text may hold data
        return Outcome(item.path, failure=Failure(
            int(ExitCode.GENERIC), f"{item.path}: internal error ({type(e).__name__})",
            ("please report it: secretops <command> FILE on this file alone shows the same",)))


def attempt_batch(job: Job, items: Sequence[Item]) -> list[Outcome]:
    """The job on each item, the files they write made durable together at the end
    (:mod:`secretops.batchwrite`): an outcome is returned only once its file is in place, and a
    file that could not be put in place fails."""
    from secretops.fileio import batched

    outcomes: list[Outcome] = []
    with batched() as batch:
        for n, item in enumerate(items):
            batch.owner = n
            outcome = attempt(job, item)
            if outcome.failure is not None:
                batch.drop(n)  # written, then failed: nothing of it goes in place
            outcomes.append(outcome)
        batch.commit()
    for n, err in batch.failed.items():
        outcomes[n] = Outcome(items[n].path, failure=Failure.of(err, items[n].path))
    return outcomes


# -- the worker side --------------------------------------------------------------------------

_job: Job | None = None


# What attempt_batch itself imports for every job: the batch of staged writes.
_POOL_PRELOAD = ("secretops.batchwrite",)


def _prepare(job: Job) -> None:
    if getattr(job, "state", None) is None:
        job.state = {}
        job.setup()
        for name in (*_POOL_PRELOAD, *job.preload):
            __import__(name)


def _init(job: Job | None, gate: Any) -> None:
    import signal

    from secretops.keys import remote

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    remote.share_gate(gate)
    global _job
    if job is not None:  # spawned: the job came pickled, without its state
        _prepare(job)
        _job = job
    # forked: _job is the parent's, prepared before the fork


def _batch(items: list[Item]) -> list[Outcome]:
    assert _job is not None
    return attempt_batch(_job, items)


# -- the parent side --------------------------------------------------------------------------

def _context() -> Any:
    import multiprocessing
    import sys

    # fork keeps what the parent loaded (identities) and starts fast; macOS defaults to spawn
    # because forking its system frameworks is unsafe, and that default is kept elsewhere
    if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class _Pool:
    def __init__(self, job: Job, items: Sequence[Item], jobs: int,
                 tell: Callable[[int], None]) -> None:
        self.job, self.tell = job, tell
        self.workers = min(jobs, len(items))
        size = max(1, min(_MAX_BATCH, len(items) // (self.workers * 4)))
        self.batches = deque(list(items[i:i + size]) for i in range(0, len(items), size))
        self.ctx = _context()
        self.gate: Any = None
        self.generation = 0

    def _executor(self) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        from secretops.keys.remote import MAX_CALLS

        global _job
        # a new gate each time: a worker killed while holding a slot would keep it forever
        self.gate = self.ctx.BoundedSemaphore(MAX_CALLS)
        forked = self.ctx.get_start_method() == "fork"
        if forked:
            import gc

            _prepare(self.job)
            _job = self.job
            # what the workers inherit stays out of their collections: a full one would touch
            # (and so copy) every page of it in each worker (CPython's advice for fork)
            gc.freeze()
        self.generation += 1
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=self.ctx, initializer=_init,
            initargs=(None if forked else self.job, self.gate))

    def outcomes(self) -> Iterator[Outcome]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done = 0
        executor = self._executor()
        flight: deque[tuple[list[Item], Any, int]] = deque()
        try:
            while self.batches or flight:
                while self.batches and len(flight) < self.workers * _WINDOW:
                    batch = self.batches.popleft()
                    try:
                        future = executor.submit(_batch, batch)
                    except BrokenProcessPool:  # a worker died since the last batch went out
                        executor.shutdown(wait=False, cancel_futures=True)
                        executor = self._executor()
                        future = executor.submit(_batch, batch)
                    flight.append((batch, future, self.generation))
                batch, head, generation = flight.popleft()
                while not head.done():
                    # wake for the head, or to count another batch done (not for one already
                    # counted: wait() would return at once and spin)
                    wait([head, *(f for _, f, _ in flight if not f.done())], timeout=0.5,
                         return_when=FIRST_COMPLETED)
                    self.tell(done + sum(len(b) for b, f, _ in flight if f.done()))
                try:
                    results = head.result()
                except BrokenProcessPool:
                    # a worker died: the batches its pool held fail, a new pool takes the rest
                    results = [_died(item) for item in batch]
                    if generation == self.generation:
                        executor.shutdown(wait=False, cancel_futures=True)
                        executor = self._executor()
                done += len(batch)
                self.tell(done)
                yield from results
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        executor.shutdown(wait=True)


def _died(item: Item) -> Outcome:
    return Outcome(item.path, failure=Failure(
        int(ExitCode.GENERIC),
        f"{item.path}: a worker process ended while this file (or another of its batch) was "
        "being worked on; the file is as it was, or written whole",
        ("run the command on this file alone to see what happens",)))
