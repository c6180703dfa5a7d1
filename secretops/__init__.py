"""secretops: SOPS-compatible secrets management for GitOps.

The stable API (documented in ``docs/library.md``)::

    secretops.encrypt(data, format="yaml", age=["age1..."]) -> bytes
    secretops.decrypt(data, format="yaml") -> bytes
    secretops.encrypt_file(path, ...) -> bytes
    secretops.decrypt_file(path, ...) -> bytes

Names are imported lazily so that ``import secretops`` (and the CLI's ``--help``) stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["SecretOpsError", "decrypt", "decrypt_file", "encrypt", "encrypt_file"]


def __getattr__(name: str) -> Any:
    if name in ("encrypt", "decrypt", "encrypt_file", "decrypt_file"):
        from secretops import api

        return getattr(api, name)
    if name == "SecretOpsError":
        from secretops.errors import SecretOpsError

        return SecretOpsError
    raise AttributeError(name)
