"""The key service's messages, as protobuf descriptors built here from the key sources' records.

The protocol is sops's (``keyservice/keyservice.proto``; proto3, no package, so the service is
``KeyService`` and its calls ``/KeyService/Encrypt`` and ``/KeyService/Decrypt``)::

    EncryptRequest  { Key key = 1; bytes plaintext = 2; }
    EncryptResponse { bytes ciphertext = 1; }
    DecryptRequest  { Key key = 1; bytes ciphertext = 2; }
    DecryptResponse { bytes plaintext = 1; }
    Key             { oneof key_type { <one message per key source> } }

``ciphertext`` is a metadata entry's ``enc`` as text bytes (an armored age or PGP message,
``vault:v1:…``, base64 for the clouds); ``plaintext`` is a data key or a Shamir share.

Why descriptors built in Python rather than a compiled ``.proto``: the ``Key`` message is the
registry's (:class:`secretops.keys.WireKey` in each source's record gives its oneof number and
fields), so a new source adds its message where everything else about it is; there is no
generated code to keep in step and no build step (``grpcio-tools``). Parsing and encoding are
protobuf's own, not hand-written: field names here are ours, the wire is numbers and types.
The descriptors live in a private pool, so they never meet another package's ``Key``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from secretops.errors import SecretOpsError

SERVICE = "KeyService"
ENCRYPT = f"/{SERVICE}/Encrypt"
DECRYPT = f"/{SERVICE}/Decrypt"


class ProtocolError(SecretOpsError):
    """A message that is not a well-formed key service request or response."""


class Messages(NamedTuple):
    key: Any
    encrypt_request: Any
    encrypt_response: Any
    decrypt_request: Any
    decrypt_response: Any
    kinds: dict[str, str]  # oneof field name -> key kind
    fields: dict[str, str]  # key kind -> oneof field name


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def _build() -> Messages:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    from secretops.keys import sources

    fdp = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="secretops/keyservice.proto", syntax="proto3")
    key = f.message_type.add(name="Key")
    key.oneof_decl.add(name="key_type")
    kinds: dict[str, str] = {}
    for src in sources():
        if src.wire is None:
            continue
        name = f"{_camel(src.kind)}Key"
        msg = f.message_type.add(name=name)
        for number, field in enumerate(src.wire.fields, 1):
            if field in src.wire.maps:
                entry = msg.nested_type.add(name=f"{_camel(field)}Entry")
                entry.options.map_entry = True
                for n, part in enumerate(("key", "value"), 1):
                    entry.field.add(name=part, number=n, type=fdp.TYPE_STRING,
                                    label=fdp.LABEL_OPTIONAL)
                msg.field.add(name=field, number=number, type=fdp.TYPE_MESSAGE,
                              label=fdp.LABEL_REPEATED, type_name=f".{name}.{entry.name}")
            else:
                msg.field.add(name=field, number=number, type=fdp.TYPE_STRING,
                              label=fdp.LABEL_OPTIONAL)
        oneof = f"{src.kind}_key"
        key.field.add(name=oneof, number=src.wire.number, type=fdp.TYPE_MESSAGE,
                      label=fdp.LABEL_OPTIONAL, type_name=f".{name}", oneof_index=0)
        kinds[oneof] = src.kind
    for name, payload in (("EncryptRequest", "plaintext"), ("DecryptRequest", "ciphertext")):
        msg = f.message_type.add(name=name)
        msg.field.add(name="key", number=1, type=fdp.TYPE_MESSAGE, label=fdp.LABEL_OPTIONAL,
                      type_name=".Key")
        msg.field.add(name=payload, number=2, type=fdp.TYPE_BYTES, label=fdp.LABEL_OPTIONAL)
    for name, payload in (("EncryptResponse", "ciphertext"), ("DecryptResponse", "plaintext")):
        f.message_type.add(name=name).field.add(name=payload, number=1, type=fdp.TYPE_BYTES,
                                                label=fdp.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    cls = {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))
           for n in ("Key", "EncryptRequest", "EncryptResponse", "DecryptRequest",
                     "DecryptResponse")}
    return Messages(cls["Key"], cls["EncryptRequest"], cls["EncryptResponse"],
                    cls["DecryptRequest"], cls["DecryptResponse"], kinds,
                    {v: k for k, v in kinds.items()})


@functools.cache
def messages() -> Messages:
    """The message classes (built once per process)."""
    return _build()


def key_message(kind: str, fields: Mapping[str, Any]) -> Any:
    """The ``Key`` naming a master key of ``kind`` with these entry (or spec) fields."""
    from secretops.keys import source

    m = messages()
    wire = source(kind).wire
    if wire is None or kind not in m.fields:
        raise ProtocolError(f"{kind} keys have no message in the key service protocol")
    key = m.key()
    sub = getattr(key, m.fields[kind])
    sub.SetInParent()  # an entry of empty fields is still this kind of key
    for name in wire.fields:
        value = fields.get(name)
        if name in wire.maps:
            getattr(sub, name).update({str(k): str(v) for k, v in dict(value or {}).items()})
        else:
            setattr(sub, name, "" if value is None else str(value))
    return key


def key_fields(key: Any) -> tuple[str, dict[str, Any]]:
    """The kind and entry fields a ``Key`` names; :class:`ProtocolError` when it names none,
    or a kind secretops does not serve (a newer sops's ``hckms``)."""
    from secretops.keys import source

    m = messages()
    which = key.WhichOneof("key_type")
    if which is None:
        if key.ByteSize():
            raise ProtocolError("the request names a key type this key service does not know")
        raise ProtocolError("the request names no key")
    kind = m.kinds[which]
    wire = source(kind).wire
    assert wire is not None  # a kind is in the oneof only with its wire record
    sub = getattr(key, which)
    out: dict[str, Any] = {}
    for name in wire.fields:
        value = getattr(sub, name)
        out[name] = dict(value) if name in wire.maps else str(value)
    return kind, out


def parse(cls: Any, data: bytes, what: str) -> Any:
    """A message from bytes, :class:`ProtocolError` when they are not one (protobuf's parser;
    gRPC has already refused anything over the size limit)."""
    from google.protobuf.message import DecodeError

    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, TypeError):
        raise ProtocolError(f"the {what} is not a well-formed key service message") from None
