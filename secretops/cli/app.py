"""The click application: the ``secretops`` group and its subcommands."""

from __future__ import annotations

from typing import Any

import click

from secretops.cli._actions import report
from secretops.errors import ExitCode, SecretOpsError


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # sops's --enable-local-keyservice is a Go boolean flag: bare it means true, and only
        # --enable-local-keyservice=false turns it off; click takes the value form only
        from secretops.cli._common import ENABLE_LOCAL_KEYSERVICE

        if ENABLE_LOCAL_KEYSERVICE in args:
            end = args.index("--") if "--" in args else len(args)
            args = [f"{a}=true" if a == ENABLE_LOCAL_KEYSERVICE and n < end else a
                    for n, a in enumerate(args)]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SecretOpsError as e:
            ctx.exit(report(e))
        except KeyboardInterrupt:
            click.echo("secretops: error: interrupted", err=True)
            ctx.exit(int(ExitCode.KEYBOARD_INTERRUPT))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from secretops.cli._fast import version_line

        click.echo(version_line())
        ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", "-v", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
@click.option("--disable-version-check", is_flag=True, hidden=True,
              help="Accepted for sops compatibility; secretops never checks online.")
def cli(disable_version_check: bool) -> None:
    """Encrypt secrets in YAML, JSON, dotenv, INI and binary files, in the SOPS format.

    Files secretops writes are read by sops, Flux, helm-secrets and every SOPS tool, and the
    other way round.
    """


def _register() -> None:
    from secretops.cli import (
        check,
        completion,
        decrypt,
        edit,
        encrypt,
        execcmd,
        filestatus,
        git,
        groups,
        keygen,
        keyservice,
        log,
        publish,
        rotate,
        seal,
        setvalue,
        status,
        unseal,
        updatekeys,
        vault,
    )

    for mod in (encrypt, decrypt, edit, keygen, filestatus, updatekeys, rotate, check, vault,
                completion, keyservice, log, status):
        cli.add_command(mod.command)
    cli.add_command(setvalue.set_command)
    cli.add_command(setvalue.unset_command)
    cli.add_command(git.group)
    cli.add_command(groups.group)
    cli.add_command(publish.command)
    cli.add_command(execcmd.exec_env)
    cli.add_command(execcmd.exec_file)
    for sealing_command in (seal.command, unseal.unseal_command, unseal.reseal_command,
                            unseal.verify_command):
        cli.add_command(sealing_command)
    cli.add_command(__import__("secretops.cli.converteso", fromlist=["command"]).command)


_register()
