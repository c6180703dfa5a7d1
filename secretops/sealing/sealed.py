"""Whole SealedSecrets: seal a Secret manifest, merge values in, unseal, re-seal, verify.

All functions take and return plain manifest dicts; reading and writing files is the caller's.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing.crypto import Random, Recipients, seal_value, unseal_value
from secretops.sealing.format import (
    Scope,
    SealedParts,
    parse_sealed,
    sealed_manifest,
    secret_manifest,
    secret_values,
    template_data,
    template_of,
)
from secretops.sealing.keyring import IdentitySet


def _path(key: str) -> str:
    return f'["spec"]["encryptedData"]["{key}"]'


class SealedSecretError(SecretOpsError):
    """Several values failed; ``errors`` holds each key's error. The code is the first's."""

    def __init__(self, errors: list[tuple[str, SecretOpsError]]) -> None:
        self.errors = errors
        first = errors[0][1]
        groups: dict[str, list[str]] = {}  # the same failure for several keys is said once
        for k, e in errors:
            groups.setdefault(e.message.replace(f', key "{k}"', ""), []).append(k)
        detail = "; ".join(
            ", ".join(f'"{k}"' for k in keys) + f": {msg}" for msg, keys in groups.items())
        super().__init__(f"{len(errors)} values could not be unsealed: keys {detail}",
                         code=first.code, hints=first.hints)


def _recipients(recipients: Recipients | Sequence[str]) -> Recipients:
    return recipients if isinstance(recipients, Recipients) else Recipients(recipients)


def seal_all(values: Mapping[str, bytes], recips: Recipients, scope: Scope, namespace: str,
              name: str, rand: Random) -> dict[str, str]:
    out = {}
    for key in sorted(values):
        try:
            out[key] = seal_value(values[key], recips, scope, namespace, name, key, rand=rand)
        except SecretOpsError as e:
            e.path = e.path or _path(key)
            raise
    return out


def seal_secret(secret: Mapping[str, Any], recipients: Recipients | Sequence[str],
                scope: Scope | str | None = None, *, name: str | None = None,
                namespace: str | None = None, rand: Random = os.urandom) -> dict[str, Any]:
    """A SealedSecret for a Secret manifest: every value sealed, labels/annotations/type kept.

    ``name``/``namespace`` fill in (or must agree with) the manifest's own.
    """
    values = secret_values(secret)
    if not values:
        raise SecretOpsError("the Secret has no data or stringData to seal",
                             code=ExitCode.INVALID_INPUT)
    meta = secret.get("metadata") or {}
    nm = _agree("name", meta.get("name"), name)
    ns = _agree("namespace", meta.get("namespace"), namespace)
    if not nm:
        raise SecretOpsError("the Secret has no metadata.name", code=ExitCode.INVALID_INPUT,
                             hints=("give --name",))
    sc = Scope(scope) if scope else Scope.STRICT
    recips = _recipients(recipients)
    encrypted = seal_all(values, recips, sc, ns, nm, rand)
    parts = SealedParts(nm, ns, sc, encrypted, template_of(secret), list(recips.names))
    return sealed_manifest(parts)


def _agree(what: str, own: Any, given: str | None) -> str:
    if given and own and own != given:
        raise SecretOpsError(f"the Secret's {what} is {own!r}, not {given!r}",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    return str(given or own or "")


def merge_into(sealed: Mapping[str, Any], values: Mapping[str, bytes],
               recipients: Recipients | Sequence[str], *,
               labels: Mapping[str, str] | None = None,
               annotations: Mapping[str, str] | None = None,
               templates: Mapping[str, str] | None = None,
               rand: Random = os.urandom) -> dict[str, Any]:
    """Add or replace values in a SealedSecret with public keys only.

    Values not named keep their exact ``encryptedData`` strings; the new ones are sealed for
    the SealedSecret's own scope, namespace and name. Labels, annotations and template data
    given are merged into ``spec.template`` (as kubeseal --merge-into does).
    """
    parts = parse_sealed(sealed)
    recips = _recipients(recipients)
    encrypted = dict(parts.encrypted)
    encrypted.update(seal_all(values, recips, parts.scope, parts.namespace, parts.name, rand))
    template = copy.deepcopy(parts.template)
    if labels or annotations:
        tmeta = template.setdefault("metadata", {})
        for field, extra in (("labels", labels), ("annotations", annotations)):
            if extra:
                tmeta.setdefault(field, {}).update(extra)
    if templates:
        template.setdefault("data", {}).update(templates)
    names = list(dict.fromkeys([*parts.recipients, *recips.names]))
    out = copy.deepcopy(dict(sealed))
    new = sealed_manifest(SealedParts(parts.name, parts.namespace, parts.scope, encrypted,
                                      template, names))
    out["spec"] = {**out.get("spec", {}), **new["spec"]}
    out["spec"]["encryptedData"] = new["spec"]["encryptedData"]
    return out


def unseal_values(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any], *,
                  namespace: str | None = None) -> tuple[SealedParts, dict[str, bytes]]:
    """Every sealed value in plaintext (no templates). Each failing key is reported."""
    parts = parse_sealed(sealed, namespace)
    values: dict[str, bytes] = {}
    errors: list[tuple[str, SecretOpsError]] = []
    for key, text in parts.encrypted.items():
        try:
            values[key] = unseal_value(text, identities, parts.scope, parts.namespace,
                                       parts.name, key)
        except SecretOpsError as e:
            e.path = e.path or _path(key)
            errors.append((key, e))
    if len(errors) == 1:
        raise errors[0][1]
    if errors:
        raise SealedSecretError(errors)
    return parts, values


def unseal_sealed(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any], *,
                  namespace: str | None = None, owner_uid: str | None = None) -> dict[str, Any]:
    """The Secret manifest a SealedSecret stands for, templates rendered in the sandbox."""
    from secretops.sealing.template import render_all

    parts, values = unseal_values(sealed, identities, namespace=namespace)
    data = dict(values)
    data.update(render_all(template_data(parts.template), values))
    return secret_manifest(parts, data, owner_uid)


def reseal_sealed(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any],
                  recipients: Recipients | Sequence[str], *, namespace: str | None = None,
                  rand: Random = os.urandom) -> dict[str, Any]:
    """The same SealedSecret sealed again, every value with a fresh data key, for
    ``recipients`` only (the old recipients can no longer open the new values)."""
    parts, values = unseal_values(sealed, identities, namespace=namespace)
    recips = _recipients(recipients)
    encrypted = seal_all(values, recips, parts.scope, parts.namespace, parts.name, rand)
    out = copy.deepcopy(dict(sealed))
    new = sealed_manifest(SealedParts(parts.name, parts.namespace, parts.scope, encrypted,
                                      parts.template, list(recips.names)))
    out["spec"] = {**out.get("spec", {}), **new["spec"]}
    return out


def verify_sealed(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any], *,
                  namespace: str | None = None, render: bool = True) -> int:
    """How many values open; raises like :func:`unseal_sealed`.

    ``render`` renders the templates with the values too. Whoever asks without holding the
    key (the controller's ``/v1/verify``) must get ``render=False``: templates are not sealed,
    so a template of the asker's choosing that fails or not depending on a value would read
    the value out one guess at a time. Then the templates are only parsed.
    """
    from secretops.sealing.template import check_syntax, render_all

    parts, values = unseal_values(sealed, identities, namespace=namespace)
    if render:
        render_all(template_data(parts.template), values)
    else:
        check_syntax(template_data(parts.template))
    return len(values)
