"""PGP key entries are checked before gpg sees them (secretops.core.pgpmsg): what sops and gpg
write passes; what would make gpg ask for passphrases, read further messages or try many keys is
refused, each with its reason."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from secretops.core.limits import MAX_PGP_KEY_PACKETS
from secretops.core.pgpmsg import ARMOR_BEGIN, ARMOR_END, PgpMessageError, read_message
from secretops.errors import LimitExceededError

EXAMPLE = Path(__file__).parent.parent / "testdata" / "sops-examples" / "example.yaml"
SOPS_MADE = [str(e["enc"]) for e in yaml.safe_load(EXAMPLE.read_text())["sops"]["pgp"]]


def _armor(data: bytes) -> str:
    b64 = base64.b64encode(data).decode()
    return "\n".join([ARMOR_BEGIN, "", *(b64[i:i + 64] for i in range(0, len(b64), 64)),
                      ARMOR_END])


def _body(text: str) -> bytes:
    lines = text.strip().splitlines()
    return base64.b64decode("".join(ln for ln in lines[1:-1] if ln and ":" not in ln
                                    and not ln.startswith("=")))


def _split(data: bytes) -> tuple[bytes, bytes]:
    """A message's first packet (the public-key packet), and the rest."""
    if data[0] & 0x40:  # new format (sops's Go library), 1- or 2-byte length
        first = data[1]
        end = 2 + first if first < 192 else 3 + ((first - 192) << 8) + data[2] + 192
    else:  # old format (gpg)
        size = 1 << (data[0] & 3)
        end = 1 + size + int.from_bytes(data[1:1 + size], "big")
    return data[:end], data[end:]


@pytest.mark.parametrize("enc", SOPS_MADE)
def test_sops_made_entries_pass(enc: str) -> None:
    assert read_message(enc).key_packets == 1
    # armor headers, CRLF line ends and no CRC line are read as gpg reads them
    lines = enc.splitlines()
    assert read_message("\r\n".join([lines[0], "Version: GnuPG v2", *lines[1:]]))
    assert read_message("\n".join(ln for ln in lines if not ln.startswith("=")))


def test_the_limit_of_public_key_packets() -> None:
    key, rest = _split(_body(SOPS_MADE[0]))
    assert read_message(_armor(key * MAX_PGP_KEY_PACKETS + rest)).key_packets == \
        MAX_PGP_KEY_PACKETS
    with pytest.raises(LimitExceededError, match=f"more than {MAX_PGP_KEY_PACKETS} public-key"):
        read_message(_armor(key * (MAX_PGP_KEY_PACKETS + 1) + rest))


def _symmetric_key_packet() -> bytes:
    # version 4, AES-256, iterated and salted S2K (SHA-1, the largest count: gpg would hash
    # 65 MB per passphrase it tries)
    body = bytes([4, 9, 3, 2]) + bytes(8) + bytes([0xFF])
    return bytes([0x8C, len(body)]) + body


@pytest.mark.parametrize(("make", "why"), [
    (lambda k, r: _symmetric_key_packet() + r, "passphrase-encrypted session key"),
    (lambda k, r: k + _symmetric_key_packet() + r, "passphrase-encrypted session key"),
    (lambda k, r: r, "no public-key packet"),
    (lambda k, r: k, "no encrypted data packet"),
    (lambda k, r: k + r + k + r, "packet of type 1 after the encrypted data"),
    (lambda k, r: k + r + r, "packet of type 18 after the encrypted data"),
    (lambda k, r: k + bytes([0x88, 2, 0, 0]) + r, "packet of type 2 before"),  # a signature
    (lambda k, r: k + r[:-5], "cut short"),
    (lambda k, r: b"\x00" + k + r, "does not start a packet"),
])
def test_what_a_key_entry_never_holds_is_refused(make: object, why: str) -> None:
    key, rest = _split(_body(SOPS_MADE[0]))
    with pytest.raises(PgpMessageError, match=why):
        read_message(_armor(make(key, rest)))  # type: ignore[operator]


@pytest.mark.parametrize(("text", "why"), [
    ("", "no BEGIN PGP MESSAGE line"),
    ("hQIMA…", "no BEGIN PGP MESSAGE line"),
    (SOPS_MADE[0] + "\n" + SOPS_MADE[0], "more than one PGP message"),
    (SOPS_MADE[0] + "\nmore text", "does not end with its END line"),
    (SOPS_MADE[0].replace("\n\n", "\n\n\u00e9", 1), "not valid base64"),
])
def test_what_is_not_one_armored_message_is_refused(text: str, why: str) -> None:
    with pytest.raises(PgpMessageError, match=why):
        read_message(text)


def test_an_entry_past_the_size_of_a_key_entry_is_refused_unread() -> None:
    with pytest.raises(LimitExceededError, match="characters long"):
        read_message(ARMOR_BEGIN + "\n" + "A" * (64 << 10) + "\n" + ARMOR_END)
