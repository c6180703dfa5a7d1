#!/usr/bin/env python3
"""A toy age plugin, for tests only: it speaks the real age plugin protocol over stdio.

Recipient ``age1xortest1…`` and identity ``AGE-PLUGIN-XORTEST-1…`` carry the same 32 random
bytes; a file key is wrapped by XOR with them. That is not encryption worth the name — the point
is to exercise the plugin machinery (pyrage's and the sops binary's plugin clients, the
``recipient-v1`` and ``identity-v1`` state machines) with a plugin we control, because no real
plugin is installable here. Install as ``age-plugin-xortest`` on PATH.
"""

from __future__ import annotations

import base64
import sys

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
TAG = "xortest"


def _polymod(values: list[int]) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (b >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (tobits - bits)) & maxv)
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    d = _convertbits(data, 8, 5, True)
    poly = _polymod(_hrp_expand(hrp) + d + [0] * 6) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[x] for x in d + checksum)


def bech32_decode(text: str) -> bytes:
    text = text.lower()
    pos = text.rfind("1")
    values = [CHARSET.index(c) for c in text[pos + 1 :]]
    return bytes(_convertbits(values[:-6], 5, 8, False))


def read_stanza(inp: object) -> tuple[list[str], bytes]:
    line = inp.readline().decode()  # type: ignore[attr-defined]
    if not line:
        raise EOFError
    args = line[3:].rstrip("\n").split(" ")
    body = ""
    while True:
        chunk = inp.readline().decode().rstrip("\n")  # type: ignore[attr-defined]
        body += chunk
        if len(chunk) < 64:
            break
    return args, base64.b64decode(body + "=" * (-len(body) % 4))


def write_stanza(out: object, args: list[str], body: bytes = b"") -> None:
    text = base64.b64encode(body).decode().rstrip("=")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    out.write(("-> " + " ".join(args) + "\n" + "\n".join(lines) + "\n").encode())  # type: ignore[attr-defined]
    out.flush()  # type: ignore[attr-defined]


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def recipient_v1(inp: object, out: object) -> None:
    keys: list[bytes] = []
    file_keys: list[bytes] = []
    while True:
        args, body = read_stanza(inp)
        if args[0] == "add-recipient":
            keys.append(bech32_decode(args[1]))
        elif args[0] == "wrap-file-key":
            file_keys.append(body)
        elif args[0] == "done":
            break
    for index, file_key in enumerate(file_keys):
        for key in keys:
            write_stanza(out, ["recipient-stanza", str(index), TAG], xor(file_key, key))
            read_stanza(inp)  # ok
    write_stanza(out, ["done"])


def identity_v1(inp: object, out: object) -> None:
    keys: list[bytes] = []
    stanzas: list[tuple[int, bytes]] = []
    while True:
        args, body = read_stanza(inp)
        if args[0] == "add-identity":
            keys.append(bech32_decode(args[1]))
        elif args[0] == "recipient-stanza" and args[2] == TAG:
            stanzas.append((int(args[1]), body))
        elif args[0] == "done":
            break
    for index, body in stanzas:
        for key in keys:
            write_stanza(out, ["file-key", str(index)], xor(body, key))
            read_stanza(inp)  # ok
            break
    write_stanza(out, ["done"])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        import os

        raw = os.urandom(32)
        print(bech32_encode("age-plugin-xortest-", raw).upper())
        print(bech32_encode("age1" + TAG, raw))
        return
    mode = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--age-plugin=")), "")
    if mode == "recipient-v1":
        recipient_v1(sys.stdin.buffer, sys.stdout.buffer)
    elif mode == "identity-v1":
        identity_v1(sys.stdin.buffer, sys.stdout.buffer)
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
