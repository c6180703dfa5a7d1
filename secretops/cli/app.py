"""The click application: the ``secretops`` group and its subcommands."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
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


# Every subcommand, by name: its module and the command's name there. A command's module is
# imported when the command is looked up, so a run imports its own command only (importing all
# of them cost ~25 ms of CPU on every run, a tenth of a many-file run over 200 files).
_COMMANDS = {
    "encrypt": "encrypt:command", "decrypt": "decrypt:command", "edit": "edit:command",
    "keygen": "keygen:command", "filestatus": "filestatus:command",
    "updatekeys": "updatekeys:command", "rotate": "rotate:command", "check": "check:command",
    "vault": "vault:command", "completion": "completion:command",
    "keyservice": "keyservice:command", "log": "log:command", "status": "status:command",
    "set": "setvalue:set_command", "unset": "setvalue:unset_command", "git": "git:group",
    "groups": "groups:group", "publish": "publish:command", "exec-env": "execcmd:exec_env",
    "exec-file": "execcmd:exec_file", "seal": "seal:command", "unseal": "unseal:unseal_command",
    "reseal": "unseal:reseal_command", "verify": "unseal:verify_command",
    "convert-eso": "converteso:command",
}


class _LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands (click's ``Group.commands``), each imported on first use."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._where: dict[str, str | None] = dict(table)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            where = self._where[name]
            if where is None:
                raise KeyError(name)
            module, attr = where.split(":")
            # __import__, not importlib's: -X importtime (the import budget tests) sees it
            command = getattr(__import__(f"secretops.cli.{module}", fromlist=[attr]), attr)
            assert isinstance(command, click.Command)
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._where.setdefault(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._where[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


cli.commands = _LazyCommands(_COMMANDS)
