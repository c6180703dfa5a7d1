"""``secretops rotate``: a new data key for files, re-encrypting every value."""

from __future__ import annotations

import sys
from typing import Any

import click

from secretops.cli._bulk import many_options
from secretops.cli._common import FORMAT_CHOICE, decryption_order, key_flags, keyservice_flags


@click.command("rotate")
@click.argument("paths", nargs=-1, metavar="PATHS...")
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
@many_options
def command(paths: tuple[str, ...], in_place: bool, output: str | None,
            input_type: str | None, output_type: str | None, filename_override: str | None,
            decryption_order: str | None, older_than: str | None, dry_run: bool,
            config_path: str | None, keyservice: tuple[str, ...],
            enable_local_keyservice: bool | None, files_from: str | None, null: bool,
            jobs: int | None, **keys: tuple[str, ...] | str | None) -> None:
    """Give FILE a new data key and re-encrypt every value with it.

    As sops: the rotated file goes to standard output, to --output, or with -i back into
    FILE. The master keys stay as they are, except for those --add-* and --rm-* name (added
    keys join the first key group, removed keys leave every group). Like sops, rotate does NOT
    apply .sops.yaml: to bring keys in line with the creation rules, use updatekeys.

    Beyond sops, several files, directories or a --files-from list can be rotated in place
    at once (-i), in parallel: a file in a directory is rotated when a creation rule matches
    it and it is encrypted (what git ignores is skipped). With
    --older-than, only files whose data key is older than DURATION are rotated; the data key's
    age comes from git history (see docs/rotation.md), an unknown age counts as due, and the
    exit code is 156 when something was rotated, so a scheduled job knows to commit.

    \b
      secretops rotate secrets/prod.enc.yaml > new.enc.yaml
      secretops rotate -i --add-age age1... --rm-age age1old... secrets/prod.enc.yaml
      secretops rotate -i --older-than 90d secrets/
    """
    from secretops.bulk.paths import Item
    from secretops.cli._actions import env_with, report
    from secretops.cli._bulk import collect, is_many
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keys import sources
    from secretops.keys.specs import from_flags

    if not paths and files_from is None:
        raise click.UsageError("Missing argument 'PATHS...'.")
    env = env_with(decryption_order, keyservice, enable_local_keyservice)
    if in_place and output:
        raise SecretOpsError("cannot operate on both --output and --in-place",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    batch = is_many(paths, files_from) or older_than is not None or dry_run
    try:
        max_age = None
        if older_than:
            from secretops.keyage import parse_duration  # git history: only for --older-than

            max_age = parse_duration(older_than)
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
        items = ([Item(paths[0], True)] if not is_many(paths, files_from)
                 else collect(paths, files_from, null).items)
    except SecretOpsError as e:
        sys.exit(report(e))
    sys.exit(_rotate_many(items, env, input_type, config_path, add, remove, max_age, dry_run,
                          jobs))


def _rotate_many(items: list[Any], env: Any, input_type: str | None,
                 config_path: str | None, add: list[Any], remove: list[Any],
                 max_age: float | None, dry_run: bool, jobs: int | None) -> int:
    """``rotate -i`` / ``-n`` of several files, in parallel (:mod:`secretops.bulk`)."""
    from secretops.bulk.keyjobs import RotateJob
    from secretops.cli._bulk import Tally, count_line, run_many
    from secretops.errors import ExitCode

    def summary(tally: Tally) -> str:
        if not dry_run:
            return count_line("rotated", tally)
        tail = f", {len(tally.failures)} failed" if tally.failures else ""
        return f"would rotate {tally.tags['due']} of {tally.applied} files{tail}"

    rotated: list[int] = []

    def counted(tally: Tally) -> str:
        rotated.append(tally.tags["done"])
        return summary(tally)

    job = RotateJob(env, input_type=input_type, config_path=config_path, add=add,
                    remove=remove, max_age=max_age, dry_run=dry_run)
    code = run_many(job, items, jobs=jobs, label="rotate", summary=counted)
    if not code and max_age is not None and rotated[0]:
        return int(ExitCode.FILES_CHANGED)
    return code


def _rotate_single(file: str, add: list[Any], remove: list[Any], *, in_place: bool,
                   output: str | None, input_type: str | None, output_type: str | None,
                   name: str | None, config_path: str | None, env: Any) -> None:
    """sops's ``rotate FILE``: the result to stdout, --output or (-i) FILE."""
    import os

    from secretops.cli._actions import write_result
    from secretops.compose import open_sealed_path, settings, store_options
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keyops import rotation_groups
    from secretops.rotation import reseal_values, rotate_sealed
    from secretops.stores import get_store

    try:
        if (add or remove) and not os.path.exists(file):
            raise SecretOpsError(
                "cannot add or remove keys on a file that does not exist",
                code=ExitCode.CANNOT_CHANGE_KEYS_FROM_NON_EXISTENT_FILE,
                hints=("use edit to create it",))
        given = settings(file, input_type=input_type, name=name, config_path=config_path,
                         env=env)
        sealed = open_sealed_path(file, given, env=env, rewrite=in_place)
        resealed = reseal_values(sealed)  # decrypted and encrypted again in one walk
        groups, notes = rotation_groups(sealed.metadata, add, remove)
        for note in notes:
            click.echo(f"{file}: note: {note}", err=True)
        out_store = None
        if output_type and output_type != given.format:
            out_store = get_store(output_type, store_options(given.config, output_type))
        data = rotate_sealed(sealed, resealed, groups, sealed.metadata.shamir_threshold, env,
                             out_store)
        write_result(data, file, in_place, output, private=False)
    except SecretOpsError as e:
        raise e.with_file(file) from None


def _join(values: Any) -> str:
    return ",".join(values)
