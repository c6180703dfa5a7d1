"""``secretops filestatus``: is a file encrypted? Prints ``{"encrypted":true|false}``."""

from __future__ import annotations

import click

from secretops.cli._common import FORMAT_CHOICE


@click.command("filestatus")
@click.argument("file")
@click.option("--input-type", type=FORMAT_CHOICE, help="Input format (default: from the name).")
def command(file: str, input_type: str | None) -> None:
    """Print whether FILE is SOPS-encrypted, as sops does."""
    from secretops import fileops
    from secretops.errors import SecretOpsError
    from secretops.fileio import read_input
    from secretops.stores import format_for_path

    try:
        data = read_input(file)
    except SecretOpsError as e:
        raise e.with_file(file) from None
    encrypted = fileops.is_encrypted(data, input_type or format_for_path(file))
    click.echo('{"encrypted":' + ("true" if encrypted else "false") + "}")
