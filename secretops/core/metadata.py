"""The ``sops:`` metadata block: its model, and its wire form with sops's exact names and order.

The wire form mirrors ``stores/stores.go`` of sops 3.11 field by field:

* top level, in this order: ``shamir_threshold`` (omitted when 0), ``key_groups`` (only with more
  than one group), ``kms``, ``gcp_kms``, ``hckms``, ``azure_kv``, ``hc_vault``, ``age`` (each
  omitted when empty), ``lastmodified``, ``mac``, ``pgp``, the one selection rule,
  ``mac_only_encrypted`` (omitted when false), ``version``;
* inside ``key_groups`` each group is ``pgp``, ``kms``, ``gcp_kms``, ``hckms``, ``azure_kv``
  (omitted when empty), then ``hc_vault`` and ``age`` (always present, possibly ``[]``);
* each key entry keeps its own field order (see :data:`KEY_FIELDS`).

This is sops's wire format, so it lists every kind sops writes, whether or not a key source
(:mod:`secretops.keys`) implements it; each source's record points at its kind's fields here.

Key entries are kept as ordered ``(field, value)`` mappings so that entries of key sources this
version does not implement (for example ``gcp_kms``) survive a metadata rewrite unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from secretops.core.agemsg import AgeMessageError, read_message
from secretops.core.limits import MAX_ENC_CHARS, MAX_KEY_ENTRIES, MAX_KEY_GROUPS
from secretops.core.pgpmsg import PgpMessageError
from secretops.core.pgpmsg import read_message as read_pgp_message
from secretops.core.selection import RULE_FIELDS, Selection
from secretops.core.tree import Branch, Seq
from secretops.errors import ExitCode, LimitExceededError, MetadataError, SecretOpsError

FORMAT_VERSION = "3.11.0"

# Top-level order of key kinds (single group) and their order inside a key group.
TOP_KEY_KINDS = ("kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "age")
GROUP_KEY_KINDS = ("pgp", "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "age")
GROUP_ALWAYS = ("hc_vault", "age")
# The order sops holds a group's keys in once read, whatever the file's order (stores.go's
# internalGroupFrom): the order it tries kinds that the decryption order does not name.
INTERNAL_KEY_ORDER = ("kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "pgp", "age")

KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "age": ("recipient", "enc"),
    "kms": ("arn", "role", "context", "created_at", "enc", "aws_profile"),
    "gcp_kms": ("resource_id", "created_at", "enc"),
    "hckms": ("key_id", "created_at", "enc"),
    "azure_kv": ("vault_url", "name", "version", "created_at", "enc"),
    "hc_vault": ("vault_address", "engine_path", "key_name", "created_at", "enc"),
    "pgp": ("created_at", "enc", "fp"),
}
_OMIT_EMPTY = {("kms", "role"), ("kms", "context")}


class KeyEntry:
    """One master key's entry: its kind (``age``, ``kms``, …) and its wire fields."""

    __slots__ = ("fields", "kind")

    def __init__(self, kind: str, fields: dict[str, Any]) -> None:
        self.kind = kind
        self.fields = fields

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyEntry):
            return False
        return (self.kind, self.fields) == (other.kind, other.fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.fields.items() if k != "enc"}
        return f"KeyEntry({self.kind!r}, {shown!r})"

    @property
    def enc(self) -> str:
        return str(self.fields.get("enc", ""))

    def to_wire(self) -> Branch:
        order = KEY_FIELDS.get(self.kind, tuple(self.fields))
        out = Branch()
        for name in order:
            value = self.fields.get(name, "")
            if (self.kind, name) in _OMIT_EMPTY and not value:
                continue
            if name == "context" and isinstance(value, dict):
                value = Branch(sorted(value.items()))  # Go maps are emitted sorted
            out.append((name, value))
        for name, value in self.fields.items():  # unknown fields are kept, after known ones
            if name not in order:
                out.append((name, value))
        return out


class Metadata:
    """Everything in the ``sops:`` block."""

    __slots__ = ("key_groups", "lastmodified", "mac", "selection", "shamir_threshold", "version")

    def __init__(
        self,
        key_groups: list[list[KeyEntry]] | None = None,
        shamir_threshold: int = 0,
        lastmodified: str = "",
        mac: str = "",
        selection: Selection | None = None,
        version: str = FORMAT_VERSION,
    ) -> None:
        self.key_groups = key_groups if key_groups is not None else []
        self.shamir_threshold = shamir_threshold
        self.lastmodified = lastmodified
        self.mac = mac
        self.selection = selection if selection is not None else Selection.build()
        self.version = version

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Metadata) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Metadata(keys={self.all_keys()!r}, version={self.version!r})"

    def all_keys(self) -> list[KeyEntry]:
        return [k for group in self.key_groups for k in group]

    def to_wire(self) -> Branch:
        """The ordered tree a store emits under the top-level ``sops`` key."""
        out = Branch()
        groups = self.key_groups
        if self.shamir_threshold:
            out.append(("shamir_threshold", self.shamir_threshold))
        if len(groups) > 1:
            wire_groups = Seq()
            for group in groups:
                g = Branch()
                for kind in GROUP_KEY_KINDS:
                    entries = Seq(k.to_wire() for k in group if k.kind == kind)
                    if entries or kind in GROUP_ALWAYS:
                        g.append((kind, entries))
                wire_groups.append(g)
            out.append(("key_groups", wire_groups))
        single = groups[0] if len(groups) == 1 else []
        for kind in TOP_KEY_KINDS:
            entries = Seq(k.to_wire() for k in single if k.kind == kind)
            if entries:
                out.append((kind, entries))
        out.append(("lastmodified", self.lastmodified))
        out.append(("mac", self.mac))
        pgp = Seq(k.to_wire() for k in single if k.kind == "pgp")
        if pgp:
            out.append(("pgp", pgp))
        sel = self.selection
        for name in RULE_FIELDS:
            value = getattr(sel, name)
            if value:
                out.append((name, value))
        if sel.mac_only_encrypted:
            out.append(("mac_only_encrypted", True))
        out.append(("version", self.version))
        return out

    @classmethod
    def from_wire(cls, node: Any) -> Metadata:
        """Parse the ``sops`` value of a loaded file (a Branch or a dict).

        The file is untrusted: every field's shape is checked, and the key entries are held to
        the limits of :mod:`secretops.core.limits` (how many, how long, each age entry's header
        and each pgp entry's packets) before any key is used. Problems raise :class:`MetadataError`,
        :class:`~secretops.errors.LimitExceededError` or an unsupported-version error.
        """
        m = _as_dict(node)
        if m is None:
            raise MetadataError("the sops metadata is not a map")
        version = _text(m, "version")
        if not version:
            raise MetadataError("the sops metadata has no version")
        if not re.match(r"3\.\d+(\.\d+)?([-+.].*)?\Z", version):
            shown = version if len(version) <= 40 and version.isprintable() else "(unreadable)"
            raise SecretOpsError(
                f"unsupported sops format version {shown!r} (secretops reads version 3)",
                code=ExitCode.UNSUPPORTED_VERSION,
            )
        groups: list[list[KeyEntry]] = []
        counter = _Counter()
        raw_groups = m.get("key_groups")
        if raw_groups:
            if not isinstance(raw_groups, list) or isinstance(raw_groups, Branch):
                raise MetadataError("key_groups in the sops metadata is not a list",
                                    path='["sops"]["key_groups"]')
            wire_groups = _as_list(raw_groups)
            if len(wire_groups) > MAX_KEY_GROUPS:
                raise LimitExceededError(
                    f"the file has {len(wire_groups)} key groups, more than {MAX_KEY_GROUPS}",
                    path='["sops"]["key_groups"]')
            for n, g in enumerate(wire_groups):
                gd = _as_dict(g)
                if gd is None:
                    raise MetadataError("a key group in the sops metadata is not a map",
                                        path=f'["sops"]["key_groups"][{n}]')
                groups.append(_entries(gd, GROUP_KEY_KINDS, counter,
                                       f'["sops"]["key_groups"][{n}]'))
        else:
            entries = _entries(m, (*TOP_KEY_KINDS, "pgp"), counter, '["sops"]')
            if entries:
                groups.append(entries)
        rules = {name: _text(m, name) for name in RULE_FIELDS}
        if sum(1 for v in rules.values() if v) > 1:
            raise MetadataError("the sops metadata sets more than one selection rule")
        for name, value in rules.items():
            if value and name.endswith("regex"):
                try:
                    re.compile(value)
                except (re.error, RecursionError, OverflowError):
                    raise MetadataError(f"the file's {name} is not a valid regular expression",
                                        path=f'["sops"]["{name}"]') from None
        mac_only = m.get("mac_only_encrypted") in (True, "true", "True")
        threshold = _threshold(m.get("shamir_threshold"))
        if len(groups) > 1 and threshold == 1:
            raise MetadataError("shamir_threshold 1 is below 2: each key group holds a share, "
                                "and sops needs at least two to combine",
                                path='["sops"]["shamir_threshold"]')
        return cls(
            key_groups=groups,
            shamir_threshold=threshold,
            lastmodified=_text(m, "lastmodified"),
            mac=_text(m, "mac"),
            selection=Selection(mac_only_encrypted=mac_only, **rules),
            version=version,
        )


def _as_dict(node: Any) -> dict[str, Any] | None:
    if isinstance(node, Branch):
        return {k: v for k, v in (i for i in node if type(i) is tuple)}
    if isinstance(node, dict):
        return node
    return None


def _as_list(node: Any) -> list[Any]:
    if isinstance(node, list):
        return [v for v in node if not isinstance(v, str) or type(v) is str]
    return []


_SCALARS = (str, int, float, bool)


def _text(m: dict[str, Any], name: str, where: str = '["sops"]') -> str:
    """A field that sops reads as a string: a scalar (or absent), never a map or list."""
    value = m.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, _SCALARS):
        raise MetadataError(f"{name} in the sops metadata is not a string",
                            path=f'{where}["{name}"]')
    return str(value)


def _threshold(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise MetadataError("shamir_threshold is not a number from 0 to 255",
                            path='["sops"]["shamir_threshold"]')
    return value


class _Counter:
    """Key entries seen so far in one file, against MAX_KEY_ENTRIES."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, more: int, path: str) -> None:
        self.n += more
        if self.n > MAX_KEY_ENTRIES:
            raise LimitExceededError(
                f"the file has more than {MAX_KEY_ENTRIES} key entries", path=path)


def _entries(m: dict[str, Any], kinds: tuple[str, ...], counter: _Counter,
             where: str) -> list[KeyEntry]:
    out = []
    for kind in kinds:
        raw_list = m.get(kind) or []
        if not isinstance(raw_list, list) or isinstance(raw_list, Branch):
            raise MetadataError(f"{kind} in the sops metadata is not a list",
                                path=f'{where}["{kind}"]')
        items = _as_list(raw_list)
        counter.add(len(items), f'{where}["{kind}"]')
        for n, raw in enumerate(items):
            path = f'{where}["{kind}"][{n}]'
            d = _as_dict(raw)
            if d is None:
                raise MetadataError(f"a {kind} key entry in the sops metadata is not a map",
                                    path=path)
            out.append(_entry(kind, d, path))
    return out


def _entry(kind: str, d: dict[str, Any], path: str) -> KeyEntry:
    """One key entry, its known fields checked for shape and its wrapped key for size."""
    fields: dict[str, Any] = {}
    known = KEY_FIELDS.get(kind, ())
    for name, value in d.items():
        if isinstance(value, Branch):
            value = _as_dict(value)
        if name in known and value is not None and not isinstance(value, _SCALARS) and not (
                kind == "kms" and name == "context" and isinstance(value, dict)
                and all(isinstance(v, _SCALARS) for v in value.values())):
            raise MetadataError(f"the {kind} key entry's {name} is not a string",
                                path=f'{path}["{name}"]')
        fields[name] = value
    entry = KeyEntry(kind, fields)
    enc = entry.enc
    if len(enc) > MAX_ENC_CHARS:
        raise LimitExceededError(
            f"the {kind} key entry's wrapped key is {len(enc)} characters long, more than "
            f"{MAX_ENC_CHARS}", path=f'{path}["enc"]')
    if kind in ("age", "pgp") and enc:
        try:  # bounded before any identity (or gpg) tries it
            (read_message if kind == "age" else read_pgp_message)(enc)
        except (AgeMessageError, PgpMessageError):
            pass  # not such a message: unwrapping reports it, and other keys are tried
        except LimitExceededError as e:
            e.path = f'{path}["enc"]'
            raise
    return entry
