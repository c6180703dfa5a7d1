"""``decrypt --output-dir DIR``: where each plaintext goes, and where it must not.

The tree is mirrored: a file named ``secrets/prod/db.enc.yaml`` (relative to the working
directory, as given or found) is written to ``DIR/secrets/prod/db.enc.yaml``, under the same
name. The rules, checked before anything is decrypted:

* **Never into the source tree.** Plaintext under a git work tree is one ``git add -A`` away
  from a commit. DIR may not be inside the work tree of any file to decrypt — unless git
  ignores DIR there (a ``.decrypted/`` in ``.gitignore``). Outside git, DIR may not be inside a
  directory given to decrypt, nor contain one. In any case a plaintext never replaces the file
  it was decrypted from.
* **Never over an existing file** unless ``--overwrite`` is given: the name is taken
  atomically (:func:`secretops.fileio.write_file` with ``exclusive``), so a file that appears
  meanwhile is not replaced either.
* **Private.** Plaintext files are created 0600 and every directory created for them 0700 (DIR
  itself included when it is made). An existing directory is used as it is; a symbolic link
  where a directory of the mirror belongs is refused (it would lead the plaintext elsewhere).
* A file outside the working directory (``../x``, an absolute path elsewhere) cannot be
  mirrored and fails; run the command from a directory above the files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from secretops.errors import ExitCode, SecretOpsError

DIR_MODE = 0o700


def _refused(message: str, hint: str) -> SecretOpsError:
    return SecretOpsError(message, code=ExitCode.COULD_NOT_WRITE_OUTPUT, hints=(hint,))


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def check_destination(out_dir: str, files: Sequence[str], directories: Sequence[str]) -> None:
    """Refuse an ``--output-dir`` in the source tree (module docstring); ``files`` are the
    files to decrypt, ``directories`` the directories given."""
    from secretops.bulk.paths import ignored_by_git, in_work_tree

    out = os.path.realpath(out_dir)
    tops: dict[str, None] = {}
    for parent in dict.fromkeys(os.path.realpath(os.path.dirname(os.path.abspath(f)))
                                for f in files):
        if os.path.isdir(parent) and not any(_inside(parent, t) for t in tops):
            top = in_work_tree(parent)  # one git run per work tree, not per directory
            if top is not None:
                tops[os.path.realpath(top)] = None
    for top in tops:
        if _inside(out, top) and not ignored_by_git(out_dir, top):
            raise _refused(
                f"the output directory {out_dir} is inside the git work tree {top}, where the "
                "files come from: the plaintext could be committed",
                "choose a directory outside it, or one that its .gitignore ignores")
    for d in directories:
        src = os.path.realpath(d)
        if _inside(out, src) or _inside(src, out):
            raise _refused(
                f"the output directory {out_dir} overlaps the directory {d} being decrypted",
                "choose a directory outside the tree being decrypted")


def make_root(out_dir: str) -> None:
    """Create ``out_dir`` (0700, and its missing parents 0700) unless it is a directory."""
    try:
        os.makedirs(out_dir, mode=DIR_MODE, exist_ok=True)
    except FileExistsError:
        raise _refused(f"the output directory {out_dir} exists and is not a directory",
                       "name a directory") from None
    except OSError as e:
        raise _refused(f"cannot create the output directory {out_dir}: {e.strerror}",
                       "check the path and its permissions") from None


def target(out_dir: str, file: str) -> str:
    """Where the plaintext of ``file`` goes; its directories under ``out_dir`` are made."""
    rel = os.path.normpath(os.path.relpath(os.path.abspath(file)))
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise _refused("outside the working directory: the tree cannot be mirrored",
                       "run the command from a directory above the files")
    parts = rel.split(os.sep)
    here = out_dir
    for part in parts[:-1]:
        here = os.path.join(here, part)
        try:
            os.mkdir(here, DIR_MODE)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                raise _refused(f"{here} is in the way of the mirrored tree (not a directory, "
                               "or a symbolic link)", "move it away") from None
        except OSError as e:
            raise _refused(f"cannot create {here}: {e.strerror}",
                           "check the output directory's permissions") from None
    out = os.path.join(here, parts[-1])
    if os.path.exists(out) and os.path.samefile(out, file):
        raise _refused("the output would replace the encrypted file itself",
                       "choose another output directory")
    return out
