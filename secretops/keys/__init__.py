"""Key sources: how a file's data key is wrapped for recipients and unwrapped by identities.

Two tiny protocols, after age's ``Recipient``/``Identity``:

* a :class:`Recipient` wraps a 32-byte data key into a metadata :class:`KeyEntry`;
* an :class:`Identity` unwraps a :class:`KeyEntry` back into the data key, or raises
  :class:`KeyMismatch` when the entry is not for it. Any other exception means the key was for
  this identity (or source) but could not be used — it is reported, and other keys are tried.

**One module per source, one record each, one table.** Each source module (``age``, ``pgp``,
``awskms``, ``vault``) defines ``SOURCE``, a :class:`KeySource` holding everything about it:
its metadata kind, wire fields and identity fields, how an entry is described in messages, the
pip extra and the modules that extra installs, the command-line flag and environment variable,
the ``.sops.yaml`` keys and how their values parse into :class:`~secretops.keys.specs.KeySpec`
objects, the recipient and identity factories, and its key's shape in sops's key service
protocol (:class:`WireKey`). :data:`SOURCES` lists the modules, one line
each, in the default decryption order. The CLI (flags), the config (rules), the metadata
readers (descriptions) and ``updatekeys``/``rotate`` (identities) all read these records, so
adding a source is its module, one line here and its extra in ``pyproject.toml``.

A source module imports its heavy library (pyrage, boto3, hvac, the gpg runner's subprocess)
only inside the functions that use it, so reading the records — which ``--help`` does — costs
nothing, and an age-only run never loads boto3 or hvac. Before a recipient or identity is built
the modules of the source's extra are looked up; a missing one is :class:`SourceUnavailable`
(exit 154) with a hint naming the extra to install.

Optional abilities a source may have beyond wrap and unwrap are protocols of their own (for
example :class:`Rewrapper`), listed in the record's ``abilities`` and found by protocol with
:func:`rewrapper` — never by probing for methods.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from secretops.core.metadata import KEY_FIELDS, KeyEntry
from secretops.errors import ExitCode, SecretOpsError

if TYPE_CHECKING:
    from secretops.core.metadata import Metadata
    from secretops.keys.specs import KeySpec

# The registry: metadata kind -> the module whose SOURCE record describes it, one line each.
# Flags, --help and key specs follow this order.
SOURCES = {
    "age": "secretops.keys.age",
    "kms": "secretops.keys.awskms",
    "hc_vault": "secretops.keys.vault",
    "pgp": "secretops.keys.pgp",
    "gcp_kms": "secretops.keys.gcpkms",
    "azure_kv": "secretops.keys.azurekv",
    "hckms": "secretops.keys.hckms",
}
# Decrypting tries keys held here before network services (sops's DefaultDecryptionOrder;
# SOPS_DECRYPTION_ORDER / --decryption-order replace it); the other entries of a key group
# follow in the file's order.
LOCAL_FIRST = ("age", "pgp")
DEFAULT_DECRYPTION_ORDER = LOCAL_FIRST


def decryption_order(env: Mapping[str, str]) -> list[str]:
    """The key kinds to try first, from ``SOPS_DECRYPTION_ORDER`` read as sops reads it:
    split at commas, nothing trimmed, a kind named twice refused (sops's exit 112)."""
    text = env.get("SOPS_DECRYPTION_ORDER") or ""
    if not text:
        return list(DEFAULT_DECRYPTION_ORDER)
    order = text.split(",")
    for n, kind in enumerate(order):
        if kind in order[:n]:
            raise SecretOpsError(f"duplicate decryption key type: {kind}",
                                 code=ExitCode.DUPLICATE_DECRYPTION_KEY_TYPE,
                                 hints=("--decryption-order and SOPS_DECRYPTION_ORDER name each "
                                        "key type once, e.g. age,pgp",))
    return order


class KeyMismatch(Exception):
    """This identity cannot open this entry (not an error: try the next one)."""


class Recipient(Protocol):
    """Wraps a data key for one master key."""

    kind: str

    def wrap(self, data_key: bytes) -> KeyEntry: ...


class Identity(Protocol):
    """Unwraps data keys from entries of one kind."""

    kind: str

    def unwrap(self, entry: KeyEntry) -> bytes: ...


@runtime_checkable
class Rewrapper(Protocol):
    """An optional ability: re-wrap a file's entries with the newest version of their master
    key, without the data key leaving the service (Vault transit's ``rewrap``)."""

    def rewrap(self, metadata: Metadata, env: Mapping[str, str]) -> tuple[Metadata, list[Any]]:
        ...


def rewrapper(src: KeySource) -> Rewrapper | None:
    """The source's :class:`Rewrapper`, if it has that ability."""
    return next((a for a in src.abilities if isinstance(a, Rewrapper)), None)


@runtime_checkable
class Resolver(Protocol):
    """An optional ability: complete a key named in a ``.sops.yaml`` rule before it is compared
    with a file's entries (Azure Key Vault: the current version of a key named without one,
    asked of the vault as sops asks when it reads the rule)."""

    def resolve(self, spec: KeySpec, env: Mapping[str, str]) -> KeySpec: ...


def resolved(groups: Sequence[Sequence[KeySpec]], env: Mapping[str, str]
             ) -> list[list[KeySpec]]:
    """The key groups with every spec completed by its source's :class:`Resolver`, if any."""
    out: list[list[KeySpec]] = []
    for group in groups:
        specs = []
        for spec in group:
            src = source(spec.kind)
            ability = next((a for a in src.abilities if isinstance(a, Resolver)), None)
            specs.append(ability.resolve(spec, env) if ability is not None else spec)
        out.append(specs)
    return out


class SourceUnavailable(SecretOpsError):
    """A key source's optional dependency is not installed."""

    code = ExitCode.INVALID_KEY


class WireKey(NamedTuple):
    """How sops's key service protocol (gRPC, ``secretops keyservice``) names a master key of
    this source: ``number`` is its message's field number in the request's ``Key`` oneof, and
    ``fields`` are the entry fields that message carries, as proto3 fields numbered 1, 2, … in
    that order — strings, except those in ``maps`` (``map<string, string>``). The numbers are
    sops's (``keyservice/keyservice.proto``): they are the wire format, the names are not."""

    number: int
    fields: tuple[str, ...]
    maps: tuple[str, ...] = ()


class KeyOption:
    """A setting that applies to every key of one source named on the command line
    (``--encryption-context``, ``--aws-profile``), parsed once whether or not keys are given,
    so a malformed value fails as in sops."""

    __slots__ = ("config_key", "help", "metavar", "name", "parse", "rotate_help")

    def __init__(self, name: str, *, metavar: str, help: str, rotate_help: str,
                 parse: Callable[[Any], Any] = lambda v: v or "",
                 config_key: str | None = None) -> None:
        self.name = name  # the keyword (encryption_context) and, dashed, the flag
        self.metavar = metavar
        self.help = help
        self.rotate_help = rotate_help
        self.parse = parse
        self.config_key = config_key  # the same setting at the top of a creation rule

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class KeySource:
    """Everything about one key source: the one record the rest of secretops reads."""

    __slots__ = ("abilities", "config_key", "describe", "env", "example", "extra", "flag",
                 "group_example", "group_key", "help", "identity", "identity_fields", "kind",
                 "metavar", "no_identity_hint", "options", "parse", "parse_group", "recipient",
                 "remove_fields", "requires", "short", "title", "upper_fields", "wire")

    def __init__(
        self,
        kind: str,
        *,
        title: str,
        describe: Callable[[Mapping[str, Any]], str],
        identity_fields: tuple[str, ...],
        flag: str,
        metavar: str,
        help: str,
        example: str,
        env: str,
        config_key: str,
        group_key: str,
        parse: Callable[[str, Mapping[str, Any]], KeySpec],
        recipient: Callable[[Mapping[str, Any], Mapping[str, str]], Recipient],
        identity: Callable[[Mapping[str, str]], Identity | None],
        parse_group: Callable[[Any], list[KeySpec]] | None = None,
        group_example: Any = None,
        options: tuple[KeyOption, ...] = (),
        extra: str | None = None,
        requires: tuple[str, ...] = (),
        upper_fields: tuple[str, ...] = (),
        remove_fields: tuple[str, ...] | None = None,
        no_identity_hint: str = "",
        abilities: tuple[object, ...] = (),
        short: str | None = None,
        wire: WireKey | None = None,
    ) -> None:
        self.kind = kind  # the metadata's key: age, pgp, kms, hc_vault
        self.title = title  # for people: "AWS KMS"
        self.describe = describe  # an entry's fields -> a short, secret-free name
        self.identity_fields = identity_fields  # what makes two entries the same master key
        self.upper_fields = upper_fields  # compared case-insensitively (PGP fingerprints)
        # what --rm-* matches on, an empty value matching any (None: the identity fields)
        self.remove_fields = remove_fields
        self.flag = flag  # --age, --add-age, --rm-age; keyword age=
        self.short = short  # sops's one-letter form of the flag on encrypt and edit (-a)
        self.metavar = metavar
        self.help = help  # what the values are, for --help
        self.example = example  # one value as typed on the command line
        # the same key as a key_groups entry in .sops.yaml
        self.group_example = [example] if group_example is None else group_example
        self.env = env  # the environment variable naming keys when no flag does
        self.config_key = config_key  # a creation rule's top-level key
        self.group_key = group_key  # the key inside key_groups
        self.parse = parse  # one value as typed (flag, env, rule) -> KeySpec
        self.parse_group = parse_group or (
            lambda raw: [parse(v, {}) for v in split_list(raw)])
        self.options = options
        self.recipient = recipient
        self.identity = identity
        self.extra = extra  # pip install 'secretops[extra]'
        self.requires = requires  # the modules that extra installs
        self.no_identity_hint = no_identity_hint
        self.abilities = abilities
        self.wire = wire  # its key in sops's key service protocol (None: not served)

    def __repr__(self) -> str:
        return f"KeySource({self.kind!r})"

    @property
    def fields(self) -> tuple[str, ...]:
        """The entry's wire fields in sops's order (the wire format is core's: see
        :data:`secretops.core.metadata.KEY_FIELDS`)."""
        return KEY_FIELDS[self.kind]

    @property
    def keyword(self) -> str:
        return self.flag.replace("-", "_")

    def identity_key(self, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        """What names the master key of an entry or spec: equal for the same key."""
        return _identity_key(self.kind, self.identity_fields, self.upper_fields, fields)

    def removes(self, spec: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Whether an ``--rm-*`` spec names the key of an entry with ``fields``."""
        if self.remove_fields is None:
            return self.identity_key(spec) == self.identity_key(fields)
        return all(not spec.get(n) or spec.get(n) == fields.get(n) for n in self.remove_fields)

    def check_available(self) -> None:
        """Raise :class:`SourceUnavailable` (exit 154) when the extra is not installed."""
        if not self.requires:
            return
        from importlib.util import find_spec

        for name in self.requires:
            try:
                found = find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise SourceUnavailable(
                    f"the {self.title} key source needs the Python package {name}, which is "
                    "not installed",
                    hints=(f"pip install 'secretops[{self.extra}]'",) if self.extra else ())


def split_list(value: Any) -> list[str]:
    """A comma-separated string or a list (``.sops.yaml`` allows both)."""
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).replace("\n", ",").split(",")
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def source(kind: str) -> KeySource:
    """The record of a registered kind (importing only its module); exit 154 otherwise."""
    if kind not in SOURCES:
        raise SecretOpsError(f"unsupported key source {kind!r}", code=ExitCode.INVALID_KEY)
    try:
        record: KeySource = importlib.import_module(SOURCES[kind]).SOURCE
    except ImportError as e:  # a broken installation: report it like a missing extra
        raise SourceUnavailable(
            f"the {kind} key source is not available: {e.name or e} is not installed"
        ) from None
    return record


def sources() -> list[KeySource]:
    """Every registered source's record, in the default decryption order."""
    return [source(kind) for kind in SOURCES]


def recipient(spec: KeySpec, env: Mapping[str, str]) -> Recipient:
    """A recipient for a spec, its source's extra checked first."""
    src = source(spec.kind)
    src.check_available()
    return src.recipient(spec.fields, env)


def identity(kind: str, env: Mapping[str, str]) -> Identity | None:
    """The identity of one kind the environment offers (None: nothing configured)."""
    src = source(kind)
    src.check_available()
    return src.identity(env)


def describe(kind: str, fields: Mapping[str, Any]) -> str:
    """A short, secret-free name of a master key for messages: ``age recipient age1…``."""
    try:
        return source(kind).describe(fields)
    except SecretOpsError:  # not registered, or its module is broken: a message needs a name
        return f"{kind} key"


def describe_entry(entry: KeyEntry) -> str:
    return describe(entry.kind, entry.fields)


def key_identity(kind: str, fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """Equal for entries and specs naming the same master key (a kind no source reads: equal
    when every field is)."""
    if kind not in SOURCES:
        return _identity_key(kind, tuple(sorted(fields)), (), fields)
    return source(kind).identity_key(fields)


def _identity_key(kind: str, names: tuple[str, ...], upper: tuple[str, ...],
                  fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """The kind, then each named field as text (a mapping as sorted text pairs)."""
    out: list[Any] = [kind]
    for name in names:
        value = fields.get(name) or ""
        if isinstance(value, Mapping):
            value = tuple(sorted((str(k), str(v)) for k, v in value.items()))
        else:  # always text, whatever a hostile file holds: identities are sorted (merge)
            value = str(value).upper() if name in upper else str(value)
        out.append(value)
    return tuple(out)


def unsupported(names: Sequence[str]) -> list[str]:
    """The ``.sops.yaml`` key names among ``names`` that no registered source reads."""
    claimed = {n for src in sources() for n in (src.config_key, src.group_key)}
    return [n for n in names if n not in claimed]
