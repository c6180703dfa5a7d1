"""SealedSecrets as secretops sealed them before templates were bound (format version 1).

``tests/testdata/sealing/v1-*.yaml`` were written by that code (commit 46eff7a, with the key
``v1-key.txt``); :func:`seal_v1` makes more for any recipient, for tests that need the
cluster's key. ``test_binding.py`` checks that both read as version 1 alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from secretops.sealing.crypto import Recipients, seal_bound
from secretops.sealing.format import Binding, Scope, SealedParts, sealed_manifest
from tests.helpers import CANARY, TESTDATA

VECTORS = TESTDATA / "sealing"
VALUES = {"password": CANARY.encode(), "user": b"admin"}


def seal_v1(values: Mapping[str, bytes], recipients: Sequence[str], namespace: str, name: str,
            template: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A strict-scope SealedSecret whose values are version 1 (bound to their place only)."""
    recips = Recipients(recipients)
    encrypted = {k: seal_bound(v, recips, Binding.of(Scope.STRICT, namespace, name, k), None)
                 for k, v in values.items()}
    return sealed_manifest(SealedParts(name, namespace, Scope.STRICT, encrypted,
                                       dict(template or {"type": "Opaque"}), recips.names))


def variants(plain: str = CANARY) -> list[str]:
    """The canary and what a template could compute from it: reversed, upper/lower-cased,
    sliced, spaced out, hashed without a key."""
    return [plain, plain[::-1], plain.upper(), plain.lower(), plain[1:], plain[:-1],
            plain[2:-2], plain[::2], " ".join(plain), hashlib.sha256(plain.encode()).hexdigest()]


def leaked(text: str) -> list[str]:
    """Which :func:`variants` of the canary occur in ``text``."""
    return [v for v in variants() if v in text]
