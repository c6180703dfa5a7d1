"""PGP messages, read just far enough to bound what gpg does with them before gpg sees them.

A sops ``pgp`` entry's ``enc`` is one ASCII-armored OpenPGP message (RFC 4880, RFC 9580) as
``gpg --encrypt -r FP`` writes it::

    -----BEGIN PGP MESSAGE-----
    <armor headers, optional: "Version: …", "Comment: …">

    <base64 lines>
    =<CRC-24, optional>
    -----END PGP MESSAGE-----

and inside, a sequence of packets: one public-key encrypted session key packet per recipient
key (tag 1; sops writes exactly one), then the one encrypted data packet (tag 9, 18 or 20) that
holds the data key. ``gpg --decrypt`` reads whatever it is given: every message of several
concatenated ones, and for each passphrase-encrypted session key packet (tag 3) it asks
gpg-agent for a passphrase — on a terminal, a prompt; without one, a pinentry that fails after
about a second. A 12 KB entry holding 65 such packets kept ``decrypt`` busy for over a minute.

:func:`read_message` walks the packet headers once (never the encrypted contents, which only
the key holder can read) and refuses, before gpg runs, what a key entry never holds: text that is
not one armored message, a passphrase-encrypted (symmetric-key) packet, a packet of any other
kind, more than one encrypted data packet, no public-key packet — with
:class:`PgpMessageError` — and more than
:data:`~secretops.core.limits.MAX_PGP_KEY_PACKETS` public-key packets, each of which makes gpg
try a secret key, with :class:`~secretops.errors.LimitExceededError`. The metadata reader calls
it for every ``pgp`` entry of a file, and the PGP key source before it runs gpg. What gpg does
inside the encrypted packet (decompression) is bounded while gpg runs: see
:mod:`secretops.keys.pgp`.

Nothing here is secret: packet types and counts are public parts of the message.
"""

from __future__ import annotations

import binascii
import re
from typing import NamedTuple

from secretops.core.limits import MAX_ENC_CHARS, MAX_PGP_KEY_PACKETS
from secretops.errors import LimitExceededError

ARMOR_BEGIN = "-----BEGIN PGP MESSAGE-----"
ARMOR_END = "-----END PGP MESSAGE-----"
_PUBLIC_KEY, _SYMMETRIC_KEY, _MARKER, _PADDING = 1, 3, 10, 21
#: the encrypted data packets: SED (gpg asks for a passphrase when no session key packet comes
#: first), SEIPD (what gpg writes), OCB/AEAD (LibrePGP, gpg 2.3+)
_ENCRYPTED = frozenset({9, 18, 20})
_ARMOR_HEADER = re.compile(r"[!-9;-~]+: ")  # "Version: GnuPG v2", "Comment: …"


class PgpMessageError(ValueError):
    """Not one PGP message of the kind a key entry holds (the reason says where; never key
    material)."""


class PgpMessage(NamedTuple):
    """What the packet headers show publicly."""

    key_packets: int  # public-key encrypted session key packets (one per recipient key)
    data_bytes: int  # the binary message's size


def dearmor(text: str) -> bytes:
    """The binary message inside one ``PGP MESSAGE`` armor."""
    if len(text) > MAX_ENC_CHARS:
        raise LimitExceededError(
            f"the PGP message is {len(text)} characters long, more than {MAX_ENC_CHARS}")
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != ARMOR_BEGIN:
        raise PgpMessageError("not an armored PGP message (no BEGIN PGP MESSAGE line first)")
    if lines.count(ARMOR_BEGIN) > 1:
        raise PgpMessageError("more than one PGP message: a key entry holds one")
    if lines[-1] != ARMOR_END:
        raise PgpMessageError("the armored PGP message does not end with its END line")
    body = lines[1:-1]
    start = 0
    while start < len(body) and _ARMOR_HEADER.match(body[start]):
        start += 1
    b64 = body[start:]
    if b64 and b64[-1].startswith("="):  # the CRC-24 line; gpg checks it
        b64 = b64[:-1]
    try:
        return binascii.a2b_base64("".join(b64), strict_mode=True)
    except (binascii.Error, ValueError):
        raise PgpMessageError("the armored PGP message is not valid base64") from None


def _length(data: bytes, pos: int) -> tuple[int, bool, int]:
    """A new-format body length at ``pos``: (length, partial, where the body starts)."""
    first = data[pos]
    if first < 192:
        return first, False, pos + 1
    if first < 224:
        return ((first - 192) << 8) + data[pos + 1] + 192, False, pos + 2
    if first == 255:
        return int.from_bytes(data[pos + 1:pos + 5], "big"), False, pos + 5
    return 1 << (first & 0x1F), True, pos + 1  # a partial body chunk: more lengths follow


def _packet(data: bytes, pos: int) -> tuple[int, int]:
    """The packet at ``pos``: (tag, where the next one starts)."""
    ctb = data[pos]
    if not ctb & 0x80:
        raise PgpMessageError(f"byte {pos} of the PGP message does not start a packet")
    if ctb & 0x40:  # new format
        tag = ctb & 0x3F
        length, partial, pos = _length(data, pos + 1)
        while partial:  # only data packets are streamed in chunks
            if tag not in _ENCRYPTED:
                raise PgpMessageError(f"a packet of type {tag} has partial body lengths")
            length, partial, pos = _length(data, pos + length)
        return tag, pos + length
    tag, kind = (ctb >> 2) & 0x0F, ctb & 0x03
    if kind == 3:  # indeterminate: to the end of the message
        return tag, len(data)
    size = 1 << kind
    if pos + 1 + size > len(data):
        raise IndexError(pos)
    return tag, pos + 1 + size + int.from_bytes(data[pos + 1:pos + 1 + size], "big")


def read_message(text: str) -> PgpMessage:
    """Check an armored PGP message from a key entry before gpg reads it.

    Raises :class:`~secretops.errors.LimitExceededError` past
    :data:`~secretops.core.limits.MAX_PGP_KEY_PACKETS` public-key packets (or past the size
    of a key entry), and :class:`PgpMessageError` when it is not one message of public-key
    packets followed by one encrypted data packet.
    """
    data = dearmor(text)
    pos = keys = 0
    encrypted = False
    try:
        while pos < len(data):
            tag, end = _packet(data, pos)
            if end > len(data):
                raise IndexError(end)
            if tag == _PUBLIC_KEY and not encrypted:
                keys += 1
                if keys > MAX_PGP_KEY_PACKETS:
                    raise LimitExceededError(
                        f"the PGP message has more than {MAX_PGP_KEY_PACKETS} public-key "
                        "packets (sops writes one)")
            elif tag == _SYMMETRIC_KEY:
                raise PgpMessageError(
                    "the PGP message holds a passphrase-encrypted session key (symmetric-key "
                    "packet): sops wraps data keys for public keys only, and gpg would ask for "
                    "a passphrase")
            elif tag in _ENCRYPTED and not encrypted:
                encrypted = True
            elif tag not in (_MARKER, _PADDING):  # gpg skips those
                where = "after the encrypted data" if encrypted else "before the encrypted data"
                raise PgpMessageError(
                    f"the PGP message has a packet of type {tag} {where}; a key entry holds "
                    "public-key packets and one encrypted data packet")
            pos = end
    except IndexError:
        raise PgpMessageError("the PGP message is cut short inside a packet") from None
    if not encrypted:
        raise PgpMessageError("the PGP message has no encrypted data packet")
    if not keys:
        raise PgpMessageError(
            "the PGP message has no public-key packet: gpg would ask for a passphrase")
    return PgpMessage(keys, len(data))
