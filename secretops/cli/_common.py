"""Helpers shared by subcommands: input selection, output writing, common options."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from secretops.errors import ExitCode, SecretOpsError

FORMAT_CHOICE = click.Choice(["yaml", "json", "dotenv", "ini", "binary"])


def io_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options every file-transforming command shares with sops."""
    for opt in reversed(
        [
            click.argument("file", required=False, default="-"),
            click.option("-i", "--in-place", is_flag=True, help="Write the result back to FILE."),
            click.option("--output", metavar="PATH", help="Write the result to PATH."),
            click.option("--input-type", type=FORMAT_CHOICE,
                         help="Input format (default: from the file name)."),
            click.option("--output-type", type=FORMAT_CHOICE,
                         help="Output format (default: the input format)."),
            click.option("--filename-override", metavar="NAME",
                         help="Use NAME to pick the format and the .sops.yaml rule "
                              "(for standard input)."),
            click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
                         help="The .sops.yaml to use (default: searched upwards)."),
        ]
    ):
        f = opt(f)
    return f


def check_io(file: str, in_place: bool, output: str | None) -> None:
    if in_place and output:
        raise SecretOpsError("--in-place and --output cannot be used together",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    if in_place and file == "-":
        raise SecretOpsError("--in-place needs a file, not standard input",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    if file == "-" and sys.stdin.isatty():
        raise SecretOpsError("no file given (and standard input is a terminal)",
                             code=ExitCode.NO_FILE_SPECIFIED)


def input_name(file: str, filename_override: str | None) -> str | None:
    if filename_override:
        return filename_override
    return None if file == "-" else file


def write_result(data: bytes, file: str, in_place: bool, output: str | None,
                 *, private: bool) -> None:
    """Write to the file in place, to --output, or to stdout.

    New files holding plaintext are created 0600; new encrypted files follow the umask.
    """
    from secretops.fileio import atomic_write

    if in_place:
        atomic_write(file, data)
        return
    if output:
        if private:
            mode = 0o600
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        atomic_write(output, data, new_mode=mode)
        return
    out = sys.stdout.buffer
    out.write(data)
    out.flush()
