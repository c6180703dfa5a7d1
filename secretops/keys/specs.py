"""Master keys as users name them: flags, environment variables and ``.sops.yaml`` rules.

A :class:`KeySpec` is a master key before it wraps anything: its kind (the metadata's key:
``age``, ``kms``, ``hc_vault``, ``pgp``) and the fields that kind's metadata entry carries,
parsed the way sops parses them:

* ``--age`` / ``SOPS_AGE_RECIPIENTS`` / rule ``age``: comma-separated recipients;
* ``--kms`` / ``SOPS_KMS_ARN`` / rule ``kms``: comma-separated ARNs, each optionally
  ``ARN+ROLE_ARN``; ``--encryption-context k:v,k2:v2`` and ``--aws-profile`` apply to all of
  them; inside ``key_groups`` a KMS key is a map ``{arn, role, context, aws_profile}``;
* ``--hc-vault-transit`` / ``SOPS_VAULT_URIS`` / rule ``hc_vault_transit_uri`` (``hc_vault``
  inside groups): ``https://host:port/v1/<engine path>/keys/<key name>``;
* ``--pgp`` / ``SOPS_PGP_FP`` / rule ``pgp``: comma-separated fingerprints.

No I/O here; the key-source modules turn specs into recipients.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from secretops.errors import ExitCode, SecretOpsError

KINDS = ("age", "kms", "hc_vault", "pgp")
UNSUPPORTED = ("gcp_kms", "azure_keyvault", "azure_kv", "hckms")


class KeySpec(NamedTuple):
    kind: str
    fields: dict[str, Any]


def split_list(value: str | list[Any] | None) -> list[str]:
    """A comma-separated string or a list (``.sops.yaml`` allows both)."""
    if not value:
        return []
    items = value if isinstance(value, list) else str(value).replace("\n", ",").split(",")
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def parse_context(text: str | None) -> dict[str, str]:
    """``--encryption-context k1:v1,k2:v2``, read exactly as sops reads it: every pair is one
    ``key:value`` (no empty pair, no second ``:``), nothing trimmed; exit 6 when malformed."""
    out: dict[str, str] = {}
    if not text:
        return out
    for pair in text.split(","):
        parts = pair.split(":")
        if len(parts) != 2:
            raise SecretOpsError(
                "invalid KMS encryption context: expected key:value pairs separated by commas",
                code=ExitCode.INVALID_KMS_ENCRYPTION_CONTEXT,
            )
        out[parts[0]] = parts[1]
    return out


def kms_spec(arn: str, context: Mapping[str, Any] | None = None, aws_profile: str = "",
             role: str = "") -> KeySpec:
    arn = arn.strip()
    if "+" in arn and not role:
        arn, _, role = arn.partition("+")
    if not arn.startswith("arn:"):
        raise SecretOpsError(f"invalid AWS KMS key ARN {arn!r}", code=ExitCode.INVALID_KEY)
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    return KeySpec("kms", {"arn": arn, "role": role.strip(), "context": ctx,
                           "aws_profile": aws_profile or ""})


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user info replaced by ``***`` (for messages)."""
    parts = urlsplit(uri.strip())
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def vault_spec(uri: str) -> KeySpec:
    """``https://host:port/v1/<engine path>/keys/<key name>`` → the metadata's three fields."""
    parts = urlsplit(uri.strip())
    path = parts.path
    # sops accepts any API version (/v1/, /v2/ …) and a trailing slash
    version = re.match(r"/v[0-9]+/", path)
    if version:
        path = "/v1/" + path[version.end():]
    if (parts.scheme not in ("http", "https") or not parts.netloc
            or not path.startswith("/v1/") or "/keys/" not in path):
        raise SecretOpsError(
            f"invalid Vault transit URI {redact_uri(uri)!r}",
            code=ExitCode.INVALID_KEY,
            hints=("the form is https://vault.example.com:8200/v1/transit/keys/KEY_NAME",),
        )
    engine, _, key = path[len("/v1/"):].rstrip("/").rpartition("/keys/")
    if not engine or not key or "/" in key:
        raise SecretOpsError(f"invalid Vault transit URI {redact_uri(uri)!r}",
                             code=ExitCode.INVALID_KEY)
    return KeySpec("hc_vault", {"vault_address": f"{parts.scheme}://{parts.netloc}",
                                "engine_path": engine.strip("/"), "key_name": key})


def pgp_spec(fingerprint: str) -> KeySpec:
    """A fingerprint kept as typed (sops stores it so); a trailing ``!`` forces that subkey."""
    fp = fingerprint.replace(" ", "")
    hexpart = fp[:-1] if fp.endswith("!") else fp
    if not hexpart or not all(c in "0123456789ABCDEFabcdef" for c in hexpart):
        raise SecretOpsError(f"invalid PGP fingerprint {fingerprint!r}", code=ExitCode.INVALID_KEY)
    return KeySpec("pgp", {"fp": fp})


def from_flags(
    *,
    age: str | list[str] | None = None,
    kms: str | list[str] | None = None,
    encryption_context: str | Mapping[str, str] | None = None,
    aws_profile: str | None = None,
    hc_vault_transit: str | list[str] | None = None,
    pgp: str | list[str] | None = None,
) -> list[KeySpec]:
    """One group of keys from command-line style values."""
    ctx = (dict(encryption_context) if isinstance(encryption_context, Mapping)
           else parse_context(encryption_context))
    specs = [KeySpec("age", {"recipient": r}) for r in split_list(age)]
    specs += [kms_spec(a, ctx, aws_profile or "") for a in split_list(kms)]
    specs += [vault_spec(u) for u in split_list(hc_vault_transit)]
    specs += [pgp_spec(f) for f in split_list(pgp)]
    return specs


def from_env(env: Mapping[str, str]) -> list[KeySpec]:
    """The keys sops takes from the environment when no flag names one."""
    return from_flags(
        age=env.get("SOPS_AGE_RECIPIENTS"),
        kms=env.get("SOPS_KMS_ARN"),
        hc_vault_transit=env.get("SOPS_VAULT_URIS"),
        pgp=env.get("SOPS_PGP_FP"),
    )


def from_rule(rule: Mapping[str, Any], where: str) -> list[list[KeySpec]]:
    """The key groups of one ``.sops.yaml`` creation rule."""
    bad = [k for k in UNSUPPORTED if rule.get(k)]
    groups: list[list[KeySpec]] = []
    if rule.get("key_groups"):
        # top-level keys beside key_groups are ignored, as sops ignores them
        for n, group in enumerate(rule["key_groups"]):
            if not isinstance(group, Mapping):
                raise SecretOpsError(f"{where}.key_groups[{n}] is not a map",
                                     code=ExitCode.ERROR_READING_CONFIG)
            bad += [k for k in UNSUPPORTED if group.get(k)]
            specs = [KeySpec("age", {"recipient": r}) for r in split_list(group.get("age"))]
            for entry in group.get("kms") or []:
                if isinstance(entry, Mapping):
                    specs.append(kms_spec(str(entry.get("arn", "")), entry.get("context"),
                                          str(entry.get("aws_profile") or ""),
                                          str(entry.get("role") or "")))
                else:
                    specs.append(kms_spec(str(entry)))
            specs += [vault_spec(u) for u in split_list(group.get("hc_vault"))]
            specs += [pgp_spec(f) for f in split_list(group.get("pgp"))]
            if not specs and not any(group.get(k) for k in UNSUPPORTED):
                # an empty group could never be opened: with a threshold the file would be
                # lost, without one the policy would shrink silently (sops refuses it too)
                raise SecretOpsError(f"{where}.key_groups[{n}] has no keys (empty key group)",
                                     code=ExitCode.ERROR_READING_CONFIG)
            groups.append(specs)
    else:
        specs = from_flags(age=rule.get("age"), kms=rule.get("kms"),
                           aws_profile=rule.get("aws_profile"),
                           hc_vault_transit=rule.get("hc_vault_transit_uri"),
                           pgp=rule.get("pgp"))
        if specs:
            groups.append(specs)
    if bad:
        raise SecretOpsError(
            f"{where} uses key sources secretops does not support: {', '.join(sorted(set(bad)))}",
            code=ExitCode.ERROR_READING_CONFIG,
        )
    return groups
