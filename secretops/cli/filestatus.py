"""``secretops filestatus``: is a file encrypted? Prints ``{"encrypted":true|false}``."""

from __future__ import annotations

import click

from secretops.cli._bulk import many_options
from secretops.cli._common import FORMAT_CHOICE


@click.command("filestatus")
@click.argument("files", nargs=-1, metavar="FILE...")
@click.option("--input-type", type=FORMAT_CHOICE, help="Input format (default: from the name).")
@many_options
def command(files: tuple[str, ...], input_type: str | None, files_from: str | None,
            null: bool, jobs: int | None) -> None:
    """Print whether FILE is SOPS-encrypted, as sops does.

    Several files, directories (every file below, skipping what git ignores) or --files-from:
    one JSON object per line, {"file":"NAME","encrypted":true|false}, in the order given.
    """
    import sys

    from secretops import fileops
    from secretops.cli._bulk import is_many
    from secretops.errors import SecretOpsError
    from secretops.fileio import read_input
    from secretops.stores import format_for_path

    if not files and files_from is None:
        raise click.UsageError("Missing argument 'FILE'.")
    if is_many(files, files_from):
        sys.exit(_many(files, files_from, null, jobs, input_type))
    (file,) = files
    try:
        data = read_input(file)
    except SecretOpsError as e:
        raise e.with_file(file) from None
    encrypted = fileops.is_encrypted(data, input_type or format_for_path(file))
    click.echo('{"encrypted":' + ("true" if encrypted else "false") + "}")


def _many(files: tuple[str, ...], files_from: str | None, null: bool, jobs: int | None,
          input_type: str | None) -> int:
    from secretops.bulk.jobs import StatusJob
    from secretops.cli._actions import report
    from secretops.cli._bulk import collect, run_many
    from secretops.errors import SecretOpsError

    try:
        items = collect(files, files_from, null).items
    except SecretOpsError as e:
        return report(e)
    return run_many(StatusJob(input_type), items, jobs=jobs, label="filestatus",
                    summary=lambda t: None)
