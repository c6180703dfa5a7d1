"""``secretops completion bash|zsh|fish``: the shell script that completes secretops's commands.

sops 3.11 prints urfave/cli's scripts for bash and zsh, which call ``sops …
--generate-bash-completion`` on every Tab. secretops prints click's scripts instead: they call
``secretops`` with ``_SECRETOPS_COMPLETE`` set, which completes subcommands, options and file
names from the same click definitions that parse them. fish is an addition (sops has none).
Load it as with sops: ``source <(secretops completion bash)``.
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", required=False, type=click.Choice(SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str | None) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
      source <(secretops completion bash)      # in ~/.bashrc
      source <(secretops completion zsh)       # in ~/.zshrc
      secretops completion fish > ~/.config/fish/completions/secretops.fish
    """
    if shell is None:  # sops prints the command's help and succeeds
        click.echo(ctx.get_help())
        return
    from click.shell_completion import get_completion_class

    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one of click's
    prog = root.info_name or "secretops"
    var = f"_{prog.replace('-', '_').upper()}_COMPLETE"
    click.echo(cls(root.command, {}, prog, var).source())
