"""Remote values → the data of a Kubernetes Secret: pure functions, no I/O.

:func:`parse_spec` reads an ExternalSecret's ``spec`` (as stored: a dict) into a :class:`Spec`
and :meth:`Spec.wants` says which remote refs to register with the scheduler; :func:`build`
turns the scheduler's :class:`Snapshot` into a :class:`SecretData`:

* ``data[]``: ``remoteRef.property`` picks a JSON field of the remote value — an exact key
  first, else a dotted path into nested objects (``db.password``); strings are taken as they
  are, other JSON values as compact JSON. Without a property a Vault secret is its whole JSON
  object and an AWS value its bytes. ``decodingStrategy`` then decodes ``Base64``,
  ``Base64URL``, ``Auto`` (either if it decodes, else as is) or ``None``.
* ``dataFrom[].extract``: a JSON object exploded into one Secret key per field;
  ``dataFrom[].find``: one key per secret found, named after the secret (characters outside
  ``[-._a-zA-Z0-9]`` become ``_``). Later entries override earlier ones; ``data[]`` wins.
* ``target.template``: ``data`` rendered by the same sandboxed engine as SealedSecret templates,
  in a bounded worker process, failures reported without any value-dependent detail (see
  :mod:`secretops.sealing.template`; Go-template forms such as ``{{ .password }}`` are
  converted); with ``mergePolicy: Replace``
  (the default, as ESO) the rendered keys are the Secret's data, with ``Merge`` they are added.
  ``type``, ``metadata.labels`` and ``metadata.annotations`` are copied.
* :data:`HASH_ANNOTATION` (added by the caller, who holds the key): the keyed fingerprint of
  the data (:mod:`.fingerprint`); never an unkeyed digest, which would let a guesser check
  guesses of a value.

Errors are :class:`MappingError` with the spec field path and never a value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secretops.errors import SecretOpsError
from secretops.sealing.template import TemplateError, render_all
from secretops.sealing.workers import WorkerPool
from secretops_controller.external.provider import FindRef, RemoteRef, RemoteValue, Want
from secretops_controller.external.scheduler import Snapshot

HASH_ANNOTATION = "secretops.dev/data-hash"
MANAGED_LABEL = "secretops.dev/managed"
# creationPolicy Merge: the keys this ExternalSecret merged into the Secret (comma-separated),
# so keys it no longer produces, or all of them under deletionPolicy Delete, can be removed
MERGED_KEYS_ANNOTATION = "secretops.dev/merged-keys"
DECODINGS = ("None", "Base64", "Base64URL", "Auto")
_KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]")


class MappingError(SecretOpsError):
    """The spec and the remote values do not make a Secret; ``path`` names the field."""


@dataclass(frozen=True)
class DataItem:
    secret_key: str
    ref: RemoteRef
    property: str | None = None
    decoding: str = "None"


@dataclass(frozen=True)
class Extract:
    ref: RemoteRef
    property: str | None = None
    decoding: str = "None"


@dataclass(frozen=True)
class Find:
    query: FindRef
    decoding: str = "None"


@dataclass(frozen=True)
class Template:
    type: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    merge: bool = False


@dataclass(frozen=True)
class Spec:
    data: tuple[DataItem, ...] = ()
    data_from: tuple[Extract | Find, ...] = ()
    template: Template | None = None

    def wants(self) -> frozenset[Want]:
        out: set[Want] = {d.ref for d in self.data}
        for f in self.data_from:
            out.add(f.ref if isinstance(f, Extract) else f.query)
        return frozenset(out)


@dataclass(frozen=True)
class SecretData:
    """What the Secret should hold; ``data`` values are raw bytes (not base64)."""

    data: dict[str, bytes] = field(repr=False)
    type: str
    labels: dict[str, str]
    annotations: dict[str, str]
    versions: dict[str, str]  # remote ref -> version synced, for the status


# ---- parsing ---------------------------------------------------------------------------------
def _str(obj: Mapping[str, Any], key: str, path: str, required: bool = False) -> str | None:
    v = obj.get(key)
    if v is None or v == "":
        if required:
            raise MappingError("required", path=f"{path}.{key}")
        return None
    if not isinstance(v, str):
        raise MappingError("must be a string", path=f"{path}.{key}")
    return v


def _decoding(obj: Mapping[str, Any], path: str) -> str:
    d = _str(obj, "decodingStrategy", path) or "None"
    if d not in DECODINGS:
        raise MappingError(f"unsupported decodingStrategy {d!r}; one of {', '.join(DECODINGS)}",
                           path=f"{path}.decodingStrategy")
    return d


def _ref(obj: Mapping[str, Any], path: str) -> RemoteRef:
    return RemoteRef(str(_str(obj, "key", path, required=True)), _str(obj, "version", path))


def parse_spec(spec: Mapping[str, Any]) -> Spec:
    """The parts of an ExternalSecret spec that say what to read and how to map it."""
    data: list[DataItem] = []
    for i, item in enumerate(spec.get("data") or []):
        path = f"spec.data[{i}]"
        key = str(_str(item, "secretKey", path, required=True))
        rr = item.get("remoteRef") or {}
        if not rr:
            raise MappingError("required", path=f"{path}.remoteRef")
        data.append(DataItem(key, _ref(rr, f"{path}.remoteRef"),
                             _str(rr, "property", f"{path}.remoteRef"),
                             _decoding(rr, f"{path}.remoteRef")))
    data_from: list[Extract | Find] = []
    for i, item in enumerate(spec.get("dataFrom") or []):
        path = f"spec.dataFrom[{i}]"
        if item.get("extract") and item.get("find"):
            raise MappingError("give either extract or find, not both", path=path)
        if item.get("extract"):
            ex = item["extract"]
            p = f"{path}.extract"
            data_from.append(Extract(_ref(ex, p), _str(ex, "property", p), _decoding(ex, p)))
        elif item.get("find"):
            fd = item["find"]
            p = f"{path}.find"
            regexp = _str(fd.get("name") or {}, "regexp", f"{p}.name")
            if regexp is not None:
                try:
                    re.compile(regexp)
                except re.error as e:
                    raise MappingError(f"not a valid regular expression: {e.msg}",
                                       path=f"{p}.name.regexp") from None
            fpath = _str(fd, "path", p)
            if fpath is None and regexp is None:
                raise MappingError("give a path, a name.regexp or both", path=p)
            data_from.append(Find(FindRef(fpath, regexp), _decoding(fd, p)))
        else:
            raise MappingError("give extract or find", path=path)
    template = None
    t = (spec.get("target") or {}).get("template")
    if t:
        meta = t.get("metadata") or {}
        policy = t.get("mergePolicy") or "Replace"
        if policy not in ("Replace", "Merge"):
            raise MappingError(f"unsupported mergePolicy {policy!r}; Replace or Merge",
                               path="spec.target.template.mergePolicy")
        template = Template(t.get("type"), dict(meta.get("labels") or {}),
                            dict(meta.get("annotations") or {}), dict(t.get("data") or {}),
                            merge=policy == "Merge")
    return Spec(tuple(data), tuple(data_from), template)


# ---- values ----------------------------------------------------------------------------------
def _as_json(value: bytes | Mapping[str, Any], path: str) -> Any:
    if isinstance(value, Mapping):
        return value
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise MappingError("the remote value is not JSON, so it has no properties",
                           path=path) from None


def _encode(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":"), sort_keys=True).encode()


def pick(value: bytes | Mapping[str, Any], prop: str | None, path: str) -> bytes:
    """The remote value, or the JSON field ``prop`` of it (exact key, else dotted path)."""
    if prop is None:
        return bytes(value) if isinstance(value, bytes) else _encode(dict(value))
    obj = _as_json(value, path)
    if isinstance(obj, Mapping) and prop in obj:
        return _encode(obj[prop])
    cur: Any = obj
    for part in prop.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise MappingError(f"the remote value has no property {prop!r}", path=path)
    return _encode(cur)


def decode(raw: bytes, strategy: str, path: str) -> bytes:
    if strategy == "None":
        return raw
    text = raw.strip()
    padded = text + b"=" * (-len(text) % 4)
    if strategy in ("Base64", "Auto"):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            if strategy == "Base64":
                raise MappingError("the value is not valid base64", path=path) from None
    try:
        if not re.fullmatch(rb"[A-Za-z0-9_-]*=*", padded):
            raise ValueError
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        if strategy == "Base64URL":
            raise MappingError("the value is not valid base64url", path=path) from None
    return raw


def secret_key(name: str) -> str:
    """A remote secret's name as a Secret key (``app/db`` → ``app_db``)."""
    return _KEY_CHARS.sub("_", name.strip("/")) or "_"


def build(spec: Spec, snap: Snapshot, skip_missing: bool = False,
          pool: WorkerPool | None = None) -> SecretData:
    """The Secret for ``spec`` from a complete snapshot (:attr:`Snapshot.complete`).

    A ref that is missing (NotFound) raises :class:`MappingError` naming its field: what to do
    then (keep or delete the Secret) is ``target.deletionPolicy``, the caller's decision. With
    ``skip_missing`` (``deletionPolicy: Delete``) the keys of missing refs are left out instead.
    """
    data: dict[str, bytes] = {}
    for i, f in enumerate(spec.data_from):
        path = f"spec.dataFrom[{i}]"
        if isinstance(f, Extract):
            if skip_missing and f.ref in snap.missing:
                continue
            value = _value(snap, f.ref, f"{path}.extract.key")
            obj = _as_json(pick(value.value, f.property, f"{path}.extract.property")
                           if f.property else value.value, f"{path}.extract")
            if not isinstance(obj, Mapping):
                raise MappingError("the remote value is not a JSON object", path=f"{path}.extract")
            for k, v in obj.items():
                data[k] = decode(_encode(v), f.decoding, f"{path}.extract.decodingStrategy")
        else:
            found = snap.found.get(f.query)
            if found is None:
                raise MappingError("not read yet", path=f"{path}.find")
            for name, rv in sorted(found.items()):
                data[secret_key(name)] = decode(pick(rv.value, None, path), f.decoding,
                                                f"{path}.find.decodingStrategy")
    for i, d in enumerate(spec.data):
        path = f"spec.data[{i}].remoteRef"
        if skip_missing and d.ref in snap.missing:
            continue
        rv = _value(snap, d.ref, f"{path}.key")
        data[d.secret_key] = decode(pick(rv.value, d.property, f"{path}.property"), d.decoding,
                                    f"{path}.decodingStrategy")
    t = spec.template or Template()
    if t.data:
        try:
            rendered = render_all(t.data, data, pool=pool)
        except TemplateError as e:
            raise MappingError(e.message, path="spec.target.template.data"
                               + (e.path or "").split('["data"]')[-1]) from None
        data = {**data, **rendered} if t.merge else rendered
    labels = {**t.labels, MANAGED_LABEL: "true"}
    return SecretData(data, t.type or "Opaque", labels, dict(t.annotations), snap.versions())


def _value(snap: Snapshot, ref: RemoteRef, path: str) -> RemoteValue:
    if ref in snap.missing:
        raise MappingError(f"the remote secret {ref} does not exist", path=path)
    v = snap.values.get(ref)
    if v is None:
        raise MappingError(f"the remote secret {ref} has not been read", path=path)
    return v
