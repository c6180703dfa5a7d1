"""What ``git diff`` shows for an encrypted file: the textconv driver (``secretops git textconv``).

git runs the driver once per file per revision, with the blob in a temporary file whose name
ends in the original base name (so the format still follows the extension). It must never
break git, so every outcome is some text on stdout and exit 0:

* a file without sops metadata passes through byte for byte (a quick byte check first, so the
  broad ``*.yaml`` attributes ``git setup`` may write cost almost nothing on plain files);
* with a key: the plaintext, in the file's own layout, followed by a comment trailer naming
  the master keys — so a review also sees keys added or removed (``updatekeys``, ``rotate``);
* without a key: the encrypted file with every value masked as ``ENC[str 1a2b3c4d]`` (a short
  hash of the ciphertext: a changed value shows as changed, and nothing secret is revealed),
  under a first line saying that no key was found;
* a file that does not parse, or whose MAC does not match, is shown as well as can be, with a
  first line saying what is wrong. A file that cannot be decrypted at all (a malformed value,
  altered metadata, a limit passed) is shown as its own text with every well-formed value
  masked, under a first line giving the reason: the diff still shows what changed, the broken
  part appears as it is (masking it would hide what a reviewer must see), and git goes on
  with the rest of the history, which a failing driver would stop.

git's ``cachetextconv`` must stay off: git would store the decrypted text inside ``.git``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

# (data, format, ignore_mac) -> the opened file (secretops.fileops.OpenedFile)
Opener = Callable[[bytes, str, bool], object]

_MARKERS = (b"ENC[AES256_GCM", b"sops_mac", b"sops_version")
_ENC = re.compile(rb"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]*,"
                  rb"tag:[A-Za-z0-9+/=]*,type:(\w+)\]")


def looks_like_sops(data: bytes) -> bool:
    """Could ``data`` be a sops file? (No: a plain file, passed through without parsing.)"""
    return any(m in data for m in _MARKERS)


def _mask(data: bytes) -> bytes:
    import hashlib  # only here: the decrypting path never loads the system's OpenSSL

    def one(m: re.Match[bytes]) -> bytes:
        digest = hashlib.sha256(m.group(0)).hexdigest()[:8].encode()
        return b"ENC[" + m.group(1) + b" " + digest + b"]"

    return _ENC.sub(one, data)


def _comment(fmt: str) -> bytes:
    return b"//" if fmt == "json" else b"#"


def _trailer(metadata: object, fmt: str) -> bytes:
    from secretops.core.metadata import Metadata
    from secretops.keys import describe_entry

    assert isinstance(metadata, Metadata)
    c = _comment(fmt)
    lines = [c + b" --- sops master keys (shown by secretops textconv) ---"]
    many = len(metadata.key_groups) > 1
    for n, group in enumerate(metadata.key_groups):
        prefix = f"group {n + 1}: " if many else ""
        for entry in group:
            lines.append(c + b" " + (prefix + describe_entry(entry)).encode("utf-8", "replace"))
    if many:
        lines.append(c + f" shamir threshold: {metadata.shamir_threshold or 'all'}".encode())
    return b"\n".join(lines) + b"\n"


def unreadable(data: bytes, name: str, reason: str) -> bytes:
    """What git diffs for a file that cannot be decrypted: a line with the reason, then the
    file with its well-formed values masked."""
    from secretops.stores import format_for_path

    head = _comment(format_for_path(name)) + b" secretops: cannot decrypt: "
    return head + " ".join(reason.split()).encode("utf-8", "replace") + b"\n" + _mask(data)


class Shown(NamedTuple):
    """What :func:`convert` made of one version: the text, and how it was made."""

    text: bytes
    outcome: str  # one of PLAIN, DECRYPTED, MAC_MISMATCH, NO_KEY, UNREADABLE
    reason: str = ""  # for UNREADABLE: why (never a value: error messages hold none)


PLAIN, DECRYPTED, MAC_MISMATCH, NO_KEY, UNREADABLE = (
    "plain", "decrypted", "mac-mismatch", "no-key", "unreadable")


def textconv(data: bytes, name: str, env: Mapping[str, str]) -> bytes:
    """The text git should diff for the blob ``data`` of the file called ``name``."""
    return convert(data, name, env).text


def convert(data: bytes, name: str, env: Mapping[str, str], *,
            opener: Opener | None = None, trailer: bool = True) -> Shown:
    """:func:`textconv` with its outcome. ``opener`` opens an encrypted file (default
    :func:`secretops.fileops.open_file`; ``secretops log`` passes one that reuses data keys
    across versions); ``trailer=False`` leaves out the master keys, so a decrypted version is
    exactly what ``sops decrypt`` prints."""
    if not looks_like_sops(data):
        return Shown(data, PLAIN)
    from secretops import fileops
    from secretops.errors import MacMismatchError, MetadataError, NoKeyError, SecretOpsError
    from secretops.stores import format_for_path

    open_file: Opener = opener or _opener(env)
    fmt = format_for_path(name)
    c = _comment(fmt)
    warning = b""
    try:
        try:
            opened = open_file(data, fmt, False)
        except MacMismatchError:
            warning = c + b" secretops: MAC MISMATCH: this version was changed outside sops\n"
            opened = open_file(data, fmt, True)
    except MetadataError:  # the markers were there by chance: not an encrypted file
        return Shown(data, PLAIN)
    except NoKeyError:
        return Shown(c + b" secretops: no key found to decrypt this file; values are masked\n"
                     + _mask(data), NO_KEY)
    except SecretOpsError as e:
        return Shown(unreadable(data, name, e.message), UNREADABLE, e.message)
    assert isinstance(opened, fileops.OpenedFile)
    plain = bytes(opened.store.emit(opened.docs, None, opened.loaded.layout))
    outcome = MAC_MISMATCH if warning else DECRYPTED
    if fmt == "binary":
        return Shown(warning + plain, outcome)
    if plain and not plain.endswith(b"\n"):
        plain += b"\n"
    keys = _trailer(opened.metadata, fmt) if trailer else b""
    return Shown(warning + plain + keys, outcome)


def _opener(env: Mapping[str, str]) -> Opener:
    from secretops import fileops

    def open_file(data: bytes, fmt: str, ignore_mac: bool) -> object:
        return fileops.open_file(data, format=fmt, env=env, ignore_mac=ignore_mac,
                                 keep_ivs=False)

    return open_file
