"""Shamir secret sharing of the data key, in sops's exact layout.

sops uses HashiCorp Vault's Shamir code over GF(2^8) with the AES polynomial (x^8+x^4+x^3+x+1,
reduction constant 0x1B). Each share is ``len(secret) + 1`` bytes: the y-values of every secret
byte, then one byte holding the share's x coordinate. sops assigns x = group index + 1. General
purpose Shamir libraries use other fields or layouts, hence this hand-written module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def _mult(a: int, b: int) -> int:
    r = 0
    for i in range(7, -1, -1):
        r = ((-((b >> i) & 1) & a) ^ (-(r >> 7) & 0x1B) ^ (r + r)) & 0xFF
    return r


# Log/antilog tables over the generator 3 make multiplication two lookups.
_EXP = [1] * 510
for _i in range(1, 255):
    _EXP[_i] = _mult(_EXP[_i - 1], 3)
for _i in range(255, 510):
    _EXP[_i] = _EXP[_i - 255]
_LOG = [0] * 256
for _i in range(255):
    _LOG[_EXP[_i]] = _i


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _inverse(a: int) -> int:
    if a == 0:
        raise ZeroDivisionError("0 has no inverse")
    return _EXP[255 - _LOG[a]]


def split(
    secret: bytes, parts: int, threshold: int, random: Callable[[int], bytes]
) -> list[bytes]:
    """Split ``secret`` into ``parts`` shares, any ``threshold`` of which recover it."""
    if not 2 <= threshold <= parts <= 255:
        raise ValueError("need 2 <= threshold <= parts <= 255")
    if not secret:
        raise ValueError("cannot split an empty secret")
    shares = [bytearray(len(secret) + 1) for _ in range(parts)]
    for i in range(parts):
        shares[i][-1] = i + 1
    for idx, byte in enumerate(secret):
        coeffs = [byte, *random(threshold - 1)]
        for i in range(parts):
            x = i + 1
            y = 0
            for c in reversed(coeffs):  # Horner
                y = _mul(y, x) ^ c
            shares[i][idx] = y
    return [bytes(s) for s in shares]


def combine(shares: Sequence[bytes]) -> bytes:
    """Recover the secret from at least ``threshold`` distinct shares."""
    if len(shares) < 2:
        raise ValueError("at least two shares are needed")
    length = len(shares[0])
    if length < 2 or any(len(s) != length for s in shares):
        raise ValueError("shares must all have the same length")
    xs = [s[-1] for s in shares]
    if len(set(xs)) != len(xs):
        raise ValueError("duplicate share")
    # Lagrange basis at x = 0 for each share, computed once.
    basis = []
    for i, xi in enumerate(xs):
        b = 1
        for j, xj in enumerate(xs):
            if i != j:
                b = _mul(b, _mul(xj, _inverse(xi ^ xj)))
        basis.append(b)
    out = bytearray(length - 1)
    for idx in range(length - 1):
        acc = 0
        for s, b in zip(shares, basis, strict=True):
            acc ^= _mul(s[idx], b)
        out[idx] = acc
    return bytes(out)
