"""Recipients files, identity files and the controller's key-ring Secrets.

**Recipients file** (what ``seal --cert`` reads and the controller will serve): UTF-8 text, one
age recipient per line (``age1…``, an age plugin recipient, or an ``ssh-ed25519``/``ssh-rsa``
public key line); blank lines and lines starting with ``#`` are ignored. Every recipient in it
gets a wrapped copy of each value's data key.

**Key-ring Secret** (one per controller key; ``kubectl get secret -l secretops.dev/sealing-key
-o yaml`` is the backup)::

    apiVersion: v1
    kind: Secret
    type: Opaque
    metadata:
      name: sealing-key-20260101-120000          # creation time, UTC
      labels: {secretops.dev/sealing-key: "true"}
      annotations:
        secretops.dev/recipient: age1…           # the public key, for publishing
        secretops.dev/created: "2026-01-01T12:00:00Z"
    data:
      age.key: <base64 of an age identities file: comments + AGE-SECRET-KEY-1… line>

**Identity file** (``unseal --identity``): an age identities file, an OpenSSH private key, or
YAML/JSON holding key-ring Secrets (one Secret, several documents, or a ``List``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing.format import mapping_of

KEY_LABEL = "secretops.dev/sealing-key"
KEY_DATA = "age.key"
KEY_NAME_PREFIX = "sealing-key-"
RECIPIENT_ANNOTATION = "secretops.dev/recipient"
CREATED_ANNOTATION = "secretops.dev/created"


@dataclass
class IdentitySet:
    """pyrage identities, with public names for messages (``age1…``, ``ssh key <file>``)."""

    identities: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def extend(self, other: IdentitySet) -> None:
        self.identities += other.identities
        self.names += other.names


def parse_recipients_file(text: str, source: str = "<recipients>") -> list[str]:
    """The recipients of a recipients file, each checked (``INVALID_KEY`` names the line)."""
    from secretops.keys.age import parse_recipient

    out: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parse_recipient(line)
        except SecretOpsError as e:
            raise SecretOpsError(f"line {n}: {e.message}", code=ExitCode.INVALID_KEY,
                                 file=source) from None
        out.append(line)
    return out


def format_recipients_file(recipients: Iterable[str], comment: str = "") -> str:
    """A recipients file: optional ``#`` comment lines, then one recipient per line."""
    lines = [f"# {c}" if c else "#" for c in comment.splitlines()] if comment else []
    return "\n".join([*lines, *recipients]) + "\n"


def recipient_name(recipient: str) -> str:
    """A short public name for a recipient: itself for age, a SHA256 fingerprint for SSH."""
    parts = recipient.split()
    if len(parts) >= 2 and parts[0].startswith("ssh-"):
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            return recipient
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"{parts[0]} SHA256:{digest}"
    return recipient


def identities_from_age_text(text: str, source: str) -> IdentitySet:
    from secretops.keys.age import parse_identities

    ids = parse_identities(text, source)
    names = []
    for ident in ids:
        to_public = getattr(ident, "to_public", None)
        names.append(str(to_public()) if to_public else f"age plugin identity from {source}")
    return IdentitySet(ids, names)


def load_identities(data: bytes, source: str) -> IdentitySet:
    """Identities from an age key file, an OpenSSH private key, or key-ring Secret(s)."""
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        from pyrage import ssh

        try:
            return IdentitySet([ssh.Identity.from_buffer(data)], [f"ssh key {source}"])
        except Exception:
            raise SecretOpsError("not a usable SSH private key (encrypted SSH keys are not "
                                 "supported)", code=ExitCode.INVALID_KEY, file=source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretOpsError("not a text file", code=ExitCode.INVALID_KEY, file=source) from None
    stripped = [ln.strip() for ln in text.splitlines()]
    if any(ln.startswith(("AGE-SECRET-KEY-1", "AGE-PLUGIN-")) for ln in stripped) and not any(
            ln.startswith(("apiVersion", "kind", "{", '"')) for ln in stripped):
        return identities_from_age_text(text, source)
    if "BEGIN RSA PRIVATE KEY" in text or "kubernetes.io/tls" in text:
        raise SecretOpsError(
            "this is an RSA/TLS key (a Bitnami Sealed Secrets key?), not an age identity",
            code=ExitCode.INVALID_KEY, file=source,
            hints=("convert Bitnami SealedSecrets with secretops seal --from-bitnami FILE "
                   "--bitnami-key KEYS",))
    from secretops.sealing.serialize import load_documents

    try:
        docs = load_documents(data, source)
    except SecretOpsError:
        raise SecretOpsError(
            "neither an age identities file, an SSH private key, nor key-ring Secrets",
            code=ExitCode.INVALID_KEY, file=source) from None
    return identities_from_secrets(docs, source)


class KeyFileError(SecretOpsError):
    """A key file (``--identity``, ``--bitnami-key``) that holds no usable key."""

    code = ExitCode.INVALID_KEY


def secret_field(doc: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    """A Secret's ``metadata``, ``data`` or ``stringData`` as a mapping (absent: empty); a
    field of another kind is a :class:`KeyFileError`, not an ``AttributeError``."""
    try:
        return mapping_of(doc.get(name), name, KeyFileError)
    except KeyFileError as e:
        raise e.with_file(source) from None


def identities_from_secrets(docs: Iterable[Mapping[str, Any]], source: str) -> IdentitySet:
    """Identities from key-ring Secrets (``data["age.key"]``); other objects are an error."""
    out = IdentitySet()
    for doc in docs:
        name = secret_field(doc, "metadata", source).get("name", "?")
        if doc.get("kind") != "Secret":
            raise SecretOpsError(f"{doc.get('kind')} {name!r} is not a key-ring Secret",
                                 code=ExitCode.INVALID_KEY, file=source)
        raw = secret_field(doc, "data", source).get(KEY_DATA)
        if raw is not None:
            try:
                if not isinstance(raw, str):
                    raise ValueError
                text = base64.b64decode(raw, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise SecretOpsError(f"Secret {name!r}: data.{KEY_DATA} is not base64 text",
                                     code=ExitCode.INVALID_KEY, file=source) from None
        else:
            plain = secret_field(doc, "stringData", source).get(KEY_DATA)
            if not isinstance(plain, str):
                raise SecretOpsError(
                    f"Secret {name!r} has no {KEY_DATA}: not a key-ring Secret",
                    code=ExitCode.INVALID_KEY, file=source,
                    hints=(f"back up the key ring with kubectl get secret -l {KEY_LABEL} "
                           "-o yaml",))
            text = plain
        out.extend(identities_from_age_text(text, f"{source}: Secret {name}"))
    if not out.identities:
        raise SecretOpsError("no identity found", code=ExitCode.INVALID_KEY, file=source)
    return out


def key_name(created: datetime) -> str:
    """``sealing-key-20260101-120000``: names sort by creation time."""
    return KEY_NAME_PREFIX + created.astimezone(UTC).strftime("%Y%m%d-%H%M%S")


def keyring_secret(identity: str, recipient: str, created: datetime,
                   namespace: str | None = None) -> dict[str, Any]:
    """A key-ring Secret for one age key (the controller creates these; pure)."""
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"# created: {stamp}\n# public key: {recipient}\n{identity}\n"
    meta: dict[str, Any] = {
        "name": key_name(created),
        "labels": {KEY_LABEL: "true"},
        "annotations": {RECIPIENT_ANNOTATION: recipient, CREATED_ANNOTATION: stamp},
    }
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta,
            "data": {KEY_DATA: base64.b64encode(body.encode()).decode("ascii")}}
