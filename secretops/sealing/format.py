"""The sealed-value layout, its associated data, and the SealedSecret resource's names.

Pure: no file, network, clock, randomness or cipher here, only bytes and strings (the cipher
lives in :mod:`secretops.sealing.crypto`). ``docs/crypto.md`` is the written specification;
this module is its reference.

One ``spec.encryptedData`` value is standard base64 (padded) of::

    header   "SOSL" | version 0x02 | scope | u16 len | namespace | u16 len | name
             | u16 len | Secret key name | 32-byte template digest   (the AEAD associated data)
    body     u32 len | age message | 12-byte nonce | AES-256-GCM ciphertext ‖ 16-byte tag

The header is the binding: it says which scope, namespace, name and key the value was sealed
for, and (version 2) which ``spec.template`` it may be rendered into (:func:`template_digest`
of the template's ``type`` and ``data``). Unsealing builds the header it expects from where the
value is found and the template beside it, compares, and uses the *expected* header as the
associated data, so an edited header only fails authentication. Version 1 values (sealed
before templates were bound) have no digest; they are still read, under the rules of
``docs/crypto.md`` ("Migration").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from secretops.errors import ExitCode, SecretOpsError

GROUP = "secretops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SealedSecret"
PLURAL = "sealedsecrets"

ANNOTATION_PREFIX = f"{GROUP}/"
MANAGED_ANNOTATION = ANNOTATION_PREFIX + "managed"
PATCH_ANNOTATION = ANNOTATION_PREFIX + "patch"
SKIP_OWNER_REFERENCES_ANNOTATION = ANNOTATION_PREFIX + "skip-set-owner-references"

# Annotations that hold a full copy of an applied object: kept, they would leak the plaintext
# Secret into the SealedSecret (Bitnami issue #227).
LAST_APPLIED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
)

MAGIC = b"SOSL"
FORMAT_VERSION = 2  # what sealing writes: the header binds the template too
UNBOUND_VERSION = 1  # read only: values sealed before templates were bound
TEMPLATE_DIGEST_SIZE = 32
_TEMPLATE_DOMAIN = b"secretops.dev/sealed-template/v1\x00"
DATA_KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_MAX_FIELD = 0xFFFF
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class Scope(StrEnum):
    """Where a sealed value may be unsealed."""

    STRICT = "strict"  # this namespace and this name
    NAMESPACE_WIDE = "namespace-wide"  # any name in this namespace
    CLUSTER_WIDE = "cluster-wide"  # anywhere

    @property
    def code(self) -> int:
        return _SCOPE_CODES[self]

    @classmethod
    def parse(cls, text: str | None) -> Scope:
        """A scope from its name; ``None`` or ``""`` is the default, strict."""
        if not text:
            return cls.STRICT
        try:
            return cls(text)
        except ValueError:
            raise SecretOpsError(
                f"unknown scope {text!r}: expected strict, namespace-wide or cluster-wide",
                code=ExitCode.INVALID_SEALED_SECRET,
            ) from None


_SCOPE_CODES = {Scope.STRICT: 0, Scope.NAMESPACE_WIDE: 1, Scope.CLUSTER_WIDE: 2}
# kubeseal's scope annotations on a Secret to seal: they choose the scope (as kubeseal reads
# them), and are then dropped from the template, where they would mean nothing.
SCOPE_ANNOTATIONS = {
    "sealedsecrets.bitnami.com/namespace-wide": Scope.NAMESPACE_WIDE,
    "sealedsecrets.bitnami.com/cluster-wide": Scope.CLUSTER_WIDE,
}
_CODE_SCOPES = {v: k for k, v in _SCOPE_CODES.items()}


class SealedValueError(SecretOpsError):
    """An ``encryptedData`` value is not a well-formed sealed value."""

    code = ExitCode.INVALID_SEALED_SECRET


class TemplateNotBoundError(SecretOpsError):
    """``spec.template`` is not the template the values were sealed with (edited after
    sealing), or values sealed before templates were bound meet a template that renders them.
    Nothing is unsealed or rendered; the message is fixed text that names keys only."""

    code = ExitCode.SEALED_TEMPLATE_NOT_BOUND

    @classmethod
    def altered(cls, keys: list[str]) -> TemplateNotBoundError:
        return cls(
            f"spec.template is not the template the values were sealed with (keys "
            f"{_names(keys)}): it was changed after sealing; nothing was unsealed or rendered",
            path=TEMPLATE_PATH,
            hints=("a template changes only with its values: restore it, seal again from the "
                   "Secret (secretops seal), or review it and re-bind it with secretops reseal "
                   "--identity KEY --bind-template",))

    @classmethod
    def unbound(cls, keys: list[str]) -> TemplateNotBoundError:
        return cls(
            f"values sealed before templates were bound (format 1: keys {_names(keys)}) meet "
            f"a spec.template.data that renders values; nothing was unsealed or rendered",
            path=TEMPLATE_PATH,
            hints=("review the template, then bind it with secretops reseal --identity KEY "
                   "--bind-template (or seal again from the Secret with secretops seal)",))


TEMPLATE_PATH = '["spec"]["template"]'


def _names(keys: list[str]) -> str:
    return ", ".join(f'"{k}"' for k in sorted(keys))


class ScopeMismatchError(SecretOpsError):
    """A value was sealed for another scope, namespace, name or key than where it is used."""

    code = ExitCode.SEALED_SCOPE_MISMATCH

    def __init__(self, expected: Binding, found: Binding | None, *, path: str | None = None
                 ) -> None:
        self.expected = expected
        self.found = found
        if found is None:
            msg = f"the value does not open for {expected.describe()}"
        else:
            msg = f"the value was sealed for {found.describe()}, not for {expected.describe()}"
        super().__init__(msg, hints=(
            "a sealed value opens only where it was sealed: seal it again for this place "
            "(secretops seal --merge-into), or seal with a wider --scope",
        ), path=path)


@dataclass(frozen=True)
class Binding:
    """What a value is bound to: the fields its scope keeps, and the Secret key name."""

    scope: Scope
    namespace: str
    name: str
    key: str

    @classmethod
    def of(cls, scope: Scope, namespace: str | None, name: str | None, key: str) -> Binding:
        """The binding for a value found at namespace/name/key, keeping what ``scope`` binds.

        Raises a plain input error when a field the scope needs is missing or the key is not a
        valid Secret key name.
        """
        if not key or len(key) > 253 or not _SECRET_KEY.match(key):
            raise SecretOpsError(
                f"invalid Secret key name {key!r}: use letters, digits, '-', '_' and '.'",
                code=ExitCode.INVALID_INPUT,
            )
        ns = namespace or ""
        nm = name or ""
        if scope is Scope.CLUSTER_WIDE:
            ns = nm = ""
        elif scope is Scope.NAMESPACE_WIDE:
            nm = ""
        if scope is not Scope.CLUSTER_WIDE and not ns:
            raise SecretOpsError(
                f"scope {scope.value} needs a namespace", code=ExitCode.INVALID_INPUT,
                hints=("give --namespace, set metadata.namespace, or use --scope cluster-wide",),
            )
        if scope is Scope.STRICT and not nm:
            raise SecretOpsError(
                "scope strict needs a name", code=ExitCode.INVALID_INPUT,
                hints=("give --name or set metadata.name",),
            )
        return cls(scope, ns, nm, key)

    def describe(self) -> str:
        """``strict scope, namespace "prod", name "db", key "password"``: names only."""
        parts = [f"{self.scope.value} scope"]
        if self.scope is not Scope.CLUSTER_WIDE:
            parts.append(f'namespace "{self.namespace}"')
        if self.scope is Scope.STRICT:
            parts.append(f'name "{self.name}"')
        parts.append(f'key "{self.key}"')
        return ", ".join(parts)

    def header(self, template: bytes | None) -> bytes:
        """The header bytes, which are also the AEAD associated data: version 2 with a
        template digest, version 1 (unbound, read only) with ``None``."""
        if template is not None and len(template) != TEMPLATE_DIGEST_SIZE:
            raise ValueError("a template digest is 32 bytes")
        out = bytearray(MAGIC)
        out += bytes((FORMAT_VERSION if template is not None else UNBOUND_VERSION,
                      self.scope.code))
        for field in (self.namespace, self.name, self.key):
            raw = field.encode("utf-8")
            if len(raw) > _MAX_FIELD:
                raise SecretOpsError("a namespace, name or key is too long",
                                     code=ExitCode.INVALID_INPUT)
            out += struct.pack(">H", len(raw)) + raw
        return bytes(out) + (template or b"")


@dataclass(frozen=True)
class SealedValue:
    """A parsed sealed value; ``template`` is its template digest (None: version 1)."""

    binding: Binding
    wrapped_key: bytes  # a binary age message; its payload is the 32-byte data key
    nonce: bytes
    ciphertext: bytes  # AES-256-GCM output: ciphertext ‖ tag
    template: bytes | None = None

    def header(self) -> bytes:
        return self.binding.header(self.template)

    def encode(self) -> str:
        body = struct.pack(">I", len(self.wrapped_key)) + self.wrapped_key
        raw = self.header() + body + self.nonce + self.ciphertext
        return base64.b64encode(raw).decode("ascii")


def decode(text: str) -> SealedValue:
    """Parse one ``encryptedData`` value; :class:`SealedValueError` says what is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealedValueError("not base64") from None
    if raw[:4] != MAGIC:
        hint = ("this looks like a Bitnami sealed value: convert it with "
                "secretops seal --from-bitnami",) if _looks_bitnami(raw) else ()
        raise SealedValueError("not a secretops sealed value (no SOSL header)", hints=hint)
    if len(raw) < 6:
        raise SealedValueError("truncated header")
    if raw[4] not in (UNBOUND_VERSION, FORMAT_VERSION):
        raise SealedValueError(
            f"unsupported sealed-value format version {raw[4]} (this secretops reads versions "
            f"{UNBOUND_VERSION} and {FORMAT_VERSION})", hints=("upgrade secretops",))
    scope = _CODE_SCOPES.get(raw[5])
    if scope is None:
        raise SealedValueError(f"unknown scope code {raw[5]}")
    pos = 6
    fields: list[str] = []
    for _ in range(3):
        if pos + 2 > len(raw):
            raise SealedValueError("truncated header")
        (n,) = struct.unpack_from(">H", raw, pos)
        pos += 2
        if pos + n > len(raw):
            raise SealedValueError("truncated header")
        try:
            fields.append(raw[pos:pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise SealedValueError("header field is not UTF-8") from None
        pos += n
    namespace, name, key = fields
    try:
        binding = Binding.of(scope, namespace, name, key)
    except SecretOpsError:
        raise SealedValueError("header binding is incomplete") from None
    if (binding.namespace, binding.name) != (namespace, name):
        raise SealedValueError("header binding is not canonical for its scope")
    template = None
    if raw[4] == FORMAT_VERSION:
        if pos + TEMPLATE_DIGEST_SIZE > len(raw):
            raise SealedValueError("truncated header")
        template = raw[pos:pos + TEMPLATE_DIGEST_SIZE]
        pos += TEMPLATE_DIGEST_SIZE
    if pos + 4 > len(raw):
        raise SealedValueError("truncated body")
    (n,) = struct.unpack_from(">I", raw, pos)
    pos += 4
    if n == 0 or pos + n + NONCE_SIZE + TAG_SIZE > len(raw):
        raise SealedValueError("truncated body")
    wrapped = raw[pos:pos + n]
    pos += n
    return SealedValue(binding, wrapped, raw[pos:pos + NONCE_SIZE], raw[pos + NONCE_SIZE:],
                       template)


def _looks_bitnami(raw: bytes) -> bool:
    # Bitnami: u16 length of an RSA-OAEP ciphertext (256/384/512 bytes for 2048–4096-bit keys).
    return len(raw) > 2 and struct.unpack_from(">H", raw)[0] in (256, 384, 512)


# --- manifests (plain dicts, as a YAML/JSON loader gives them) ---------------------------------

@dataclass(frozen=True)
class SealedParts:
    """The fields of one of our SealedSecret manifests that sealing and unsealing use."""

    name: str
    namespace: str
    scope: Scope
    encrypted: dict[str, str]
    template: dict[str, Any]
    recipients: list[str]


def mapping_of(value: Any, what: str, error: type[SecretOpsError]) -> dict[str, Any]:
    """A manifest's field that must be a mapping (absent: empty); ``error`` names ``what``
    otherwise. Every reader of a manifest's fields goes through this or :func:`string_map`:
    a field of the wrong kind is a typed error, never an ``AttributeError``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(f"{what} must be a mapping")
    return value


def string_map(value: Any, what: str, error: type[SecretOpsError]) -> dict[str, str]:
    """A field that must map strings to strings (``data``, ``labels``, …)."""
    m = mapping_of(value, what, error)
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise error(f"{what} must map strings to strings")
    return dict(m)


def secret_values(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """The values of a Secret manifest: ``data`` decoded, then ``stringData`` over it."""
    if secret.get("kind") != "Secret" or secret.get("apiVersion", "v1") != "v1":
        raise SecretOpsError("not a Secret manifest (expected apiVersion v1, kind Secret)",
                             code=ExitCode.INVALID_INPUT)
    out: dict[str, bytes] = {}
    for k, v in string_map(secret.get("data"), "data", SecretOpsError).items():
        try:
            out[k] = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise SecretOpsError("not base64", code=ExitCode.INVALID_INPUT,
                                 path=f'["data"]["{k}"]') from None
    for k, v in string_map(secret.get("stringData"), "stringData", SecretOpsError).items():
        out[k] = v.encode("utf-8")
    return out


def template_of(secret: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.template`` for a Secret: its labels, annotations, type and immutability.

    last-applied annotations are dropped: they hold the whole plaintext Secret; so are
    kubeseal's scope annotations, which the sealing reads (``sealed.annotated_scope``).
    """
    meta = mapping_of(secret.get("metadata"), "metadata", SecretOpsError)
    tmeta: dict[str, Any] = {}
    labels = string_map(meta.get("labels"), "metadata.labels", SecretOpsError)
    annotations = {
        k: v for k, v in string_map(meta.get("annotations"), "metadata.annotations",
                                  SecretOpsError).items()
        if k not in LAST_APPLIED_ANNOTATIONS and k not in SCOPE_ANNOTATIONS
    }
    if labels:
        tmeta["labels"] = labels
    if annotations:
        tmeta["annotations"] = annotations
    template: dict[str, Any] = {}
    if tmeta:
        template["metadata"] = tmeta
    template["type"] = secret.get("type") or "Opaque"
    if secret.get("immutable") is not None:
        template["immutable"] = bool(secret["immutable"])
    return template


def sealed_manifest(parts: SealedParts) -> dict[str, Any]:
    """A SealedSecret manifest; keys of ``encryptedData`` are sorted so diffs stay small."""
    meta: dict[str, Any] = {"name": parts.name}
    if parts.namespace:
        meta["namespace"] = parts.namespace
    spec: dict[str, Any] = {
        "scope": parts.scope.value,
        "encryptedData": {k: parts.encrypted[k] for k in sorted(parts.encrypted)},
    }
    if parts.template:
        spec["template"] = parts.template
    if parts.recipients:
        spec["recipients"] = list(parts.recipients)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


def parse_sealed(obj: Any, namespace: str | None = None) -> SealedParts:
    """Read one of our SealedSecret manifests; ``namespace`` fills a missing one."""
    if not isinstance(obj, dict) or obj.get("kind") != KIND:
        raise SealedValueError("not a SealedSecret manifest")
    if obj.get("apiVersion") != API_VERSION:
        hint = ("convert it with secretops seal --from-bitnami",) if str(
            obj.get("apiVersion", "")).startswith("bitnami.com/") else ()
        raise SealedValueError(
            f"apiVersion {obj.get('apiVersion')!r} is not {API_VERSION}", hints=hint)
    meta = mapping_of(obj.get("metadata"), "metadata", SealedValueError)
    spec = mapping_of(obj.get("spec"), "spec", SealedValueError)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise SealedValueError("metadata.name is missing")
    ns = meta.get("namespace") or namespace or ""
    if not isinstance(ns, str):
        raise SealedValueError("metadata.namespace must be a string")
    if namespace and meta.get("namespace") and meta["namespace"] != namespace:
        raise SecretOpsError(
            f"the SealedSecret is in namespace {meta['namespace']!r}, not {namespace!r}",
            code=ExitCode.CONFLICTING_PARAMETERS)
    scope = spec.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise SealedValueError("spec.scope must be a string")
    template = mapping_of(spec.get("template"), "spec.template", SealedValueError)
    recipients = spec.get("recipients") or []
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise SealedValueError("spec.recipients must be a list of strings")
    return SealedParts(
        name=name, namespace=ns, scope=Scope.parse(scope),
        encrypted=string_map(spec.get("encryptedData"), "spec.encryptedData", SealedValueError),
        template=dict(template), recipients=list(recipients),
    )


def template_data(template: Mapping[str, Any]) -> dict[str, str]:
    return string_map(template.get("data"), "spec.template.data", SealedValueError)


def template_digest(template: Mapping[str, Any]) -> bytes:
    """What a version-2 value binds of ``spec.template``: SHA-256 over a domain tag, the
    Secret ``type`` (default Opaque) and every ``data`` entry, sorted, each length-prefixed::

        "secretops.dev/sealed-template/v1" 0x00 | u32 len | type | u32 count
        | (u32 len | key | u32 len | template)*   (keys sorted by their UTF-8 bytes)

    These are the parts that decide what the values become: the entries rendered from them,
    and how Kubernetes and its consumers read the Secret. Labels and annotations are not bound
    (``docs/crypto.md`` says why).
    """
    ttype = template.get("type") or "Opaque"
    if not isinstance(ttype, str):
        raise SealedValueError("spec.template.type must be a string")
    try:
        entries = sorted((k.encode("utf-8"), v.encode("utf-8"))
                         for k, v in template_data(template).items())
        out = bytearray(_TEMPLATE_DOMAIN)
        out += _field(ttype.encode("utf-8")) + struct.pack(">I", len(entries))
    except UnicodeEncodeError:
        raise SealedValueError("spec.template is not valid UTF-8 text") from None
    for key, text in entries:
        out += _field(key) + _field(text)
    return hashlib.sha256(bytes(out)).digest()


def _field(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def secret_manifest(parts: SealedParts, data: Mapping[str, bytes],
                    owner_uid: str | None = None) -> dict[str, Any]:
    """The Secret a SealedSecret unseals to (``data`` already includes rendered templates).

    With ``owner_uid`` (the controller knows it), the Secret gets an ownerReference with
    ``controller: true`` unless the template asks to skip it.
    """
    tmeta = mapping_of(parts.template.get("metadata"), "spec.template.metadata",
                     SealedValueError)
    meta: dict[str, Any] = {"name": parts.name}
    if parts.namespace:
        meta["namespace"] = parts.namespace
    labels = string_map(tmeta.get("labels"), "spec.template.metadata.labels", SealedValueError)
    annotations = string_map(tmeta.get("annotations"), "spec.template.metadata.annotations",
                           SealedValueError)
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owner_uid and annotations.get(SKIP_OWNER_REFERENCES_ANNOTATION) != "true":
        # no blockOwnerDeletion (as Bitnami): with OwnerReferencesPermissionEnforcement it
        # needs update on sealedsecrets/finalizers (docs/controller.md, "Owner references")
        meta["ownerReferences"] = [{
            "apiVersion": API_VERSION, "kind": KIND, "name": parts.name, "uid": owner_uid,
            "controller": True,
        }]
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                              "type": parts.template.get("type") or "Opaque"}
    if parts.template.get("immutable") is not None:
        secret["immutable"] = bool(parts.template["immutable"])
    secret["data"] = {k: base64.b64encode(data[k]).decode("ascii") for k in sorted(data)}
    return secret
