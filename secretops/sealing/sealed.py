"""Whole SealedSecrets: seal a Secret manifest, merge values in, unseal, re-seal, verify.

All functions take and return plain manifest dicts; reading and writing files is the caller's.

Every value sealed here is bound to the SealedSecret's template (format version 2, see
``docs/crypto.md``): unsealing refuses, before any cryptography and without rendering, a
template that is not the one the values were sealed with, and a template that renders values
beside values sealed before templates were bound (version 1). Only whoever can open the values
(:func:`reseal_sealed` with ``bind_template``) or holds their plaintext (:func:`seal_secret`)
binds a template; :func:`merge_into` binds new values to the template the others are bound to.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing.crypto import Random, Recipients, open_value, seal_bound
from secretops.sealing.format import (
    SCOPE_ANNOTATIONS,
    TEMPLATE_PATH,
    Binding,
    Scope,
    ScopeMismatchError,
    SealedParts,
    SealedValue,
    TemplateNotBoundError,
    decode,
    parse_sealed,
    sealed_manifest,
    secret_manifest,
    secret_values,
    template_data,
    template_digest,
    template_of,
)
from secretops.sealing.keyring import IdentitySet

if TYPE_CHECKING:  # the worker pool (subprocess, threads) is imported only to render
    from secretops.sealing.workers import WorkerPool


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
             name: str, template: bytes, rand: Random,
             unbound: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every value sealed at its place, bound to the ``template`` digest (the keys in
    ``unbound`` stay version 1: only the controller's rotation of such values asks that)."""
    out = {}
    for key in sorted(values):
        try:
            binding = Binding.of(scope, namespace, name, key)
            out[key] = seal_bound(values[key], recips, binding,
                                  None if key in unbound else template, rand)
        except SecretOpsError as e:
            e.path = e.path or _path(key)
            raise
    return out


def annotated_scope(annotations: Mapping[str, Any] | None) -> Scope | None:
    """The scope kubeseal's annotations on a Secret ask for (None: they ask for none).

    As kubeseal reads them, only ``"true"`` counts; a value other than "true"/"false", or
    both annotations true, is refused rather than guessed.
    """
    found = []
    for name, scope in SCOPE_ANNOTATIONS.items():
        value = (annotations or {}).get(name)
        if value is None or value == "false":
            continue
        if value != "true":
            raise SecretOpsError(f'the annotation {name} is {value!r}: expected "true" or '
                                 f'"false"', code=ExitCode.INVALID_INPUT,
                                 path=f'["metadata"]["annotations"]["{name}"]')
        found.append(scope)
    if len(found) > 1:
        raise SecretOpsError("the Secret is annotated both namespace-wide and cluster-wide",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    return found[0] if found else None


def secret_scope(secret: Mapping[str, Any], scope: Scope | str | None) -> Scope:
    """The scope to seal a Secret with: ``scope`` (``--scope``) or the Secret's kubeseal
    annotation; both given and different is a conflict, refused."""
    meta = secret.get("metadata") or {}
    annotated = annotated_scope(meta.get("annotations") if isinstance(meta, dict) else None)
    given = Scope(scope) if scope else None
    if given and annotated and given is not annotated:
        raise SecretOpsError(
            f"--scope {given.value} conflicts with the Secret's annotation "
            f"sealedsecrets.bitnami.com/{annotated.value}", code=ExitCode.CONFLICTING_PARAMETERS,
            hints=("drop one of them: the annotation chooses the scope as kubeseal reads it",))
    return given or annotated or Scope.STRICT


def seal_secret(secret: Mapping[str, Any], recipients: Recipients | Sequence[str],
                scope: Scope | str | None = None, *, name: str | None = None,
                namespace: str | None = None, templates: Mapping[str, str] | None = None,
                rand: Random = os.urandom) -> dict[str, Any]:
    """A SealedSecret for a Secret manifest: every value sealed, labels/annotations/type kept.

    ``name``/``namespace`` fill in (or must agree with) the manifest's own. The scope is
    ``scope`` or the Secret's ``sealedsecrets.bitnami.com/…`` annotation (a conflict is
    refused); the values are bound to the template made from the Secret and ``templates``
    (``spec.template.data``).
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
    sc = secret_scope(secret, scope)
    recips = _recipients(recipients)
    template = template_of(secret)
    if templates:
        template["data"] = dict(templates)
    encrypted = seal_all(values, recips, sc, ns, nm, template_digest(template), rand)
    parts = SealedParts(nm, ns, sc, encrypted, template, list(recips.names))
    return sealed_manifest(parts)


def _agree(what: str, own: Any, given: str | None) -> str:
    if given and own and own != given:
        raise SecretOpsError(f"the Secret's {what} is {own!r}, not {given!r}",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    return str(given or own or "")


def _decode_all(parts: SealedParts) -> tuple[dict[str, SealedValue],
                                             dict[str, SecretOpsError]]:
    decoded: dict[str, SealedValue] = {}
    errors: dict[str, SecretOpsError] = {}
    for key, text in parts.encrypted.items():
        try:
            decoded[key] = decode(text)
        except SecretOpsError as e:
            e.path = e.path or _path(key)
            errors[key] = e
    return decoded, errors


def check_template(parts: SealedParts, decoded: Mapping[str, SealedValue]) -> None:
    """Refuse (:class:`TemplateNotBoundError`) a template that a bound value was not sealed
    with, or one that renders values beside unbound (version 1) values. Reads headers only."""
    digest = template_digest(parts.template)
    altered = [k for k, v in decoded.items() if v.template is not None and v.template != digest]
    if altered:
        raise TemplateNotBoundError.altered(altered)
    unbound = [k for k, v in decoded.items() if v.template is None]
    if unbound and template_data(parts.template):
        raise TemplateNotBoundError.unbound(unbound)


def missing_recipients(parts: SealedParts, recips: Recipients) -> None:
    """New values must open for everyone the SealedSecret lists (a break-glass key among
    them): refuse, naming each listed recipient that was not given. ``spec.recipients`` is not
    authenticated, so it is never used as a source of keys to seal for."""
    missing = [r for r in parts.recipients if r not in recips.names]
    if missing:
        raise SecretOpsError(
            f"spec.recipients lists {len(missing)} recipient(s) not given, for whom the new "
            f"values would not open: {', '.join(missing)}",
            code=ExitCode.NO_ENCRYPTION_KEY_FOUND, path='["spec"]["recipients"]',
            hints=("seal for them too (--recipient age1… or the SSH public key line), or "
                   "drop them with secretops reseal --identity if they should lose access",))


def merge_into(sealed: Mapping[str, Any], values: Mapping[str, bytes],
               recipients: Recipients | Sequence[str], *,
               labels: Mapping[str, str] | None = None,
               annotations: Mapping[str, str] | None = None,
               templates: Mapping[str, str] | None = None,
               rand: Random = os.urandom) -> dict[str, Any]:
    """Add or replace values in a SealedSecret with public keys only.

    Values not named keep their exact ``encryptedData`` strings; the new ones are sealed for
    the SealedSecret's own scope, namespace and name, for every recipient it lists (given in
    ``recipients``: a listed one missing is refused), and bound to its template, which must be
    the one its values are bound to. Labels, annotations and template data given are merged
    into ``spec.template`` (as kubeseal --merge-into does); template data changes the binding,
    so every value must then be given anew.
    """
    parts = parse_sealed(sealed)
    recips = _recipients(recipients)
    missing_recipients(parts, recips)
    decoded, errors = _decode_all(parts)
    if errors:
        raise next(iter(errors.values()))
    check_template(parts, decoded)
    template = copy.deepcopy(parts.template)
    if labels or annotations:
        tmeta = template.setdefault("metadata", {})
        for field, extra in (("labels", labels), ("annotations", annotations)):
            if extra:
                tmeta.setdefault(field, {}).update(extra)
    if templates:
        template.setdefault("data", {}).update(templates)
    digest = template_digest(template)
    kept = [k for k in parts.encrypted if k not in values]
    if kept and digest != template_digest(parts.template):
        raise TemplateNotBoundError(
            f"the new spec.template.data changes the template the values are bound to; keys "
            f"{', '.join(sorted(kept))} would no longer open",
            path=TEMPLATE_PATH, hints=("give every value anew, or change the template and "
                                        "re-bind it with secretops reseal --bind-template",))
    encrypted = dict(parts.encrypted)
    encrypted.update(seal_all(values, recips, parts.scope, parts.namespace, parts.name, digest,
                              rand))
    names = list(dict.fromkeys([*parts.recipients, *recips.names]))
    out = copy.deepcopy(dict(sealed))
    new = sealed_manifest(SealedParts(parts.name, parts.namespace, parts.scope, encrypted,
                                      template, names))
    out["spec"] = {**(out.get("spec") or {}), **new["spec"]}  # parse_sealed took null as {}
    out["spec"]["encryptedData"] = new["spec"]["encryptedData"]
    return out


def unseal_values(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any], *,
                  namespace: str | None = None, bind_template: bool = False
                  ) -> tuple[SealedParts, dict[str, bytes], frozenset[str]]:
    """Every sealed value in plaintext (no templates), and the keys of version-1 values.

    The template binding is checked first (:func:`check_template`); each failing key is
    reported. ``bind_template`` skips that check and opens each value under the template
    digest its own header names (still authenticated): only for re-binding by a key holder.
    """
    parts = parse_sealed(sealed, namespace)
    decoded, errors = _decode_all(parts)
    if not bind_template:
        check_template(parts, decoded)
    digest = template_digest(parts.template)
    values: dict[str, bytes] = {}
    for key, value in decoded.items():
        try:
            expected = Binding.of(parts.scope, parts.namespace, parts.name, key)
            if value.binding != expected:
                raise ScopeMismatchError(expected, value.binding)
            bound = value.template if bind_template or value.template is None else digest
            values[key] = open_value(value, identities, expected, bound)
        except SecretOpsError as e:
            e.path = e.path or _path(key)
            errors[key] = e
    failed = [(k, errors[k]) for k in parts.encrypted if k in errors]
    if len(failed) == 1:
        raise failed[0][1]
    if failed:
        raise SealedSecretError(failed)
    unbound = frozenset(k for k, v in decoded.items() if v.template is None)
    return parts, values, unbound


def unseal_sealed(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any], *,
                  namespace: str | None = None, owner_uid: str | None = None,
                  pool: WorkerPool | None = None) -> dict[str, Any]:
    """The Secret manifest a SealedSecret stands for, templates rendered in the sandbox (in a
    bounded worker of ``pool``, else of the process's default pool)."""
    from secretops.sealing.template import render_all

    parts, values, _ = unseal_values(sealed, identities, namespace=namespace)
    data = dict(values)
    data.update(render_all(template_data(parts.template), values, pool=pool))
    return secret_manifest(parts, data, owner_uid)


def reseal_sealed(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any],
                  recipients: Recipients | Sequence[str], *, namespace: str | None = None,
                  bind_template: bool = False, keep_unbound: bool = False,
                  rand: Random = os.urandom) -> dict[str, Any]:
    """The same SealedSecret sealed again, every value with a fresh data key, for
    ``recipients`` only (the old recipients can no longer open the new values).

    The template binding is checked as for unsealing, and every value comes out bound to the
    template. ``bind_template`` (a key holder who reviewed the template) accepts a template
    the values were not bound to. ``keep_unbound`` (the controller's rotation, which anyone who
    can reach it may ask for) leaves version-1 values unbound: rotation never binds.
    """
    parts, values, unbound = unseal_values(sealed, identities, namespace=namespace,
                                           bind_template=bind_template)
    recips = _recipients(recipients)
    encrypted = seal_all(values, recips, parts.scope, parts.namespace, parts.name,
                         template_digest(parts.template), rand,
                         unbound if keep_unbound else frozenset())
    out = copy.deepcopy(dict(sealed))
    new = sealed_manifest(SealedParts(parts.name, parts.namespace, parts.scope, encrypted,
                                      parts.template, list(recips.names)))
    out["spec"] = {**(out.get("spec") or {}), **new["spec"]}  # parse_sealed took null as {}
    return out


def verify_sealed(sealed: Mapping[str, Any], identities: IdentitySet | Sequence[Any], *,
                  namespace: str | None = None, render: bool = True,
                  pool: WorkerPool | None = None) -> int:
    """How many values open; raises like :func:`unseal_sealed` (the template binding too).

    ``render`` renders the templates with the values too. Whoever asks without holding the
    key (the controller's ``/v1/verify``) must get ``render=False``: a template that fails or
    not depending on a value would read the value out one guess at a time (the binding already
    keeps a template from being swapped in, but a refusal must not depend on values at all).
    Then the templates are only parsed.
    """
    from secretops.sealing.template import check_syntax, render_all

    parts, values, _ = unseal_values(sealed, identities, namespace=namespace)
    if render:
        render_all(template_data(parts.template), values, pool=pool)
    else:
        check_syntax(template_data(parts.template))
    return len(values)
