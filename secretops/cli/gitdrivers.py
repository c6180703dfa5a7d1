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
@click.argument("marker_size", required=False, type=int, default=7)
def merge_driver_command(base: str, ours: str, theirs: str, path: str | None,
                         marker_size: int) -> None:
    """Merge an encrypted file value by value (git's %O %A %B %P %L).

    Writes the merged file to OURS and exits 0; on a conflict leaves OURS as it is (never
    plaintext), prints the conflicting paths and exits 1, so git reports the conflict. A file
    that is not encrypted on any side (a plain .yaml matched by a broad glob) is merged as text,
    exactly as git would (`git merge-file`, conflict markers included).
    Configured as merge.secretops.driver by `secretops git setup`.
    """
    from secretops.errors import SecretOpsError
    from secretops.fileio import read_input, write_file
    from secretops.git.merge import MergeConflict, is_sops_file, merge_files
    from secretops.stores import format_for_path

    name = path or ours
    fmt = format_for_path(name)
    versions = [read_input(p, rewrite=p == ours) for p in (base, ours, theirs)]
    encrypted = [is_sops_file(v, fmt) for v in versions]
    if not any(encrypted):
        sys.exit(_merge_text(base, ours, theirs, name, marker_size))
    plain = [side for side, e, v in zip(("base", "ours", "theirs"), encrypted, versions,
                                        strict=True) if v.strip() and not e]
    problem = None
    if not versions[0].strip() and all(encrypted[1:]):
        problem = "both sides added this file: there is no common version to merge values from"
    elif plain:
        problem = (f"{' and '.join(plain)} {'is' if len(plain) == 1 else 'are'} not encrypted "
                   "while another side is: merge it by hand (secretops writes no plaintext "
                   "into an encrypted file)")
    if problem is not None:
        click.echo(f"secretops: merge conflict in {name}: {problem}", err=True)
        click.echo(f"secretops: the file keeps our version; resolve with: secretops edit "
                   f"{name}", err=True)
        sys.exit(1)
    try:
        merged = merge_files(versions[0], versions[1], versions[2], fmt, env=os.environ,
                             options=_options(name))
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
    write_file(ours, merged, private=False, rewrite=True)


def _merge_text(base: str, ours: str, theirs: str, name: str, marker_size: int) -> int:
    """git's own line merge into OURS: 0 when clean, 1 when conflict markers were written."""
    import subprocess

    try:
        rc = subprocess.run(
            ["git", "merge-file", f"--marker-size={marker_size}", "-L", f"{name} (ours)",
             "-L", f"{name} (base)", "-L", f"{name} (theirs)", ours, base, theirs],
            stdin=subprocess.DEVNULL, check=False,
        ).returncode
    except OSError as e:
        click.echo(f"secretops: error: {name}: cannot run git merge-file: {e.strerror}",
                   err=True)
        return 2
    if rc < 0 or rc > 127:
        click.echo(f"secretops: error: {name}: git merge-file failed", err=True)
        return 2
    return 1 if rc else 0


def _options(name: str) -> object:
    from secretops.compose import settings
    from secretops.stores import StoreOptions

    try:
        return settings(name).options
    except Exception:  # the merge driver never fails on the config: default options
        return StoreOptions()
