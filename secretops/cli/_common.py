"""Click options shared by the file-transforming subcommands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

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
