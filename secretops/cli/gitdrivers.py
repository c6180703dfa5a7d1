"""The commands git itself runs: ``secretops git textconv`` and ``secretops git merge-driver``.

Both are configured by ``secretops git setup``; people rarely type them.
"""

from __future__ import annotations

import os
import sys

import click


@click.command("textconv")
@click.argument("file")
def textconv_command(file: str) -> None:
    """Print FILE for `git diff`: decrypted, or masked when no key is found.

    Configured as diff.secretops.textconv by `secretops git setup`.
    """
    from secretops.cli._actions import run_textconv

    code = run_textconv(file)
    if code:
        sys.exit(code)


@click.command("merge-driver")
@click.argument("base")
@click.argument("ours")
@click.argument("theirs")
@click.argument("path", required=False)
def merge_driver_command(base: str, ours: str, theirs: str, path: str | None) -> None:
    """Merge an encrypted file value by value (git's %O %A %B %P).

    Writes the merged file to OURS and exits 0; on a conflict leaves OURS as it is (never
    plaintext), prints the conflicting paths and exits 1, so git reports the conflict.
    Configured as merge.secretops.driver by `secretops git setup`.
    """
    from secretops.errors import SecretOpsError
    from secretops.fileio import atomic_write, read_input
    from secretops.gitmerge import MergeConflict, merge_files
    from secretops.stores import format_for_path

    name = path or ours
    try:
        merged = merge_files(read_input(base), read_input(ours), read_input(theirs),
                             format_for_path(name), env=os.environ, options=_options(name))
    except MergeConflict as e:
        click.echo(f"secretops: merge conflict in {name}:", err=True)
        for p in e.paths:
            click.echo(f"secretops:   {p}", err=True)
        click.echo(f"secretops: the file keeps our version; resolve with: secretops edit "
                   f"{name}", err=True)
        click.echo(f"secretops: their version: git show :3:{name} | secretops decrypt "
                   f"--filename-override {name}", err=True)
        sys.exit(1)
    except SecretOpsError as e:
        click.echo(f"secretops: error: {name}: cannot merge: {e.message}", err=True)
        for h in e.hints:
            click.echo(f"secretops: hint: {h}", err=True)
        sys.exit(1)
    atomic_write(ours, merged)


def _options(name: str) -> object:
    from secretops.config import find_config, load_config
    from secretops.stores import StoreOptions, format_for_path

    try:
        cfg = find_config(name, os.environ)
        return load_config(cfg).store_options(format_for_path(name)) if cfg else StoreOptions()
    except Exception:
        return StoreOptions()
