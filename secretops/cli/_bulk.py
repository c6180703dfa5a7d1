"""The many-file form of the file commands: options, progress, the report at the end.

:func:`many_options` adds ``--files-from``, ``--null`` and ``--jobs`` to a command;
:func:`collect` turns its arguments into the files to work on (:mod:`secretops.bulk.paths`);
:func:`run_many` runs a job over them (:mod:`secretops.bulk.pool`) and prints, in the order of
the files, each one's lines (stdout) and notes (stderr), then a summary line (stdout), then
every failure — one line each, ``secretops: error: FILE: …`` — with their hints once each and
a count (stderr). It returns the exit code (:func:`exit_code`). On a terminal, a progress bar
(click's) shows on stderr once a run has taken a second; it is cleared before a line is
printed, and never drawn when stderr is not a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from secretops.errors import ExitCode, SecretOpsError

if TYPE_CHECKING:  # imported when a many-file run starts: --help stays light
    from secretops.bulk.paths import Expanded, Item
    from secretops.bulk.pool import Failure, Job, Outcome

# Seconds before the bar shows: short runs stay quiet. Tests set it to 0 (a setting, not a
# sleep: see TESTING.md).
PROGRESS_AFTER_ENV = "SECRETOPS_PROGRESS_AFTER"
_MAX_HINTS = 10


def many_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--files-from``, ``--null`` and ``--jobs``."""
    for opt in reversed([
        click.option("--files-from", metavar="FILE",
                     help="Also work on the files and directories named in FILE ('-': "
                          "standard input), one per line (with --null: NUL-separated)."),
        click.option("-0", "--null", "null", is_flag=True,
                     help="--files-from names are separated by NUL bytes, as find -print0 "
                          "and git ls-files -z write them."),
        click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
                     help="Worker processes (default: one per CPU)."),
    ]):
        f = opt(f)
    return f


def is_many(paths: Sequence[str], files_from: str | None) -> bool:
    """Several paths, a directory or a list: the many-file form."""
    return len(paths) > 1 or files_from is not None or any(os.path.isdir(p) for p in paths)


def collect(paths: Sequence[str], files_from: str | None, null: bool) -> Expanded:
    """The files to work on, and the directories named (see :mod:`secretops.bulk.paths`)."""
    from secretops.bulk.paths import expand, read_list

    if null and files_from is None:
        raise SecretOpsError("--null says how --files-from separates names; there is no "
                             "--files-from", code=ExitCode.CONFLICTING_PARAMETERS)
    listed = read_list(files_from, null=null) if files_from is not None else []
    return expand(paths, listed)


class Tally(NamedTuple):
    """What a run did: files it applied to, failures, and the outcomes' tags and lines."""

    applied: int
    failures: list[Failure]
    tags: Counter[str]
    lines: int


def exit_code(tally: Tally) -> int:
    """0; the files' own code when every file failed the same way; else 180."""
    codes = {f.code for f in tally.failures}
    if not codes:
        return 0
    if len(tally.failures) == tally.applied and len(codes) == 1:
        return codes.pop()
    return int(ExitCode.SOME_FILES_FAILED)


def run_many(job: Job, items: Sequence[Item], *, jobs: int | None, label: str,
             summary: Callable[[Tally], str | None]) -> int:
    """Run ``job`` over ``items``, print as the module docstring says, return the exit code."""
    tally = _each(job, items, jobs, label, _show)
    text = summary(tally)
    if text:
        click.echo(text)
    report_failures(tally.failures, tally.applied)
    return exit_code(tally)


def gather(job: Job, items: Sequence[Item], *, jobs: int | None,
           label: str) -> tuple[list[Outcome], Tally]:
    """Run ``job`` over ``items`` like :func:`run_many`, but keep the outcomes (in order)
    instead of printing them, for a command that reports on the whole run (``status``).
    Nothing is printed but the progress bar; the caller reports the failures."""
    kept: list[Outcome] = []
    tally = _each(job, items, jobs, label, lambda outcome, bar: kept.append(outcome))
    return kept, tally


def _each(job: Job, items: Sequence[Item], jobs: int | None, label: str,
          each: Callable[[Outcome, Progress], None]) -> Tally:
    from secretops.bulk.pool import run

    bar = Progress(len(items), label)
    failures: list[Failure] = []
    tags: Counter[str] = Counter()
    applied = lines = 0
    try:
        for outcome in run(job, items, jobs=jobs or 0, progress=bar.update):
            if outcome.skipped:
                continue
            applied += 1
            each(outcome, bar)
            lines += len(outcome.lines)
            tags.update(outcome.tags)
            if outcome.failure is not None:
                failures.append(outcome.failure)
    finally:
        bar.close()
    return Tally(applied, failures, tags, lines)


def _show(outcome: Outcome, bar: Progress) -> None:
    if outcome.lines or outcome.notes:
        bar.clear()
    # one write (and flush) per file, not per line: updatekeys prints four lines a file
    if outcome.notes:
        click.echo("\n".join(outcome.notes), err=True)
    if outcome.lines:
        click.echo("\n".join(outcome.lines))


def report_failures(failures: list[Failure], applied: int) -> None:
    """Every failure in one line; hints once each (at most 10); the count."""
    if not failures:
        return
    out = [f"secretops: error: {f.message}" for f in failures]
    hints = list(dict.fromkeys(h for f in failures for h in f.hints))
    out += [f"secretops: hint: {h}" for h in hints[:_MAX_HINTS]]
    if len(hints) > _MAX_HINTS:
        out.append(f"secretops: hint: ({len(hints) - _MAX_HINTS} more hints: run the command "
                   "on one of the files alone to see them all)")
    if applied > 1:
        out.append(f"secretops: error: {len(failures)} of {applied} files failed")
    sys.stderr.write("\n".join(out) + "\n")


def files_word(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


def count_line(verb: str, tally: Tally) -> str:
    """``decrypted 199 of 200 files, 1 failed``: the summary most commands print."""
    tail = f", {len(tally.failures)} failed" if tally.failures else ""
    return f"{verb} {tally.tags['done']} of {files_word(tally.applied)}{tail}"


class Progress:
    """click's progress bar on stderr, shown after a second on a terminal, else nothing."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label = total, label
        self.on = total > 1 and sys.stderr.isatty()
        try:
            self.after = float(os.environ.get(PROGRESS_AFTER_ENV, "1"))
        except ValueError:
            self.after = 1.0
        self.start = time.monotonic()
        self.bar: Any = None
        self.drawn = ""

    def update(self, done: int) -> None:
        if not self.on:
            return
        if self.bar is None:
            if time.monotonic() - self.start < self.after:
                return
            self.bar = click.progressbar(length=self.total, label=self.label,
                                         file=sys.stderr, show_pos=True)
        if done > self.bar.pos:
            self.bar.make_step(done - self.bar.pos)  # drawn below, where it can be cleared
        line = self.bar.format_progress_line()
        if line != self.drawn:
            sys.stderr.write("\r" + line + "\x1b[K")
            sys.stderr.flush()
            self.drawn = line

    def clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = ""

    def close(self) -> None:
        self.clear()
        self.on = False
