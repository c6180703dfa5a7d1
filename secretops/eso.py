"""External Secrets Operator manifests → secretops's (``secretops convert-eso``); pure, no I/O.

ESO's ``ExternalSecret``, ``SecretStore`` and ``ClusterSecretStore`` (``external-secrets.io/v1``
and ``v1beta1``) become the same kinds in ``secretops.dev/v1alpha1``, field by field. The rule
is a converter's: it may refuse, it never changes meaning. :func:`convert` returns one
:class:`Issue` per field, template or store it cannot translate faithfully (the manifest, the
field path, why); an object with a refused issue is **not** written.

* A field secretops lacks (``dataFrom[].rewrite``, ``remoteRef.metadataPolicy: Fetch``,
  ``target.templateFrom``, a store's ``controller`` …) refuses its object: left out, the keys,
  values or credentials of the Secret would silently differ.
* A store whose credentials or provider cannot be expressed (GCP, Azure, Vault JWT/LDAP auth,
  AWS ``additionalRoles`` …) is refused whole.
* Go templates (ESO template engine v2) are translated by :mod:`secretops.esogo`, which
  refuses what it cannot render exactly as ESO does.
* A few notes keep their object (``refused=False``): what is translated faithfully but will
  behave differently at run time for a reason of secretops's own (a SecretStore whose
  Kubernetes auth names no service account), or a field whose loss changes nothing written
  (a namespaced store's ``conditions``, which ESO ignores; ``retrySettings``).
* Objects of other API groups pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from secretops.esoctx import Ctx, Issue, Skip, Store, choice, duration, string_of
from secretops.esogo import Untranslatable, convert_template
from secretops.esostores import store_spec

GROUP = "secretops.dev/v1alpha1"
ESO_VERSIONS = ("external-secrets.io/v1", "external-secrets.io/v1beta1")
KINDS = ("ExternalSecret", "SecretStore", "ClusterSecretStore")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DROP_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}

__all__ = ["GROUP", "Issue", "Untranslatable", "convert", "convert_all", "convert_template"]


# ---- objects ---------------------------------------------------------------------------------
def _metadata(meta: Any, ctx: Ctx) -> dict[str, Any]:
    meta = meta if isinstance(meta, dict) else {}
    out = {k: meta[k] for k in ("name", "namespace") if isinstance(meta.get(k), str)}
    labels = ctx.strings(meta.get("labels"), "metadata.labels")
    if labels:
        out["labels"] = labels
    annotations = {k: v for k, v in ctx.strings(meta.get("annotations"),
                                                "metadata.annotations").items()
                   if k not in _DROP_ANNOTATIONS}
    if annotations:
        out["annotations"] = annotations
    return out


def _remote_ref(ref: Any, path: str, ctx: Ctx) -> dict[str, Any]:
    ref = ctx.fields(ref, path, ("key", "property", "version", "decodingStrategy",
                                 "conversionStrategy", "metadataPolicy", "nullBytePolicy"))
    out: dict[str, Any] = {}
    for k in ("key", "property", "version"):
        value = string_of(ref, k, path, ctx)
        if value:
            out[k] = value
    decoding = choice(ref, "decodingStrategy", path, ctx, ("Base64", "Base64URL", "Auto"),
                       ("None",))
    if decoding:
        out["decodingStrategy"] = decoding
    # secretops uses keys as they are, reads values (not provider metadata or tags), and keeps
    # values with NUL bytes: ESO's defaults; anything else changes what is written
    choice(ref, "conversionStrategy", path, ctx, (), ("Default",))
    choice(ref, "metadataPolicy", path, ctx, (), ("None",))
    choice(ref, "nullBytePolicy", path, ctx, (), ("Ignore",))
    return out


def _template(t: Any, path: str, ctx: Ctx) -> dict[str, Any]:
    t = ctx.fields(t, path, ("engineVersion", "type", "metadata", "mergePolicy", "data"),
                   {"templateFrom": "templates from ConfigMaps/Secrets/literals are not "
                                    "supported; write them into template.data"})
    out: dict[str, Any] = {}
    if t.get("engineVersion") not in (None, "v2"):
        ctx.warn(f"{path}.engineVersion",
                 f"not translated: template engine {t['engineVersion']!r} (only v2 templates "
                 "are translated)")
    ttype = string_of(t, "type", path, ctx)
    if ttype:
        out["type"] = ttype
    merge = choice(t, "mergePolicy", path, ctx, ("Replace", "Merge"))
    if merge:
        out["mergePolicy"] = merge
    meta = ctx.fields(t.get("metadata"), f"{path}.metadata", ("labels", "annotations"))
    m_out: dict[str, Any] = {}
    for part in ("labels", "annotations"):
        kept = ctx.strings(meta.get(part), f"{path}.metadata.{part}")
        for k, v in kept.items():
            if "{{" in v:
                ctx.warn(f"{path}.metadata.{part}.{k}",
                         "not translated: secretops copies labels and annotations, it does not "
                         "render them")
        if kept:
            m_out[part] = kept
    if m_out:
        out["metadata"] = m_out
    data: dict[str, str] = {}
    for key, text in ctx.strings(t.get("data"), f"{path}.data").items():
        try:
            data[key] = convert_template(text)
        except Untranslatable as e:
            ctx.warn(f"{path}.data.{key}", f"template not translated: {e}")
    if data:
        out["data"] = data
    return out


def _external_secret(spec: Any, ctx: Ctx) -> dict[str, Any]:
    spec = ctx.fields(spec, "spec", ("secretStoreRef", "refreshInterval", "refreshPolicy",
                                      "target", "data", "dataFrom"))
    ref = spec.get("secretStoreRef") or {}
    if not isinstance(ref, dict) or not ref.get("name") or not isinstance(ref["name"], str):
        raise ctx.skip("spec.secretStoreRef", "missing: secretops reads only through a store "
                                              "(generators are not supported)")
    ref = ctx.fields(ref, "spec.secretStoreRef", ("name", "kind"))
    kind = ref.get("kind") or "SecretStore"
    if kind not in ("SecretStore", "ClusterSecretStore"):
        raise ctx.skip("spec.secretStoreRef.kind", f"{kind!r} is not a store kind")
    out: dict[str, Any] = {"secretStoreRef": {"name": ref["name"], "kind": kind}}
    policy = spec.get("refreshPolicy")
    if policy in ("CreatedOnce", "OnChange"):
        out["refreshInterval"] = "0"  # read once per (re)registration: the nearest meaning
    elif policy not in (None, "Periodic"):
        ctx.warn("spec.refreshPolicy", f"not translated: {policy!r}")
    if "refreshInterval" in spec and "refreshInterval" not in out:
        d = duration(spec["refreshInterval"], "spec.refreshInterval", ctx)
        if d is not None:
            out["refreshInterval"] = d
    target = ctx.fields(spec.get("target"), "spec.target",
                        ("name", "creationPolicy", "deletionPolicy", "template", "immutable"))
    t_out: dict[str, Any] = {}
    name = string_of(target, "name", "spec.target", ctx)
    if name:
        t_out["name"] = name
    for field, kept in (("creationPolicy", ("Owner", "Merge", "Orphan", "None")),
                        ("deletionPolicy", ("Retain", "Delete"))):
        value = choice(target, field, "spec.target", ctx, kept)
        if value:
            t_out[field] = value
    if isinstance(target.get("immutable"), bool):
        t_out["immutable"] = target["immutable"]
    elif target.get("immutable") is not None:
        ctx.warn("spec.target.immutable", "not translated: not a boolean")
    if target.get("template") is not None:
        tpl = _template(target["template"], "spec.target.template", ctx)
        if tpl:
            t_out["template"] = tpl
    if t_out:
        out["target"] = t_out
    data = []
    for i, item in enumerate(ctx.items(spec.get("data"), "spec.data")):
        p = f"spec.data[{i}]"
        item = ctx.fields(item, p, ("secretKey", "remoteRef"),
                          {"sourceRef": "per-entry stores and generators are not supported"})
        if "sourceRef" in item:
            continue
        key = item.get("secretKey")
        if not isinstance(key, str) or not _SECRET_KEY.match(key):
            ctx.warn(f"{p}.secretKey", "not translated: needs a secretKey of [-._a-zA-Z0-9]")
            continue
        ref_out = _remote_ref(item.get("remoteRef"), f"{p}.remoteRef", ctx)
        if "key" not in ref_out:
            ctx.warn(f"{p}.remoteRef.key", "missing")
            continue
        data.append({"secretKey": key, "remoteRef": ref_out})
    if data:
        out["data"] = data
    data_from = _data_from(spec, ctx)
    if data_from:
        out["dataFrom"] = data_from
    return out


def _data_from(spec: dict[str, Any], ctx: Ctx) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(ctx.items(spec.get("dataFrom"), "spec.dataFrom")):
        p = f"spec.dataFrom[{i}]"
        # rewrite renames the Secret's keys (regexp, transform, merge): the controller has no
        # equivalent, and leaving it out would write the keys under other names
        item = ctx.fields(item, p, ("extract", "find"),
                          {"rewrite": "key rewriting (regexp/transform/merge) has no "
                                      "counterpart in secretops: the Secret's keys would have "
                                      "other names",
                           "sourceRef": "per-entry stores and generators are not supported"})
        if item.get("extract") is not None:
            ref_out = _remote_ref(item["extract"], f"{p}.extract", ctx)
            if "key" in ref_out:
                out.append({"extract": ref_out})
            else:
                ctx.warn(f"{p}.extract.key", "missing")
        elif item.get("find") is not None:
            find = ctx.fields(item["find"], f"{p}.find",
                              ("path", "name", "conversionStrategy", "decodingStrategy"),
                              {"tags": "finding by tags is not supported"})
            f_out: dict[str, Any] = {}
            fpath = string_of(find, "path", f"{p}.find", ctx)
            if fpath:
                f_out["path"] = fpath
            fname = ctx.fields(find.get("name"), f"{p}.find.name", ("regexp",))
            regexp = string_of(fname, "regexp", f"{p}.find.name", ctx)
            if regexp:
                f_out["name"] = {"regexp": regexp}
            decoding = choice(find, "decodingStrategy", f"{p}.find", ctx,
                               ("Base64", "Base64URL", "Auto"), ("None",))
            if decoding:
                f_out["decodingStrategy"] = decoding
            choice(find, "conversionStrategy", f"{p}.find", ctx, (), ("Default",))
            if f_out.keys() - {"decodingStrategy"}:
                out.append({"find": f_out})
            else:
                ctx.warn(f"{p}.find", "not translated: nothing but tags to find by")
        elif "rewrite" not in item and "sourceRef" not in item:
            ctx.warn(p, "not translated: neither extract nor find")
    return out


def describe(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name, ns = meta.get("name", "?"), meta.get("namespace")
    return f"{doc.get('kind', '?')} {f'{ns}/' if ns else ''}{name}"


def convert(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Issue]]:
    """One manifest: (the secretops object, or the input itself if not ESO's, or None when
    refused; the issues)."""
    api = str(doc.get("apiVersion", ""))
    kind = doc.get("kind")
    ctx = Ctx(describe(doc))
    if not api.startswith("external-secrets.io/") and not api.startswith(
            "generators.external-secrets.io/"):
        return doc, []
    if api not in ESO_VERSIONS or kind not in KINDS:
        ctx.warn("apiVersion" if kind in KINDS else "kind",
                 f"{api} {kind} is not translated (ExternalSecret, SecretStore and "
                 f"ClusterSecretStore of {' and '.join(ESO_VERSIONS)} are)")
        return None, ctx.issues
    meta = _metadata(doc.get("metadata"), ctx)
    try:
        if kind == "ExternalSecret":
            spec = _external_secret(doc.get("spec"), ctx)
        else:
            spec = store_spec(doc.get("spec"), ctx, Store(kind == "ClusterSecretStore",
                                                        meta.get("namespace")))
    except Skip:
        return None, ctx.issues
    if ctx.refused:
        return None, ctx.issues
    return {"apiVersion": GROUP, "kind": kind, "metadata": meta, "spec": spec}, ctx.issues


def convert_all(docs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Issue]]:
    """Every manifest in order; refused ones are left out (and named in the issues)."""
    out: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for doc in docs:
        obj, found = convert(doc)
        issues.extend(found)
        if obj is not None:
            out.append(obj)
    return out, issues
