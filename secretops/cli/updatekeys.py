"""``secretops updatekeys``: bring files' master keys in line with ``.sops.yaml``."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import click

from secretops.cli._common import FORMAT_CHOICE, keyservice_flags


@click.command("updatekeys")
@click.argument("files", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from each file name).")
@click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
              help="Override the rule's Shamir threshold.")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml to use (default: searched upwards from each file).")
@keyservice_flags
def command(files: tuple[str, ...], yes: bool, input_type: str | None, shamir: int,
            config_path: str | None, keyservice: tuple[str, ...],
            enable_local_keyservice: bool | None) -> None:
    """Add and remove master keys of FILES as their creation rule says.

    Values are not re-encrypted: every value's ciphertext, lastmodified and the MAC stay as
    they are; only the key entries change. Shows the change and asks on a terminal; without a
    terminal it changes nothing unless --yes is given (exit 155). Selection rules are not
    changed (as in sops). To change the data key itself, use rotate.

    \b
      secretops updatekeys secrets/*.enc.yaml
      secretops updatekeys --yes prod.enc.yaml       # in CI
    """
    from secretops.cli._actions import env_with, report
    from secretops.errors import ExitCode, SecretOpsError

    try:
        env = env_with(None, keyservice, enable_local_keyservice)
    except SecretOpsError as e:
        sys.exit(report(e))
    first_error = 0
    for file in files:
        try:
            _update(file, yes, input_type, shamir, config_path, env)
        except SecretOpsError as e:
            code = report(e.with_file(file))
            first_error = first_error or code
            if e.code == ExitCode.CONFIRMATION_REQUIRED:
                break
    if first_error:
        sys.exit(first_error)


def _update(file: str, yes: bool, input_type: str | None, shamir: int,
            config_path: str | None, env: Mapping[str, str]) -> None:
    from secretops import fileops
    from secretops.compose import open_path, settings
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file
    from secretops.keyops import apply_plan, plan_update

    given = settings(file, input_type=input_type, config_path=config_path, env=env)
    cfg = given.config
    if cfg is None:
        raise SecretOpsError("no .sops.yaml found for this file",
                             code=ExitCode.CONFIG_FILE_NOT_FOUND,
                             hints=("updatekeys applies the file's creation rule; "
                                    "pass --config if it lives elsewhere",))
    rule = cfg.rule_for(file)
    if rule is None:  # sops: "no matching creation rules found"
        raise SecretOpsError("the config has no creation_rules: nothing says which keys this "
                             "file should have", code=ExitCode.ERROR_READING_CONFIG,
                             file=str(cfg.path))
    opened = open_path(file, env=env, rewrite=True, given=given)
    plan = plan_update(opened.metadata, rule.key_groups(), shamir or rule.shamir_threshold)
    if not plan.changed:
        click.echo(f"{file}: already up to date")
        return
    click.echo(f"{file}: the following changes will be made:")
    for line in plan.summary():
        click.echo(f"  {line}")
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
    new_meta = apply_plan(opened.metadata, plan, opened.data_key, env)
    write_file(file, fileops.rewrite_metadata(opened, new_meta), private=False, rewrite=True)
    click.echo(f"{file}: keys updated")
