"""``secretops rotate``: a new data key for files, re-encrypting every value."""

from __future__ import annotations

import sys
from typing import Any

import click

from secretops.cli._common import FORMAT_CHOICE, key_flags


@click.command("rotate")
@click.argument("paths", nargs=-1, required=True)
@key_flags("rotate")
@click.option("--older-than", metavar="DURATION",
              help="Only rotate files whose data key is older than this (90d, 12w, 1y); "
                   "exit 156 when a file was rotated.")
@click.option("-n", "--dry-run", is_flag=True, help="Report what would be rotated; change nothing.")
@click.option("-i", "--in-place", is_flag=True, hidden=True,
              help="Accepted for sops compatibility (rotate always rewrites in place).")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from each file name).")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml used to pick files in directories.")
def command(paths: tuple[str, ...], older_than: str | None, dry_run: bool, in_place: bool,
            input_type: str | None, config_path: str | None,
            **keys: tuple[str, ...] | str | None) -> None:
    """Give each file a new data key and re-encrypt every value with it, in place.

    The master keys stay as they are, except for those --add-* and --rm-* name (added keys
    join the first key group, removed keys leave every group). Like sops, rotate does NOT
    apply .sops.yaml: to bring keys in line with the creation rules, use updatekeys.
    Unlike sops, rotate writes the files in place (-i is accepted and implied).

    A directory is walked: a file in it is rotated when a creation rule matches it and it is
    encrypted. With --older-than, only files whose data key is older than DURATION are
    rotated; the data key's age comes from git history (see docs/rotation.md), an unknown age
    counts as due, and the exit code is 156 when something was rotated, so a scheduled job
    knows to commit.

    \b
      secretops rotate secrets/prod.enc.yaml
      secretops rotate --add-age age1... --rm-age age1old... secrets/*.enc.yaml
      secretops rotate --older-than 90d secrets/
    """
    import os

    from secretops.cli._actions import report
    from secretops.discover import encrypted_files
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keyage import parse_duration
    from secretops.keys import sources
    from secretops.keys.specs import from_flags

    env = os.environ
    try:
        max_age = parse_duration(older_than) if older_than else None
        settings = {o.name: keys[o.name] for src in sources() for o in src.options}
        add = from_flags(**{s.keyword: _join(keys[f"add_{s.keyword}"]) for s in sources()},
                         **settings)
        remove = from_flags(**{s.keyword: _join(keys[f"rm_{s.keyword}"]) for s in sources()})
        files = list(encrypted_files(list(paths), env, config_path))
    except SecretOpsError as e:
        sys.exit(report(e))
    progress = _Progress(len(files))
    first_error = 0
    rotated = due = failed = 0
    for n, file in enumerate(files, 1):
        progress.show(n, file)
        try:
            outcome = _rotate_one(file, input_type, config_path, add, remove, max_age, dry_run)
        except SecretOpsError as e:
            progress.clear()
            first_error = first_error or report(e.with_file(file))
            failed += 1
            continue
        progress.clear()
        click.echo(f"{file}: {outcome.message}")
        due += outcome.due
        rotated += outcome.rotated
    progress.clear()
    if len(files) != 1 or max_age is not None:
        verb = "would rotate" if dry_run else "rotated"
        tail = f", {failed} failed" if failed else ""
        click.echo(f"{verb} {due if dry_run else rotated} of {len(files)} files{tail}")
    if first_error:
        sys.exit(first_error)
    if max_age is not None and rotated:
        sys.exit(int(ExitCode.FILES_CHANGED))


def _join(values: Any) -> str:
    return ",".join(values)


class _Outcome:
    def __init__(self, message: str, due: bool, rotated: bool) -> None:
        self.message, self.due, self.rotated = message, int(due), int(rotated)


def _rotate_one(file: str, input_type: str | None, config_path: str | None, add: list[Any],
                remove: list[Any], max_age: float | None, dry_run: bool) -> _Outcome:
    import os
    from datetime import UTC, datetime

    from secretops import fileops
    from secretops.compose import open_path, settings
    from secretops.fileio import write_file
    from secretops.keyops import rotation_groups

    env = os.environ
    given = settings(file, input_type=input_type, config_path=config_path, env=env)
    fmt, options = given.format, given.options
    opened = open_path(file, env=env, rewrite=not dry_run, given=given)
    why = ""
    if max_age is not None:
        from secretops.keyage import data_key_age

        age = data_key_age(file, opened.data_key, fmt, options)
        if age.born is not None:
            days = (datetime.now(UTC) - age.born).total_seconds() / 86400
            why = f"data key {days:.0f} days old ({age.why})"
            if days * 86400 < max_age:
                return _Outcome(f"not due: {why}", due=False, rotated=False)
        else:
            why = f"data key age unknown ({age.why})"
    groups, notes = rotation_groups(opened.metadata, add, remove)
    for note in notes:
        click.echo(f"{file}: note: {note}", err=True)
    if dry_run:
        return _Outcome(f"would rotate{': ' + why if why else ''}", due=True, rotated=False)
    data = fileops.rotate(opened, groups, opened.metadata.shamir_threshold, env)
    write_file(file, data, private=False, rewrite=True)
    return _Outcome(f"rotated{': ' + why if why else ''}", due=True, rotated=True)


class _Progress:
    """A one-line ``[3/120] path`` counter on a terminal's stderr; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.on = total > 1 and sys.stderr.isatty()
        self.width = 0

    def show(self, n: int, file: str) -> None:
        if self.on:
            line = f"[{n}/{self.total}] {file}"[:100]
            sys.stderr.write("\r" + line.ljust(self.width))
            sys.stderr.flush()
            self.width = len(line)

    def clear(self) -> None:
        if self.on and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0
