"""Master keys as users name them: flags, environment variables and ``.sops.yaml`` rules.

A :class:`KeySpec` is a master key before it wraps anything: its kind (the metadata's key:
``age``, ``kms``, ``hc_vault``, ``pgp``) and the fields that kind's metadata entry carries,
parsed the way sops parses them. How each source's values read — ``--age`` /
``SOPS_AGE_RECIPIENTS`` / rule ``age``, ``--kms`` with ``--encryption-context`` and
``--aws-profile``, a ``key_groups`` KMS map, … — is in that source's record
(:class:`secretops.keys.KeySource`); this module applies every registered record:

* :func:`from_flags` — one key group from command-line style values (keyword = the flag);
* :func:`from_env` — the keys sops takes from the environment when no flag names one;
* :func:`from_rule` — the key groups of one ``.sops.yaml`` creation rule.

No I/O here; :func:`secretops.keys.recipient` turns specs into recipients.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeySource, sources, split_list, unsupported

# Every key name sops's .sops.yaml knows (creation rules and key_groups): the ones no registered
# source reads are refused, rather than encrypting a file without the keys the rule asks for.
SOPS_KEY_NAMES = ("age", "pgp", "kms", "gcp_kms", "azure_keyvault", "azure_kv",
                  "hc_vault_transit_uri", "hc_vault", "hckms")

__all__ = ["SOPS_KEY_NAMES", "KeySpec", "check_keywords", "from_env", "from_flags", "from_rule",
           "split_list"]


class KeySpec(NamedTuple):
    kind: str
    fields: dict[str, Any]


def _options(src: KeySource, given: Mapping[str, Any]) -> dict[str, Any]:
    # parsed even without keys of the source: a malformed value fails as in sops
    return {o.name: o.parse(given.get(o.name)) for o in src.options}


def check_keywords(names: Iterable[str]) -> None:
    """TypeError for a name that is neither a source's keyword nor one of its options."""
    known = {n for src in sources() for n in (src.keyword, *(o.name for o in src.options))}
    unknown = sorted(set(names) - known)
    if unknown:
        raise TypeError(f"unknown key option {unknown[0]!r}")


def from_flags(**values: Any) -> list[KeySpec]:
    """One group of keys from command-line style values: ``age="age1…,age1…"``,
    ``kms=[…]``, ``encryption_context="k:v"`` … (a list, or a comma-separated string)."""
    check_keywords(values)
    specs: list[KeySpec] = []
    for src in sources():
        options = _options(src, values)
        specs += [src.parse(v, options) for v in split_list(values.get(src.keyword))]
    return specs


def from_env(env: Mapping[str, str]) -> list[KeySpec]:
    """The keys sops takes from the environment when no flag names one."""
    specs: list[KeySpec] = []
    for src in sources():
        options = _options(src, {})
        specs += [src.parse(v, options) for v in split_list(env.get(src.env))]
    return specs


def require_keys(groups: list[list[KeySpec]], where: str) -> None:
    """A creation rule that gives no key cannot make a data key: sops's "empty key group
    provided", exit 1 (``encrypt``, ``edit`` of a new file, ``updatekeys``)."""
    if not any(groups):
        raise SecretOpsError("could not generate data key: empty key group provided",
                             code=ExitCode.GENERIC,
                             hints=(f"{where} names no key: add age, pgp, kms, "
                                    "hc_vault_transit_uri or key_groups to it",))


def from_rule(rule: Mapping[str, Any], where: str) -> list[list[KeySpec]]:
    """The key groups of one ``.sops.yaml`` creation rule."""
    not_read = unsupported(SOPS_KEY_NAMES)
    bad = [k for k in not_read if rule.get(k)]
    groups: list[list[KeySpec]] = []
    if rule.get("key_groups"):
        # top-level keys beside key_groups are ignored, as sops ignores them
        for n, group in enumerate(rule["key_groups"]):
            if not isinstance(group, Mapping):
                raise SecretOpsError(f"{where}.key_groups[{n}] is not a map",
                                     code=ExitCode.ERROR_READING_CONFIG)
            bad += [k for k in not_read if group.get(k)]
            specs = [spec for src in sources()
                     for spec in src.parse_group(group.get(src.group_key))]
            if not specs and not any(group.get(k) for k in not_read):
                # an empty group could never be opened: with a threshold the file would be
                # lost, without one the policy would shrink silently (sops refuses it too)
                raise SecretOpsError(f"{where}.key_groups[{n}]: empty key group provided",
                                     code=ExitCode.GENERIC,
                                     hints=("a key group needs at least one key",))
            groups.append(specs)
    else:
        specs = []
        for src in sources():
            options = _options(src, {o.name: rule.get(o.config_key)
                                     for o in src.options if o.config_key})
            specs += [src.parse(v, options) for v in split_list(rule.get(src.config_key))]
        if specs:
            groups.append(specs)
    if bad:
        raise SecretOpsError(
            f"{where} uses key sources secretops does not support: {', '.join(sorted(set(bad)))}",
            code=ExitCode.ERROR_READING_CONFIG,
        )
    return groups
