"""How old a file's data key is, read from its git history (``rotate --older-than``).

The SOPS format records no data-key age: age entries have no ``created_at``, ``lastmodified``
changes on every edit, and ``updatekeys`` rewrites every ``created_at``. What does not change
until the data key does is *which key the file is sealed with*. So the signal is:

    the data key was born in the oldest commit of an unbroken run of the file's history,
    counting back from the newest commit, whose versions are all sealed with the current
    data key.

"Sealed with" is checked on the encrypted MAC of each historical version: AES-GCM
authenticates it with the data key, so a version opens with the current key exactly when it was
written under that key (see :func:`secretops.core.document.data_key_fits`). No value is
decrypted and no master key is needed for history; only the current version's data key, which
``rotate`` recovers anyway. Edits made with the real sops binary (``sops edit``, ``sops set``,
``sops updatekeys``) keep the data key, so they do not reset the age; ``sops rotate`` and
``secretops rotate`` do. The time is the committer date.

``status`` holds no key: :func:`sealing_age` reads the same history and tells "sealed with the
same key" from ciphertexts two neighbouring versions share (its docstring says when that can
come out younger, never older). Both walk the history with :func:`_born`.

The age is *unknown* (and a file is then due) when the file has no committed version, or is
not in a git repository. A shallow clone that ends while every version still fits cannot tell
the age: that is an error (fetch the full history), never a silent "due" for every file.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from secretops import limits
from secretops.core.document import data_key_fits
from secretops.core.metadata import Metadata
from secretops.errors import ExitCode, SecretOpsError
from secretops.git.catfile import CatFile
from secretops.stores import StoreOptions, get_store


class KeyAge(NamedTuple):
    """When the data key was first committed, or None when that cannot be told."""

    born: datetime | None
    commit: str | None
    why: str  # a short explanation for reports: "since abc1234", "not committed", …


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False, timeout=120)


def _history(path: Path) -> tuple[Path, list[tuple[str, int, str]]] | None:
    """(repository root, [(commit, committer time, path at that commit)] newest first)."""
    directory = path.parent
    top = _git(directory, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return None
    root = Path(top.stdout.decode().strip())
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    log = _git(root, "log", "--follow", "--name-only", "--format=%x01%H %ct", "--", rel)
    if log.returncode != 0:
        return root, []
    out: list[tuple[str, int, str]] = []
    for chunk in log.stdout.decode("utf-8", "surrogateescape").split("\x01")[1:]:
        lines = [line for line in chunk.splitlines() if line.strip()]
        commit, _, when = lines[0].partition(" ")
        out.append((commit, int(when), lines[-1] if len(lines) > 1 else rel))
    return root, out


def _is_shallow(root: Path) -> bool:
    res = _git(root, "rev-parse", "--is-shallow-repository")
    return res.stdout.strip() == b"true"


def _fits(data: bytes | None, fmt: str, options: StoreOptions, data_key: bytes) -> bool:
    if data is None:
        return False
    try:
        loaded = get_store(fmt, options).load(data)
        if loaded.metadata is None:
            return False
        return data_key_fits(Metadata.from_wire(loaded.metadata), data_key)
    except SecretOpsError:
        return False
    except Exception:  # a historical version that no longer parses: not sealed with this key
        return False


def data_key_age(path: str, data_key: bytes, fmt: str,
                 options: StoreOptions | None = None) -> KeyAge:
    """When the current data key of ``path`` entered its git history."""
    options = options or StoreOptions()
    return _born(path, lambda data: _fits(data, fmt, options, data_key))


def sealing_age(path: str, current: bytes, fmt: str,
                options: StoreOptions | None = None) -> KeyAge:
    """:func:`data_key_age` without the data key (``status``, which holds no key).

    Two versions are taken to share a data key when they share a ciphertext: a key entry's
    wrapped key (``edit``, ``set``: the metadata is kept), the encrypted MAC (``updatekeys``,
    ``vault rewrap``, ``groups``: the values and MAC are kept) or a value's ``ENC[…]`` (an edit
    that kept unchanged values' IVs). A new data key re-encrypts every value and MAC and wraps
    anew for every key, so a version written under another key shares none. Each version is
    compared with the next newer one (the first with ``current``, the working-tree file). The
    age can only come out younger than :func:`data_key_age`'s, never older: when one commit
    both re-wrapped every key and re-encrypted every value without a rotation (a ``sops
    updatekeys`` and a ``sops edit`` squashed together).
    """
    options = options or StoreOptions()
    newer = [_sealed_blobs(current, fmt, options)]

    def same(data: bytes | None) -> bool:
        blobs = _sealed_blobs(data, fmt, options)
        shared = bool(blobs & newer[0])
        newer[0] = blobs
        return shared

    return _born(path, same)


_ENC = re.compile(rb"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]*,"
                  rb"tag:[A-Za-z0-9+/=]*,type:[a-z]{1,8}\]")


def _sealed_blobs(data: bytes | None, fmt: str, options: StoreOptions) -> set[bytes]:
    """The ciphertexts of a version that only its data key could have made (nothing when it
    is not an encrypted file within the limits)."""
    if data is None or len(data) > limits.MAX_INPUT_BYTES:
        return set()
    try:
        loaded = get_store(fmt, options).load(data)
        if loaded.metadata is None:
            return set()
        meta = Metadata.from_wire(loaded.metadata)
    except SecretOpsError:
        return set()
    except Exception:  # a historical version that no longer parses: shares nothing
        return set()
    blobs = {m.group(0) for m in _ENC.finditer(data)}
    blobs.update(f"{e.kind}:{e.enc}".encode() for e in meta.all_keys() if e.enc)
    return blobs


def _born(path: str, same: Callable[[bytes | None], bool]) -> KeyAge:
    """The age by the module's rule, ``same`` telling (newest first) whether each committed
    version is sealed with the current data key."""
    found = _history(Path(path))
    if found is None:
        return KeyAge(None, None, "not in a git repository")
    root, history = found
    if not history:
        return KeyAge(None, None, "no committed version")
    blobs = CatFile(str(root))  # each version read up to the limit on input, never past it
    try:
        born: tuple[str, int] | None = None
        for commit, when, rel in history:
            blob = blobs.read(f"{commit}:{rel}")
            if not same(blob.data if blob else None):
                break
            born = (commit, when)
        else:
            if _is_shallow(root):
                raise SecretOpsError(
                    "the repository is a shallow clone, and the file's data key is older than "
                    "its visible history, so its age cannot be told",
                    code=ExitCode.HISTORY_INCOMPLETE,
                    file=path,
                    hints=("fetch the full history (git fetch --unshallow; in GitHub Actions: "
                           "actions/checkout with fetch-depth: 0)",),
                )
    finally:
        blobs.close()
    if born is None:
        # the newest commit has another data key: it was changed after the last commit
        now = datetime.now(UTC)
        return KeyAge(now, None, "rotated since the last commit")
    commit, when = born
    return KeyAge(datetime.fromtimestamp(when, UTC), commit, f"since commit {commit[:12]}")


def parse_duration(text: str) -> float:
    """``90d``, ``12w``, ``36h``, ``30m``, ``1y`` (365 days) → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
    text = text.strip().lower()
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise SecretOpsError(
            f"invalid duration {text!r}",
            code=ExitCode.CONFLICTING_PARAMETERS,
            hints=("use a number and a unit: 90d, 12w, 36h, 1y",),
        )
    return float(number) * units[unit]
