"""The building-block floor: the least a Python tool must do to encrypt or decrypt a SOPS file.

    python bench/floor.py encrypt FILE RECIPIENT [REGEX]
    python bench/floor.py decrypt FILE            # identity from $SOPS_AGE_KEY_FILE

It imports what any such tool needs (PyYAML's C parser, cryptography's AES-GCM, pyrage), reads
the file, runs libyaml's events over it with the least bookkeeping that yields each value's key
path (the AES-GCM associated data), wraps or unwraps the data key, and encrypts (or splits,
base64-decodes and decrypts) every selected value and hashes it for the MAC. It keeps no tree,
no layout, no comments, checks nothing and writes nothing: a real tool does all of that on top.
``bench/run.py`` times it like the two tools and prints its ratio against sops, so a goal below
the floor shows as such. Deliberately standalone (no ``bench`` or ``secretops`` imports).
"""

from __future__ import annotations

import os
import re
import sys
from binascii import a2b_base64, b2a_base64
from collections.abc import Iterator

import pyrage
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_ENC = re.compile(r"ENC\[AES256_GCM,data:([^,]+),iv:([^,]+),tag:([^,]+),type:([a-z]+)\]")
_AGE_BLOCK = re.compile(
    r"-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----", re.S
)


def values(text: str, rule: re.Pattern[str] | None) -> Iterator[tuple[str, str, bool]]:
    """(associated data, value, selected) for every scalar value outside the ``sops`` block."""
    ev_scalar, ev_map, ev_seq = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
    ev_ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    frames: list[list[object]] = []  # [is_map, path prefix, pending key, selected, in sops]
    parser = yaml.CSafeLoader(text)
    for ev in iter(parser.get_event, None):
        t = type(ev)
        if t is ev_scalar:
            if not frames:
                continue
            f = frames[-1]
            if f[0]:
                if f[2] is None:
                    f[2] = ev.value
                    continue
                key = str(f[2])
                f[2] = None
                if f[4] or (len(frames) == 1 and key == "sops"):
                    continue
                yield (f"{f[1]}{key}:", ev.value,
                       bool(f[3]) or rule is None or rule.search(key) is not None)
            elif not f[4]:
                yield str(f[1]), ev.value, bool(f[3]) or rule is None
        elif t is ev_map or t is ev_seq:
            prefix, selected, in_sops = "", False, False
            if frames:
                f = frames[-1]
                prefix, selected, in_sops = str(f[1]), bool(f[3]), bool(f[4])
                if f[0]:
                    key = str(f[2])
                    f[2] = None
                    in_sops = in_sops or (len(frames) == 1 and key == "sops")
                    prefix += key + ":"
                    selected = selected or (rule is not None and rule.search(key) is not None)
            frames.append([t is ev_map, prefix, None, selected, in_sops])
        elif t in ev_ends:
            frames.pop()


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode("ascii")


def encrypt(text: str, recipient: str, rule: re.Pattern[str] | None) -> int:
    key = os.urandom(32)
    pyrage.encrypt(key, [pyrage.x25519.Recipient.from_str(recipient)])
    aead = AESGCM(key)
    mac = hashes.Hash(hashes.SHA512())
    out = []
    for aad, value, selected in values(text, rule):
        plain = value.encode()
        mac.update(plain)
        if selected and value:
            iv = os.urandom(32)
            sealed = aead.encrypt(iv, plain, aad.encode())
            out.append(f"ENC[AES256_GCM,data:{_b64(sealed[:-16])},iv:{_b64(iv)},"
                       f"tag:{_b64(sealed[-16:])},type:str]")
    return len(out)


def decrypt(text: str, identity_file: str) -> int:
    with open(identity_file, encoding="utf-8") as f:
        secret = next(line for line in f if line.startswith("AGE-SECRET-KEY-"))
    block = _AGE_BLOCK.search(text)
    if block is None:
        raise SystemExit("floor: no age stanza in the file")
    armored = "\n".join(line.strip() for line in block.group(0).splitlines()) + "\n"
    key = pyrage.decrypt(armored.encode(), [pyrage.x25519.Identity.from_str(secret.strip())])
    aead = AESGCM(bytes(key))
    mac = hashes.Hash(hashes.SHA512())
    n = 0
    for aad, value, _ in values(text, None):
        m = _ENC.fullmatch(value)
        if m is None:
            mac.update(value.encode())
            continue
        data, iv, tag = a2b_base64(m[1]), a2b_base64(m[2]), a2b_base64(m[3])
        mac.update(aead.decrypt(iv, data + tag, aad.encode()))
        n += 1
    return n


def main(argv: list[str]) -> int:
    op, path = argv[0], argv[1]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if op == "encrypt":
        rule = re.compile(argv[3]) if len(argv) > 3 else None
        done = encrypt(text, argv[2], rule)
    else:
        done = decrypt(text, os.environ["SOPS_AGE_KEY_FILE"])
    if done == 0:
        raise SystemExit(f"floor: no value was {op}ed in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
