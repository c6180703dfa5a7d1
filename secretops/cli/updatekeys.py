"""``secretops updatekeys``: bring files' master keys in line with ``.sops.yaml``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from secretops.cli._bulk import many_options
from secretops.cli._common import FORMAT_CHOICE, keyservice_flags

if TYPE_CHECKING:
    from secretops.bulk.keyjobs import Lookup
    from secretops.bulk.paths import Item
    from secretops.discover import Rules


@click.command("updatekeys")
@click.argument("files", nargs=-1, metavar="FILES...")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from each file name).")
@click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
              help="Override the rule's Shamir threshold.")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml to use (default: searched upwards from each file).")
@keyservice_flags
@many_options
def command(files: tuple[str, ...], yes: bool, input_type: str | None, shamir: int,
            config_path: str | None, keyservice: tuple[str, ...],
            enable_local_keyservice: bool | None, files_from: str | None, null: bool,
            jobs: int | None) -> None:
    """Add and remove master keys of FILES as their creation rule says.

    Values are not re-encrypted: every value's ciphertext, lastmodified and the MAC stay as
    they are; only the key entries change. Shows the change and asks on a terminal; without a
    terminal it changes nothing unless --yes is given (exit 155). Selection rules are not
    changed (as in sops). To change the data key itself, use rotate.

    FILES may be directories (the encrypted files a creation rule matches, skipping what git
    ignores), and --files-from names more; with --yes they are updated in parallel.

    \b
      secretops updatekeys secrets/*.enc.yaml
      secretops updatekeys --yes prod.enc.yaml       # in CI
      secretops updatekeys --yes .                   # after a change to .sops.yaml
    """
    from secretops.bulk.keyjobs import UpdateKeysJob
    from secretops.bulk.paths import Item
    from secretops.cli._actions import env_with, report
    from secretops.cli._bulk import collect, count_line, is_many, run_many
    from secretops.errors import SecretOpsError

    if not files and files_from is None:
        raise click.UsageError("Missing argument 'FILES...'.")
    try:
        env = env_with(None, keyservice, enable_local_keyservice)
    except SecretOpsError as e:
        sys.exit(report(e))
    if not is_many(files, files_from):
        sys.exit(_one_by_one([Item(files[0], True)], yes, input_type, shamir, config_path, env))
    try:
        items = collect(files, files_from, null).items
    except SecretOpsError as e:
        sys.exit(report(e))
    if not yes:  # asking (or refusing to change without a terminal) goes file by file
        sys.exit(_one_by_one(items, yes, input_type, shamir, config_path, env))
    job = UpdateKeysJob(env, input_type=input_type, shamir=shamir,
                        config_path=config_path)
    sys.exit(run_many(job, items, jobs=jobs, label="updatekeys",
                      summary=lambda t: count_line("updated", t)))


def _one_by_one(items: list[Item], yes: bool, input_type: str | None, shamir: int,
                config_path: str | None, env: Mapping[str, str]) -> int:
    """In this process, asking on a terminal; without one (and without --yes) stopping at the
    first file that needs a change (exit 155). Errors are reported as they happen."""
    from collections import Counter

    from secretops.bulk.keyjobs import wanted
    from secretops.bulk.pool import Failure
    from secretops.cli._actions import report
    from secretops.cli._bulk import Tally, exit_code, files_word
    from secretops.discover import Rules
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keys.datakey import lazy_identities

    rules, identities = Rules(env, config_path), lazy_identities(env)
    failures: list[Failure] = []
    applied = 0
    for item in items:
        try:
            if not wanted(item, rules, input_type):
                continue
            applied += 1
            _update(item.path, yes, input_type, shamir, config_path, env, identities, rules)
        except SecretOpsError as e:
            failures.append(Failure(report(e.with_file(item.path)), ""))
            if e.code == ExitCode.CONFIRMATION_REQUIRED:
                return int(e.code)
    if applied > 1 and failures:
        sys.stderr.write(f"secretops: error: {len(failures)} of {files_word(applied)} "
                         "failed\n")
    return exit_code(Tally(applied, failures, Counter(), 0))


def _update(file: str, yes: bool, input_type: str | None, shamir: int,
            config_path: str | None, env: Mapping[str, str], identities: Lookup,
            rules: Rules | None = None) -> None:
    from secretops.bulk.keyjobs import apply_keys, plan_keys, plan_lines
    from secretops.errors import ExitCode, SecretOpsError

    planned = plan_keys(file, input_type=input_type, shamir=shamir, config_path=config_path,
                        env=env, identities=identities, rules=rules)
    for line in plan_lines(file, planned):
        click.echo(line)
    if not planned.plan.changed:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise SecretOpsError(
                "changes need confirmation, and there is no terminal to ask on",
                code=ExitCode.CONFIRMATION_REQUIRED,
                hints=("run it on a terminal, or pass --yes",),
            )
        if not click.confirm("Apply these changes?", default=False):
            click.echo(f"{file}: left unchanged")
            return
    apply_keys(file, planned, env)
    click.echo(f"{file}: keys updated")
