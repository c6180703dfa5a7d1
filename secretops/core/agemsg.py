"""age messages, read just far enough to bound them before any key touches them.

An age message (``age-encryption.org/v1``, https://c2sp.org/age) starts with a text header::

    age-encryption.org/v1
    -> X25519 <ephemeral share>
    <body: base64 lines of 64 columns, ended by a shorter (maybe empty) line>
    -> <type> <args…>                  (one stanza per recipient, plus decoys)
    <body>
    --- <header MAC>
    <binary payload: 16-byte nonce, then the encrypted data>

Every wrapped data key secretops reads is one: a sops ``age`` entry's ``enc`` (the message,
ASCII-armored) and the wrapped key inside a sealed value (binary). The age library secretops
uses costs time quadratic in the header's size when it parses a header from memory, and every
identity tries every stanza, so a header with thousands of stanzas kept ``decrypt`` busy for
minutes. :func:`read_header` walks the header once, stops at the first limit of
:mod:`secretops.core.limits` it passes, and raises :class:`~secretops.errors.LimitExceededError`;
a message that is not an age message at all raises :class:`AgeMessageError`. Both the sops key
source (:mod:`secretops.keys.age`) and SealedSecrets (:mod:`secretops.sealing`) call it before
they unwrap anything; the metadata reader calls it for every ``age`` entry of a file.

Nothing here is secret: stanza types and sizes are public parts of the message.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple

from secretops.core.limits import (
    MAX_AGE_HEADER_BYTES,
    MAX_AGE_PAYLOAD_BYTES,
    MAX_AGE_STANZA_BYTES,
    MAX_AGE_STANZAS,
)
from secretops.errors import LimitExceededError

VERSION_LINE = b"age-encryption.org/v1\n"
ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
_COLUMNS = 64
_MAC_LINE = 4 + 43 + 1  # "--- " + base64 of 32 bytes + LF
#: The longest binary message within the limits; armored, a third more plus line ends.
MAX_MESSAGE_BYTES = MAX_AGE_HEADER_BYTES + MAX_AGE_PAYLOAD_BYTES
_MAX_ARMORED_CHARS = MAX_MESSAGE_BYTES * 4 // 3 + MAX_MESSAGE_BYTES // 24 + 256


class AgeMessageError(ValueError):
    """Not an age v1 message (the reason says where it goes wrong; never key material)."""


class AgeHeader(NamedTuple):
    """What a header shows publicly: its stanza types, in order, and its sizes."""

    stanza_types: tuple[str, ...]
    header_bytes: int
    payload_bytes: int

    @property
    def recipient_types(self) -> list[str]:
        """Stanza types without the decoy ("grease") stanzas age libraries add."""
        return [t for t in self.stanza_types if not t.endswith("-grease")]


def dearmor(text: str | bytes) -> bytes:
    """The binary message inside ASCII armor (PEM, ``AGE ENCRYPTED FILE``), size-checked first."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise AgeMessageError("the armored age message is not ASCII") from None
    if len(text) > _MAX_ARMORED_CHARS:
        raise LimitExceededError(
            f"the age message is {len(text)} characters long, more than the "
            f"{_MAX_ARMORED_CHARS} a message within the limits can take")
    body = text.strip()
    if not body.startswith(ARMOR_BEGIN) or not body.endswith(ARMOR_END):
        raise AgeMessageError("the age message is not armored (no BEGIN/END AGE ENCRYPTED FILE)")
    b64 = "".join(body[len(ARMOR_BEGIN):-len(ARMOR_END)].split())
    try:
        return binascii.a2b_base64(b64, strict_mode=True)
    except (binascii.Error, ValueError):
        raise AgeMessageError("the armored age message is not valid base64") from None


def read_message(message: str | bytes) -> AgeHeader:
    """Check an armored or binary age message against the limits; its header's public facts.

    Raises :class:`LimitExceededError` at the first limit passed (without reading further) and
    :class:`AgeMessageError` when the bytes are not an age v1 message.
    """
    if isinstance(message, str) or not message.startswith(b"age-encryption.org/"):
        if isinstance(message, bytes) and message.lstrip()[:1] != b"-":
            raise AgeMessageError("not an age message (no age-encryption.org/v1 line)")
        message = dearmor(message)
    return read_header(message)


def read_header(data: bytes) -> AgeHeader:
    """Walk a binary age message's header once, within the limits (see :func:`read_message`)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise LimitExceededError(
            f"the age message is {len(data)} bytes, more than the {MAX_MESSAGE_BYTES} "
            "a message within the limits can take")
    if not data.startswith(VERSION_LINE):
        raise AgeMessageError("not an age v1 message (no age-encryption.org/v1 line)")
    pos = len(VERSION_LINE)
    types: list[str] = []
    while True:
        if pos > MAX_AGE_HEADER_BYTES:
            raise _header_too_big()
        if data.startswith(b"---", pos):
            end = data.find(b"\n", pos, pos + _MAC_LINE + 1)
            if end - pos + 1 != _MAC_LINE or data[pos + 3:pos + 4] != b" ":
                raise AgeMessageError("the age header's MAC line is malformed")
            pos = end + 1
            break
        if not data.startswith(b"-> ", pos):
            raise AgeMessageError("the age header has a line that is neither a stanza nor "
                                  "its MAC")
        if len(types) == MAX_AGE_STANZAS:
            raise LimitExceededError(
                f"the age message has more than {MAX_AGE_STANZAS} recipient stanzas")
        start, pos = pos, _stanza_end(data, pos)
        types.append(data[start + 3:data.index(b"\n", start)].split(b" ")[0]
                     .decode("ascii", "replace"))
    if pos > MAX_AGE_HEADER_BYTES:
        raise _header_too_big()
    payload = len(data) - pos
    if payload > MAX_AGE_PAYLOAD_BYTES:
        raise LimitExceededError(
            f"the age message's payload is {payload} bytes, more than {MAX_AGE_PAYLOAD_BYTES} "
            "(a wrapped data key needs 64)")
    return AgeHeader(tuple(types), pos, payload)


def _stanza_end(data: bytes, start: int) -> int:
    """The offset after the stanza at ``start``: its ``->`` line, then body lines up to and
    including the first one shorter than 64 columns. Never looks past the stanza limit."""
    limit = start + MAX_AGE_STANZA_BYTES
    end = data.find(b"\n", start, min(len(data), limit))
    if end < 0:
        raise _stanza_too_big() if len(data) >= limit else _truncated()
    if end == start + 3 or data[start + 3:start + 4] == b" ":
        raise AgeMessageError("an age stanza has no type")
    pos = end + 1
    while True:
        end = data.find(b"\n", pos, min(len(data), pos + _COLUMNS + 1))
        if end < 0:
            if len(data) - pos > _COLUMNS:
                raise AgeMessageError("an age stanza's body has a line longer than 64 columns")
            raise _truncated()
        columns, pos = end - pos, end + 1
        if pos - start > MAX_AGE_STANZA_BYTES:
            raise _stanza_too_big()
        if columns < _COLUMNS:
            return pos


def _truncated() -> AgeMessageError:
    return AgeMessageError("the age header is truncated")


def _stanza_too_big() -> LimitExceededError:
    return LimitExceededError(
        f"an age recipient stanza is longer than {MAX_AGE_STANZA_BYTES} bytes")


def _header_too_big() -> LimitExceededError:
    return LimitExceededError(f"the age header is longer than {MAX_AGE_HEADER_BYTES} bytes")
