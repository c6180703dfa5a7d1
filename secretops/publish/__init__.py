"""``publish``: send encrypted files where they are consumed, as sops's ``publish`` does.

A ``.sops.yaml`` ``destination_rules`` entry (:meth:`secretops.config.Config.destination_for`)
names one destination per file. What is sent depends on its kind, exactly as in sops 3.11:

* **S3** (``s3_bucket``, ``s3_prefix``): the *encrypted* file — as it is on disk, or, when the
  rule's ``recreation_rule`` names keys, decrypted and encrypted again for those keys under a
  new data key (its ``unencrypted_suffix``/``encrypted_suffix`` apply; sops ignores the rule's
  other settings, and so does this);
* **Vault KV** (``vault_path``, ``vault_address``, ``vault_kv_mount_name``,
  ``vault_kv_version``): the *decrypted* values, as a KV v1 secret or a KV v2 version at
  ``<mount>/[data/]<vault_path><name>`` (:func:`plain_map` says what the map holds);
* **GCS** (``gcs_bucket``, ``gcs_prefix``): the encrypted file, as for S3.

The object's name is the file's base name (``--recursive``: its path under the directory
given), without its extension with ``--omit-extensions`` or the rule's ``omit_extensions``.

:func:`prepare` does everything but the upload: it reads and checks the file, and decrypts or
re-encrypts it; the caller asks for confirmation, then calls ``upload``. Destinations live in
their own modules, one per kind, loaded by name from :data:`DESTINATIONS` (the SDKs they need
are imported there only): each builds a :class:`FileDestination` (takes encrypted bytes) or a
:class:`DataDestination` (takes decrypted data), and the protocol says which.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from secretops.errors import ConfigError, ExitCode, SecretOpsError

if TYPE_CHECKING:
    from secretops.config import Config, DestinationRule

# The registry: destination kind -> the module whose ``destination(settings, env)`` builds it.
DESTINATIONS = {
    "s3": "secretops.publish.s3",
    "gcs": "secretops.publish.gcs",
    "vault": "secretops.publish.vaultkv",
}


class FileDestination(Protocol):
    """Takes the encrypted file (S3, GCS)."""

    def path(self, name: str) -> str: ...

    def upload(self, contents: bytes, name: str) -> None: ...


@runtime_checkable
class DataDestination(Protocol):
    """Takes the decrypted values (Vault KV); returns a note for the user, or None."""

    def path(self, name: str) -> str: ...

    def upload_data(self, data: dict[str, Any], name: str) -> str | None: ...


class Publication(NamedTuple):
    """One file, ready to send: where, what, and what its keys become."""

    source: str  # the file's absolute path, as sops prints it
    name: str  # the object's name under the destination's prefix or path
    destination: FileDestination | DataDestination
    payload: bytes | dict[str, Any]  # encrypted bytes, or the decrypted map for a DataDestination
    key_changes: list[str]  # with a recreation rule: the key groups' changes

    @property
    def target(self) -> str:
        return self.destination.path(self.name)

    def upload(self) -> str | None:
        """Send it; a note for the user (``already up to date``) or None."""
        dest, payload = self.destination, self.payload
        if isinstance(dest, DataDestination) and isinstance(payload, dict):
            return dest.upload_data(payload, self.name)
        if not isinstance(dest, DataDestination) and isinstance(payload, bytes):
            dest.upload(payload, self.name)
            return None
        raise TypeError("a payload that its destination does not take")  # pragma: no cover


def destination(rule: DestinationRule, env: Mapping[str, str]) -> FileDestination | DataDestination:
    """The destination a rule names (its module imported only now)."""
    if rule.kind not in DESTINATIONS:
        raise ConfigError(
            f"publishing to {rule.kind.upper()} is not implemented in secretops",
            hints=("the destination rule names s3_bucket, gcs_bucket or vault_path",))
    made: FileDestination | DataDestination = importlib.import_module(
        DESTINATIONS[rule.kind]).destination(rule.settings, env)
    return made


def object_name(path: str, root: str | None, omit_extensions: bool) -> str:
    """The name a file is published under, computed as sops computes it: the base name, or with
    ``root`` (``--recursive``) the path relative to it (``.`` for the root itself); then
    without the file's extension (Go's ``filepath.Ext``: from the base name's last dot)."""
    base = os.path.basename(os.path.abspath(path))
    name = os.path.relpath(path, root) if root is not None else base
    if omit_extensions and "." in base:
        name = name.removesuffix("." + base.rpartition(".")[2])
    return name


def prepare(path: str, cfg: Config, env: Mapping[str, str], *, root: str | None = None,
            omit_extensions: bool = False) -> Publication:
    """Read ``path`` and make what its destination takes; nothing is sent yet. ``cfg`` is the
    config of the working directory (or ``--config``), as in sops."""
    from secretops.fileio import read_input
    from secretops.stores import format_for_path

    rule = cfg.destination_for(path)
    if not rule.kind:
        raise ConfigError("no destination configured for this file", file=str(cfg.path),
                          hints=("the matching destination rule names no s3_bucket, "
                                 "gcs_bucket or vault_path",))
    name = object_name(path, root, omit_extensions or rule.omit_extensions)
    fmt = format_for_path(path)
    options = cfg.store_options(fmt)
    dest = destination(rule, env)
    raw = read_input(path)
    source = os.path.abspath(path)
    if isinstance(dest, DataDestination):
        return Publication(source, name, dest, plain_map(_open(raw, fmt, options, env).docs), [])
    groups = rule.recreation.groups
    if not (groups and groups[0]):  # sops: no keys in the recreation rule, the file as it is
        _check_encrypted(raw, fmt, options)
        return Publication(source, name, dest, raw, [])
    contents, changes = _reencrypt(_open(raw, fmt, options, env), rule, env)
    return Publication(source, name, dest, contents, changes)


def _open(raw: bytes, fmt: str, options: Any, env: Mapping[str, str]) -> Any:
    from secretops.fileops import open_file

    return open_file(raw, format=fmt, env=env, options=options, keep_ivs=False)


def _check_encrypted(raw: bytes, fmt: str, options: Any) -> None:
    from secretops.core.metadata import Metadata
    from secretops.errors import MetadataError
    from secretops.fileops import load

    _, loaded = load(raw, fmt, options)
    if loaded.metadata is None:
        raise MetadataError("sops metadata not found: the file is not encrypted")
    Metadata.from_wire(loaded.metadata)


def _reencrypt(opened: Any, rule: DestinationRule, env: Mapping[str, str]
               ) -> tuple[bytes, list[str]]:
    """The file under a new data key for the recreation rule's keys, as sops re-creates it:
    only the rule's unencrypted/encrypted suffix is kept as a selection rule."""
    from secretops.core.document import seal
    from secretops.core.metadata import FORMAT_VERSION, Metadata
    from secretops.core.selection import Selection
    from secretops.fileops import now
    from secretops.keyops import plan_update
    from secretops.keys.datakey import make_recipients, wrap_data_key

    want = rule.recreation
    plan = plan_update(opened.metadata, want.groups, want.shamir_threshold)
    changes = [line for line in plan.summary() if not line.startswith("the data key")]
    groups = [g for g in want.groups if g]
    threshold = want.shamir_threshold
    if len(groups) > 1:
        threshold = threshold or len(groups)
    data_key = os.urandom(32)
    metadata = Metadata(
        key_groups=wrap_data_key(make_recipients(groups, env), data_key, threshold, os.urandom),
        shamir_threshold=threshold,
        selection=Selection(unencrypted_suffix=want.selection.get("unencrypted_suffix", ""),
                            encrypted_suffix=want.selection.get("encrypted_suffix", "")),
        version=FORMAT_VERSION,
    )
    sealed = seal(opened.docs, metadata, data_key, random=os.urandom, lastmodified=now())
    return bytes(opened.store.emit(sealed, metadata.to_wire(), opened.loaded.layout)), changes


def plain_map(docs: list[Any]) -> dict[str, Any]:
    """The decrypted documents as the one map sops sends to Vault (its ``EmitAsMap``).

    Every document's top-level keys merged into one map (a later document's key wins), maps
    nested as maps, comments at map level dropped. Inside a list, sops keeps its tree types,
    which Go's JSON encoder writes as they are — and so does this, so the secret reads the
    same whoever published it: a map in a list becomes a list of ``{"Key": k, "Value": v}``,
    a comment in a list becomes ``{"Value": "text"}``.
    """
    from secretops.core.tree import Branch, Comment

    out: dict[str, Any] = {}
    for doc in docs:
        for item in doc:
            if isinstance(item, Comment):
                continue
            key, value = item
            out[str(key)] = plain_map([value]) if isinstance(value, Branch) else _raw(value)
    return out


def _raw(value: Any) -> Any:
    """A value inside a list, as Go's encoding/json writes sops's tree types."""
    from secretops.core.tree import Branch, Comment, Seq

    if isinstance(value, Comment):
        return GoStruct(Value=str(value))
    if isinstance(value, Branch):
        return GoArray(GoStruct(Key=GoStruct(Value=str(i)), Value=None) if isinstance(i, Comment)
                       else GoStruct(Key=i[0], Value=_raw(i[1])) for i in value)
    if isinstance(value, Seq):
        return [_raw(v) for v in value]
    return value


class GoArray(list[Any]):
    """A list that is one of sops's tree types in Go (a map inside a list): JSON-encoded as a
    list, never equal to data read back (:func:`secretops.publish.vaultkv.go_equal`)."""

    __slots__ = ()


class GoStruct(dict[str, Any]):
    """A Go struct of sops's tree (``TreeItem``, ``Comment``), JSON-encoded as an object."""

    __slots__ = ()


def require(module: str, extra: str, what: str) -> None:
    """Exit 154 with the extra to install when ``module`` is missing."""
    from importlib.util import find_spec

    from secretops.keys import SourceUnavailable

    if find_spec(module) is None:
        raise SourceUnavailable(f"{what} needs the Python package {module}, which is not "
                                "installed", hints=(f"pip install 'secretops[{extra}]'",))


def upload_error(what: str, target: str) -> SecretOpsError:
    """A failed upload: one line naming the target, never the payload."""
    return SecretOpsError(f"cannot publish to {target}: {what}", code=ExitCode.GENERIC)
