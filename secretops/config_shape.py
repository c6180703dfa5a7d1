"""The shape a ``.sops.yaml`` must have, checked whole when it is loaded.

sops reads the file with go-yaml into typed structs (``config/config.go``): a value of the wrong
kind anywhere — a map where a list belongs, a list where a string belongs, text where a number
belongs — fails the whole read. :func:`check_shape` refuses the same, naming the field
(``creation_rules[2].key_groups[0].kms[1].context``), so every command that reads the config
agrees on whether it can be read. Unknown fields are ignored, as go-yaml ignores them. Where sops
is stricter than secretops has always been (a single recipient string where go-yaml wants a
list) the lenient reading stays.

Without recursion: ``key_groups`` may nest through ``merge`` as deep as the YAML limits allow.
"""

from __future__ import annotations

import re
from typing import Any

from secretops.errors import ConfigError

_SCALAR = (str, int, float, bool)
SELECTION_FIELDS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)
_RULE_STRINGS = ("path_regex", "aws_profile", *SELECTION_FIELDS)
_RULE_STRING_OR_LIST = ("kms", "age", "pgp", "gcp_kms", "azure_keyvault",
                        "hc_vault_transit_uri", "hckms")
_GROUP_LISTS = ("age", "pgp", "hc_vault")  # of strings (a single string is accepted too)
_GROUP_MAP_LISTS = ("kms", "gcp_kms", "hckms", "azure_keyvault")
_KMS_STRINGS = ("arn", "role", "aws_profile")
# path_regex is checked where it is used (publish): sops's other commands never read it
_DESTINATION_STRINGS = ("path_regex", "s3_bucket", "s3_prefix", "gcs_bucket", "gcs_prefix",
                        "vault_path", "vault_address", "vault_kv_mount_name")
_STORES = ("yaml", "json", "dotenv", "ini", "json_binary")
_REGEX_FIELDS = ("path_regex", "unencrypted_regex", "encrypted_regex",
                 "unencrypted_comment_regex", "encrypted_comment_regex")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    name = {"str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(
        type(value).__name__, type(value).__name__)
    return f"a {name}"


class _Check:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError(f"{where} {what}", file=self.file,
                           hints=("see docs/usage.md for the .sops.yaml fields",))

    def scalar(self, where: str, value: Any) -> None:
        if value is not None and not isinstance(value, _SCALAR):
            raise self.fail(where, f"must be a string, not {_kind(value)}")

    def scalars(self, where: str, value: Any) -> None:
        """A string, or a list of strings (sops's ``string or []string`` fields)."""
        if isinstance(value, list):
            for n, item in enumerate(value):
                self.scalar(f"{where}[{n}]", item)
        else:
            self.scalar(where, value)

    def mapping(self, where: str, value: Any) -> dict[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        return value

    def listing(self, where: str, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, not {_kind(value)}"
                            + (" (is a '-' missing?)" if isinstance(value, dict) else ""))
        return value

    def integer(self, where: str, value: Any, minimum: int | None = 0) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "must be an integer" if minimum is None
                            else "must be a non-negative integer")
        if minimum is not None and value < minimum:
            raise self.fail(where, "must be a non-negative integer")

    def regex(self, where: str, value: Any) -> None:
        if value is None or value == "":
            return
        try:
            re.compile(str(value))
        except (re.error, RecursionError, OverflowError) as e:
            raise self.fail(where, f"is not a valid regex: {e}") from None

    def rule(self, where: str, rule: Any) -> None:
        rule = self.mapping(where, rule)
        for field in _RULE_STRINGS:
            self.scalar(f"{where}.{field}", rule.get(field))
        for field in _REGEX_FIELDS:
            self.regex(f"{where}.{field}", rule.get(field))
        for field in _RULE_STRING_OR_LIST:
            self.scalars(f"{where}.{field}", rule.get(field))
        self.integer(f"{where}.shamir_threshold", rule.get("shamir_threshold"))
        mac_only = rule.get("mac_only_encrypted")
        if mac_only is not None and not isinstance(mac_only, bool):
            raise self.fail(f"{where}.mac_only_encrypted", "must be true or false")
        chosen = [f for f in SELECTION_FIELDS if rule.get(f)]
        if len(chosen) > 1:
            raise self.fail(where, f"has more than one selection rule ({', '.join(chosen)}); "
                                   "sops allows one")
        todo = [(f"{where}.key_groups", rule.get("key_groups"))]
        while todo:  # key groups nest through ``merge``
            at, groups = todo.pop()
            for n, group in enumerate(self.listing(at, groups)):
                here = f"{at}[{n}]"
                group = self.mapping(here, group)
                for field in _GROUP_LISTS:
                    self.scalars(f"{here}.{field}", group.get(field))
                for field in _GROUP_MAP_LISTS:
                    for k, entry in enumerate(self.listing(f"{here}.{field}", group.get(field))):
                        self.key_entry(f"{here}.{field}[{k}]", entry)
                todo.append((f"{here}.merge", group.get("merge")))

    def destination(self, where: str, rule: Any) -> None:
        """A ``destination_rules`` entry, as go-yaml reads sops's ``destinationRule``."""
        rule = self.mapping(where, rule)
        for field in _DESTINATION_STRINGS:
            self.scalar(f"{where}.{field}", rule.get(field))
        version = rule.get("vault_kv_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise self.fail(f"{where}.vault_kv_version", "must be an integer")
        omit = rule.get("omit_extensions")
        if omit is not None and not isinstance(omit, bool):
            raise self.fail(f"{where}.omit_extensions", "must be true or false")
        self.rule(f"{where}.recreation_rule", rule.get("recreation_rule"))

    def key_entry(self, where: str, entry: Any) -> None:
        if not isinstance(entry, dict):
            self.scalar(where, entry)  # a bare ARN, as secretops has always read it
            return
        for field in _KMS_STRINGS:
            self.scalar(f"{where}.{field}", entry.get(field))
        context = self.mapping(f"{where}.context", entry.get("context"))
        for key, value in context.items():
            self.scalar(f"{where}.context", key)
            self.scalar(f"{where}.context.{key}", value)

    def whole(self, data: dict[Any, Any]) -> None:
        for n, rule in enumerate(self.listing("creation_rules", data.get("creation_rules"))):
            self.rule(f"creation_rules[{n}]", rule)
        for n, rule in enumerate(self.listing("destination_rules",
                                              data.get("destination_rules"))):
            self.destination(f"destination_rules[{n}]", rule)
        stores = self.mapping("stores", data.get("stores"))
        for name in _STORES:
            section = self.mapping(f"stores.{name}", stores.get(name))
            # any integer, as sops reads it: a negative one is refused where output of that
            # format is written (exit 4), as sops refuses it (JSON takes -1: a tab)
            self.integer(f"stores.{name}.indent", section.get("indent"), minimum=None)
        own = self.mapping("secretops", data.get("secretops"))
        if not isinstance(own.get("keep_layout", False), bool):
            raise self.fail("secretops.keep_layout", "must be true or false")
        check = self.mapping("secretops.check", own.get("check"))
        allow = check.get("allow")
        if allow is not None and not (isinstance(allow, list)
                                      and all(isinstance(g, str) and g for g in allow)):
            raise self.fail("secretops.check.allow", "must be a list of globs")


def check_shape(data: dict[Any, Any], file: str) -> None:
    """Raise :class:`ConfigError` (exit 5) at the first field of the wrong kind."""
    _Check(file).whole(data)
