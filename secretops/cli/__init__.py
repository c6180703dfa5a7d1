"""The ``secretops`` command line: a thin shell over :mod:`secretops.api`.

Every subcommand lives in its own module. Errors print as one line on stderr::

    secretops: error: FILE: PATH: what went wrong
    secretops: hint: what to try

and exit with the code from :class:`secretops.errors.ExitCode` (see ``docs/exit-codes.md``).
Heavy imports (cryptography, YAML, pyrage) happen inside commands, so ``--help`` and
``--version`` stay fast.
"""

from __future__ import annotations

from typing import Any

import click

from secretops import __version__
from secretops.errors import ExitCode, SecretOpsError


def print_error(err: SecretOpsError) -> None:
    click.echo(f"secretops: error: {err}", err=True)
    for hint in err.hints:
        click.echo(f"secretops: hint: {hint}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SecretOpsError as e:
            print_error(e)
            ctx.exit(int(e.code))
        except KeyboardInterrupt:
            click.echo("secretops: error: interrupted", err=True)
            ctx.exit(int(ExitCode.KEYBOARD_INTERRUPT))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-v", prog_name="secretops",
                      message="%(prog)s %(version)s (sops format 3.11)")
@click.option("--disable-version-check", is_flag=True, hidden=True,
              help="Accepted for sops compatibility; secretops never checks online.")
def cli(disable_version_check: bool) -> None:
    """Encrypt secrets in YAML, JSON, dotenv, INI and binary files, in the SOPS format.

    Files secretops writes are read by sops, Flux, helm-secrets and every SOPS tool, and the
    other way round.
    """


def _register() -> None:
    from secretops.cli import decrypt, encrypt, filestatus, keygen

    for mod in (encrypt, decrypt, keygen, filestatus):
        cli.add_command(mod.command)


_register()


def main() -> None:
    cli(prog_name="secretops")


if __name__ == "__main__":
    main()
