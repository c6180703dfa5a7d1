"""``secretops check``: the pre-commit guard against committing plaintext secrets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import click

from secretops.cli._bulk import many_options


class _File(NamedTuple):
    name: str  # as shown in findings
    where: str  # its path in the working tree (rules and allowlist globs apply to it)
    data: bytes


@click.command("check")
@click.argument("paths", nargs=-1)
@click.option("--staged", is_flag=True,
              help="Check what is staged for the next commit (the index), not the working tree.")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml to use (default: searched upwards from each file).")
@many_options
def command(paths: tuple[str, ...], staged: bool, config_path: str | None,
            files_from: str | None, null: bool, jobs: int | None) -> None:
    """Fail when secrets would be committed in plaintext. Needs no key.

    Reports, one line each (FILE: PATH: reason, never a value): a file that a .sops.yaml
    creation rule with a path_regex matches but that is not encrypted; a Kubernetes Secret
    whose data or stringData holds plaintext; an encrypted file whose metadata is malformed
    or that holds plaintext where its own selection rule says ciphertext belongs. Exits 158
    when there is any finding.

    PATHS are files and directories (hidden directories and what git ignores are skipped),
    and the names in --files-from; the default is the current directory, or with --staged
    every staged file. The working tree is checked in parallel. Files meant to be plaintext are
    skipped when listed under secretops.check.allow in .sops.yaml or marked with a line
    '# secretops: allow-plaintext'. See docs/workflows/pre-commit.md.

    \b
      secretops check --staged          # in a pre-commit hook (secretops git setup --hook)
      secretops check                   # in CI, over the whole checkout
    """
    from secretops.cli._actions import report
    from secretops.errors import ExitCode, SecretOpsError

    if staged and files_from is not None:
        sys.exit(report(SecretOpsError("--staged checks the index; --files-from names files "
                                       "of the working tree",
                                       code=ExitCode.CONFLICTING_PARAMETERS)))
    if not staged:
        sys.exit(_working_tree(paths, files_from, null, jobs, config_path))
    try:
        checked, allowed, total, bad_files = _check_staged(paths, config_path)
    except SecretOpsError as e:
        sys.exit(report(e))
    sys.exit(_verdict(checked, allowed, total, bad_files))


def _check_staged(paths: tuple[str, ...], config_path: str | None
                  ) -> tuple[int, int, int, int]:
    import os

    from secretops.git.guard import Policy, check_data, is_skipped

    checked = allowed = total = 0
    bad_files: set[str] = set()
    # the .sops.yaml files of the index decide, as they will in the commit
    top = _top()
    policy = Policy(os.environ, config_path, _staged_configs(top))
    for file in _staged(paths, top):
        if is_skipped(file.where):
            continue
        checked += 1
        verdict = policy.verdict(file.where, file.data)
        if verdict.allowed_by:
            allowed += 1
            continue
        for finding in check_data(file.name, file.data, verdict=verdict):
            click.echo(str(finding))
            bad_files.add(finding.file)
            total += 1
    return checked, allowed, total, len(bad_files)


def _working_tree(paths: tuple[str, ...], files_from: str | None, null: bool,
                  jobs: int | None, config_path: str | None) -> int:
    """The working tree's files, checked in parallel (:mod:`secretops.bulk`)."""
    import os

    from secretops.bulk.jobs import CheckJob
    from secretops.cli._actions import report
    from secretops.cli._bulk import Tally, collect, run_many
    from secretops.errors import SecretOpsError

    try:
        items = collect(paths or (() if files_from else (".",)), files_from, null).items
    except SecretOpsError as e:
        return report(e)
    seen: list[Tally] = []

    def summary(tally: Tally) -> str | None:
        seen.append(tally)
        return None  # printed by _verdict, after the failures' lines

    code = run_many(CheckJob(os.environ, config_path), items, jobs=jobs, label="check",
                    summary=summary)
    tally = seen[0]
    if tally.failures:  # some files could not be checked: no claim about the rest
        return code
    return _verdict(tally.tags["checked"], tally.tags["allowed"], tally.lines,
                    tally.tags["finding"])


def _verdict(checked: int, allowed: int, total: int, bad_files: int) -> int:
    """Print the summary line; report plaintext found (exit 158)."""
    from secretops.cli._actions import report
    from secretops.errors import ExitCode, SecretOpsError

    tail = f" ({allowed} allowlisted)" if allowed else ""
    if not total:
        click.echo(f"secretops: checked {_n(checked, 'file')}{tail}: no plaintext secrets")
        return 0
    click.echo(f"secretops: checked {_n(checked, 'file')}{tail}: "
               f"{_n(total, 'problem')} in {_n(bad_files, 'file')}")
    return report(SecretOpsError(
        "plaintext secrets found: this must not be committed",
        code=ExitCode.PLAINTEXT_FOUND,
        hints=("encrypt the files (secretops encrypt -i FILE) and stage them again",
               "a file meant to be plaintext can be allowlisted: see "
               "docs/workflows/pre-commit.md"),
    ))


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _git(*args: str, input: bytes | None = None) -> bytes:
    import subprocess

    from secretops.errors import SecretOpsError

    try:
        p = subprocess.run(["git", *args], input=input, capture_output=True,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except OSError as e:
        raise SecretOpsError(f"--staged needs git: {e.strerror}") from None
    if p.returncode:
        why = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SecretOpsError(f"git {args[0]} failed: {why[0] if why else p.returncode}",
                             hints=("--staged checks the index of the git repository you "
                                    "are in",))
    return p.stdout


def _top() -> str:
    """The top directory of the work tree."""
    import os

    return os.fsdecode(_git("rev-parse", "--show-toplevel").rstrip(b"\n"))


def _staged(paths: tuple[str, ...], top: str) -> Iterator[_File]:
    """Staged files (added, copied, modified; regular files only) with their index content."""
    import os

    raw = _git("diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev",
               "--diff-filter=ACMRT", "--")
    fields = raw.split(b"\0")
    entries: list[tuple[str, str]] = []  # (path relative to top, blob id)
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.split()
        if len(parts) < 5 or parts[1] not in (b"100644", b"100755"):
            continue  # symlinks, submodules
        entries.append((os.fsdecode(path), parts[3].decode("ascii")))
    wanted = [os.path.abspath(p) for p in paths]
    selected = []
    for rel, blob in entries:
        where = os.path.join(top, rel)
        if wanted and not any(where == w or where.startswith(w.rstrip(os.sep) + os.sep)
                              for w in wanted):
            continue
        selected.append((where, blob))
    blobs = _read_blobs([blob for _, blob in selected])
    for where, blob in selected:
        yield _File(os.path.relpath(where), where, blobs[blob])


def _staged_configs(top: str) -> dict[Path, bytes]:
    """Every ``.sops.yaml`` / ``.sops.yml`` in the index: absolute path → staged content."""
    import os

    from secretops.configpath import CONFIG_NAMES

    # the whole index, with paths from the top, wherever in the work tree this runs
    raw = _git("ls-files", "--stage", "-z", "--full-name", "--",
               *(f":(top,glob)**/{n}" for n in CONFIG_NAMES))
    found: list[tuple[Path, str]] = []
    for entry in raw.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, blob = meta.split()[:2]
        if mode in (b"100644", b"100755"):
            found.append((Path(top, os.fsdecode(path)), blob.decode("ascii")))
    blobs = _read_blobs([blob for _, blob in found])
    return {path: blobs[blob] for path, blob in found}


def _read_blobs(ids: list[str]) -> dict[str, bytes]:
    """Blob contents by id, in one ``git cat-file --batch`` run."""
    if not ids:
        return {}
    out = _git("cat-file", "--batch", input="".join(f"{i}\n" for i in ids).encode("ascii"))
    blobs: dict[str, bytes] = {}
    pos = 0
    for blob_id in ids:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3:
            from secretops.errors import SecretOpsError

            raise SecretOpsError(f"git cat-file: the staged blob {blob_id} is missing")
        size = int(header[2])
        blobs[blob_id] = out[end + 1:end + 1 + size]
        pos = end + 1 + size + 1  # the content is followed by a newline
    return blobs
