"""``secretops check``: the pre-commit guard against committing plaintext secrets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import click


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
def command(paths: tuple[str, ...], staged: bool, config_path: str | None) -> None:
    """Fail when secrets would be committed in plaintext. Needs no key.

    Reports, one line each (FILE: PATH: reason, never a value): a file that a .sops.yaml
    creation rule with a path_regex matches but that is not encrypted; a Kubernetes Secret
    whose data or stringData holds plaintext; an encrypted file whose metadata is malformed
    or that holds plaintext where its own selection rule says ciphertext belongs. Exits 158
    when there is any finding.

    PATHS are files and directories (hidden directories are skipped); the default is the
    current directory, or with --staged every staged file. Files meant to be plaintext are
    skipped when listed under secretops.check.allow in .sops.yaml or marked with a line
    '# secretops: allow-plaintext'. See docs/workflows/pre-commit.md.

    \b
      secretops check --staged          # in a pre-commit hook (secretops git setup --hook)
      secretops check                   # in CI, over the whole checkout
    """
    import os

    from secretops.cli._actions import report
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.git.guard import Policy, check_data, is_skipped

    checked = allowed = 0
    bad_files: set[str] = set()
    total = 0
    try:
        # --staged: the .sops.yaml files of the index decide, as they will in the commit
        top = _top() if staged else ""
        policy = Policy(os.environ, config_path, _staged_configs(top) if staged else None)
        files = _staged(paths, top) if staged else _working_tree(paths or (".",))
        for file in files:
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
    except SecretOpsError as e:
        sys.exit(report(e))
    tail = f" ({allowed} allowlisted)" if allowed else ""
    if not total:
        click.echo(f"secretops: checked {_n(checked, 'file')}{tail}: no plaintext secrets")
        return
    click.echo(f"secretops: checked {_n(checked, 'file')}{tail}: "
               f"{_n(total, 'problem')} in {_n(len(bad_files), 'file')}")
    sys.exit(report(SecretOpsError(
        "plaintext secrets found: this must not be committed",
        code=ExitCode.PLAINTEXT_FOUND,
        hints=("encrypt the files (secretops encrypt -i FILE) and stage them again",
               "a file meant to be plaintext can be allowlisted: see "
               "docs/workflows/pre-commit.md"),
    )))


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _working_tree(paths: tuple[str, ...]) -> Iterator[_File]:
    import os

    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import read_bounded

    seen: set[str] = set()
    for path in paths:
        if not os.path.exists(path):
            raise SecretOpsError("no such file or directory", file=path,
                                 code=ExitCode.COULD_NOT_READ_INPUT)
        if os.path.isdir(path):
            names = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                names += [os.path.join(root, f) for f in sorted(files)]
        else:
            names = [path]
        for name in names:
            name = os.path.normpath(name)
            if name in seen or os.path.islink(name) or not os.path.isfile(name):
                continue
            seen.add(name)
            try:
                with open(name, "rb") as f:
                    data = read_bounded(f)  # a guard fails closed: too large is an error
            except SecretOpsError as e:
                raise e.with_file(name) from None
            except OSError as e:
                raise SecretOpsError(f"cannot read: {e.strerror}", file=name,
                                     code=ExitCode.COULD_NOT_READ_INPUT) from None
            yield _File(name, name, data)


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
