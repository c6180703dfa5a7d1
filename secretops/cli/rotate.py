"""``secretops rotate``: a new data key for files, re-encrypting every value."""

from __future__ import annotations

import sys
from typing import Any

import click

from secretops.cli._common import FORMAT_CHOICE, decryption_order, key_flags, keyservice_flags


@click.command("rotate")
@click.argument("paths", nargs=-1, required=True)
@key_flags("rotate")
@click.option("-i", "--in-place", is_flag=True,
              help="Write the result back to the file (without it: to standard output).")
@click.option("--output", metavar="PATH", help="Write the result to PATH.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from each file name).")
@click.option("--output-type", type=FORMAT_CHOICE, help="Output format (default: the input's).")
@click.option("--filename-override", metavar="NAME",
              help="Use NAME to pick the format and the .sops.yaml rule.")
@decryption_order
@keyservice_flags
@click.option("--older-than", metavar="DURATION",
              help="Only rotate files whose data key is older than this (90d, 12w, 1y); "
                   "exit 156 when a file was rotated. Needs -i.")
@click.option("-n", "--dry-run", is_flag=True, help="Report what would be rotated; change nothing.")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml used to pick files in directories.")
def command(paths: tuple[str, ...], in_place: bool, output: str | None,
            input_type: str | None, output_type: str | None, filename_override: str | None,
            decryption_order: str | None, older_than: str | None, dry_run: bool,
            config_path: str | None,
            keyservice: tuple[str, ...], enable_local_keyservice: bool | None,
            **keys: tuple[str, ...] | str | None) -> None:
    """Give FILE a new data key and re-encrypt every value with it.

    As sops: the rotated file goes to standard output, to --output, or with -i back into
    FILE. The master keys stay as they are, except for those --add-* and --rm-* name (added
    keys join the first key group, removed keys leave every group). Like sops, rotate does NOT
    apply .sops.yaml: to bring keys in line with the creation rules, use updatekeys.

    Beyond sops, several files or a directory can be rotated in place at once (-i): a file in
    a directory is rotated when a creation rule matches it and it is encrypted. With
    --older-than, only files whose data key is older than DURATION are rotated; the data key's
    age comes from git history (see docs/rotation.md), an unknown age counts as due, and the
    exit code is 156 when something was rotated, so a scheduled job knows to commit.

    \b
      secretops rotate secrets/prod.enc.yaml > new.enc.yaml
      secretops rotate -i --add-age age1... --rm-age age1old... secrets/prod.enc.yaml
      secretops rotate -i --older-than 90d secrets/
    """
    import os

    from secretops.cli._actions import env_with, report
    from secretops.discover import encrypted_files
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keyage import parse_duration
    from secretops.keys import sources
    from secretops.keys.specs import from_flags

    env = env_with(decryption_order, keyservice, enable_local_keyservice)
    if in_place and output:
        raise SecretOpsError("cannot operate on both --output and --in-place",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    batch = len(paths) > 1 or older_than is not None or dry_run or os.path.isdir(paths[0])
    try:
        max_age = parse_duration(older_than) if older_than else None
        settings = {o.name: keys[o.name] for src in sources() for o in src.options}
        add = from_flags(**{s.keyword: _join(keys[f"add_{s.keyword}"]) for s in sources()},
                         **settings)
        remove = from_flags(**{s.keyword: _join(keys[f"rm_{s.keyword}"]) for s in sources()})
        if not batch:
            _rotate_single(paths[0], add, remove, in_place=in_place, output=output,
                           input_type=input_type, output_type=output_type,
                           name=filename_override, config_path=config_path, env=env)
            return
        if output or output_type or filename_override:
            raise SecretOpsError(
                "--output, --output-type and --filename-override take one file",
                code=ExitCode.CONFLICTING_PARAMETERS,
                hints=("rotate several files, a directory or --older-than in place, with -i",))
        if not in_place and not dry_run:
            raise SecretOpsError(
                "rotating several files, a directory or with --older-than needs -i (or -n)",
                code=ExitCode.CONFLICTING_PARAMETERS,
                hints=("without -i, rotate writes one file's result to standard output, "
                       "as sops does",))
        files = list(encrypted_files(list(paths), env, config_path))
    except SecretOpsError as e:
        sys.exit(report(e))
    progress = _Progress(len(files))
    first_error = 0
    rotated = due = failed = 0
    for n, file in enumerate(files, 1):
        progress.show(n, file)
        try:
            outcome = _rotate_one(file, input_type, config_path, add, remove, max_age, dry_run,
                                  env)
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
    verb = "would rotate" if dry_run else "rotated"
    tail = f", {failed} failed" if failed else ""
    click.echo(f"{verb} {due if dry_run else rotated} of {len(files)} files{tail}")
    if first_error:
        sys.exit(first_error)
    if max_age is not None and rotated:
        sys.exit(int(ExitCode.FILES_CHANGED))


def _rotate_single(file: str, add: list[Any], remove: list[Any], *, in_place: bool,
                   output: str | None, input_type: str | None, output_type: str | None,
                   name: str | None, config_path: str | None, env: Any) -> None:
    """sops's ``rotate FILE``: the result to stdout, --output or (-i) FILE."""
    import os

    from secretops import fileops
    from secretops.cli._actions import write_result
    from secretops.compose import open_path, settings, store_options
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keyops import rotation_groups
    from secretops.stores import get_store

    try:
        if (add or remove) and not os.path.exists(file):
            raise SecretOpsError(
                "cannot add or remove keys on a file that does not exist",
                code=ExitCode.CANNOT_CHANGE_KEYS_FROM_NON_EXISTENT_FILE,
                hints=("use edit to create it",))
        given = settings(file, input_type=input_type, name=name, config_path=config_path,
                         env=env)
        opened = open_path(file, env=env, rewrite=in_place, given=given)
        groups, notes = rotation_groups(opened.metadata, add, remove)
        for note in notes:
            click.echo(f"{file}: note: {note}", err=True)
        out_store = None
        if output_type and output_type != given.format:
            out_store = get_store(output_type, store_options(given.config, output_type))
        data = fileops.rotate(opened, groups, opened.metadata.shamir_threshold, env, out_store)
        write_result(data, file, in_place, output, private=False)
    except SecretOpsError as e:
        raise e.with_file(file) from None


def _join(values: Any) -> str:
    return ",".join(values)


class _Outcome:
    def __init__(self, message: str, due: bool, rotated: bool) -> None:
        self.message, self.due, self.rotated = message, int(due), int(rotated)


def _rotate_one(file: str, input_type: str | None, config_path: str | None, add: list[Any],
                remove: list[Any], max_age: float | None, dry_run: bool,
                env: Any) -> _Outcome:
    from datetime import UTC, datetime

    from secretops import fileops
    from secretops.compose import open_path, settings
    from secretops.fileio import write_file
    from secretops.keyops import rotation_groups

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
