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
from dataclasses import dataclass
from typing import Any

from secretops.esogo import Untranslatable, convert_template

GROUP = "secretops.dev/v1alpha1"
ESO_VERSIONS = ("external-secrets.io/v1", "external-secrets.io/v1beta1")
KINDS = ("ExternalSecret", "SecretStore", "ClusterSecretStore")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$|^0$")
_GO_ZERO = re.compile(r"^0+(\.0+)?(ns|us|µs|ms|s|m|h)?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DROP_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}

__all__ = ["GROUP", "Issue", "Untranslatable", "convert", "convert_all", "convert_template"]


@dataclass(frozen=True)
class Issue:
    """One thing not translated: which manifest, which field (a dotted path), and why.
    ``refused``: the object was not written (else a note about an object that was)."""

    manifest: str  # e.g. "ExternalSecret web/db"
    path: str  # e.g. "spec.dataFrom[0].rewrite"
    message: str
    refused: bool = True

    def __str__(self) -> str:
        return f"{self.manifest}: {self.path}: {self.message}"


@dataclass(frozen=True)
class _Store:
    cluster: bool
    namespace: str | None


class _Skip(Exception):
    """The whole object cannot be translated; the issue was already recorded."""


class _Ctx:
    def __init__(self, manifest: str) -> None:
        self.manifest = manifest
        self.issues: list[Issue] = []

    @property
    def refused(self) -> bool:
        return any(i.refused for i in self.issues)

    def warn(self, path: str, message: str) -> None:
        """A refusal: the object is not written (the other issues are still collected)."""
        self.issues.append(Issue(self.manifest, path, message))

    def note(self, path: str, message: str) -> None:
        self.issues.append(Issue(self.manifest, path, message, refused=False))

    def skip(self, path: str, message: str) -> _Skip:
        self.warn(path, message)
        return _Skip()

    def fields(self, obj: Any, path: str, known: Iterable[str],
               why: dict[str, str] | None = None,
               harmless: Iterable[str] = ()) -> dict[str, Any]:
        """``obj`` as a mapping; every key not in ``known`` refuses the object (with ``why``
        if given), but those in ``harmless`` are only noted. Not a mapping: refused."""
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            self.warn(path, f"not translated: a mapping was expected, not {_kind(obj)}")
            return {}
        known, harmless = set(known), set(harmless)
        for key in obj:
            if key in known:
                continue
            reason = (why or {}).get(str(key), "has no counterpart in secretops")
            (self.note if key in harmless else self.warn)(f"{path}.{key}",
                                                           f"not translated: {reason}")
        return obj

    def items(self, obj: Any, path: str) -> list[Any]:
        """``obj`` as a list (None: empty); anything else refuses the object."""
        if obj is None:
            return []
        if not isinstance(obj, list):
            self.warn(path, f"not translated: a list was expected, not {_kind(obj)}")
            return []
        return obj

    def strings(self, obj: Any, path: str) -> dict[str, str]:
        """A mapping of strings to strings (labels, annotations, template data)."""
        out: dict[str, str] = {}
        for k, v in self.fields(obj, path, obj if isinstance(obj, dict) else ()).items():
            if isinstance(k, str) and isinstance(v, str):
                out[k] = v
            else:
                self.warn(f"{path}.{k}", f"not translated: not a string ({_kind(v)})")
        return out


def _kind(obj: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(obj), "null" if obj is None
                                                   else type(obj).__name__)


# ---- objects ---------------------------------------------------------------------------------
def _metadata(meta: Any, ctx: _Ctx) -> dict[str, Any]:
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


def _duration(value: Any, path: str, ctx: _Ctx) -> str | None:
    text = str(value).strip()
    if _GO_ZERO.match(text):
        return "0"
    if _DURATION.match(text):
        return text
    ctx.warn(path, f"not translated: {text!r} is not a duration secretops reads (e.g. 1h, 15m, "
                   "30s)")
    return None


def _text(obj: Any, field: str, path: str, ctx: _Ctx) -> str | None:
    """A string field (None when absent); another type refuses the object."""
    value = obj.get(field)
    if value is None or isinstance(value, str):
        return value
    ctx.warn(f"{path}.{field}", f"not translated: not a string ({_kind(value)})")
    return None


def _choice(obj: Any, field: str, path: str, ctx: _Ctx, kept: tuple[str, ...],
            same: tuple[str, ...] = ()) -> str | None:
    """An enum field: one of ``kept`` (copied), ``same`` (ESO's default: left out), or refused."""
    value = obj.get(field)
    if value is None or value in same:
        return None
    if value in kept:
        return str(value)
    ctx.warn(f"{path}.{field}", f"not translated: {value!r} has no counterpart in secretops")
    return None


def _remote_ref(ref: Any, path: str, ctx: _Ctx) -> dict[str, Any]:
    ref = ctx.fields(ref, path, ("key", "property", "version", "decodingStrategy",
                                 "conversionStrategy", "metadataPolicy", "nullBytePolicy"))
    out: dict[str, Any] = {}
    for k in ("key", "property", "version"):
        value = _text(ref, k, path, ctx)
        if value:
            out[k] = value
    decoding = _choice(ref, "decodingStrategy", path, ctx, ("Base64", "Base64URL", "Auto"),
                       ("None",))
    if decoding:
        out["decodingStrategy"] = decoding
    # secretops uses keys as they are, reads values (not provider metadata or tags), and keeps
    # values with NUL bytes: ESO's defaults; anything else changes what is written
    _choice(ref, "conversionStrategy", path, ctx, (), ("Default",))
    _choice(ref, "metadataPolicy", path, ctx, (), ("None",))
    _choice(ref, "nullBytePolicy", path, ctx, (), ("Ignore",))
    return out


def _template(t: Any, path: str, ctx: _Ctx) -> dict[str, Any]:
    t = ctx.fields(t, path, ("engineVersion", "type", "metadata", "mergePolicy", "data"),
                   {"templateFrom": "templates from ConfigMaps/Secrets/literals are not "
                                    "supported; write them into template.data"})
    out: dict[str, Any] = {}
    if t.get("engineVersion") not in (None, "v2"):
        ctx.warn(f"{path}.engineVersion",
                 f"not translated: template engine {t['engineVersion']!r} (only v2 templates "
                 "are translated)")
    ttype = _text(t, "type", path, ctx)
    if ttype:
        out["type"] = ttype
    merge = _choice(t, "mergePolicy", path, ctx, ("Replace", "Merge"))
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


def _external_secret(spec: Any, ctx: _Ctx) -> dict[str, Any]:
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
        d = _duration(spec["refreshInterval"], "spec.refreshInterval", ctx)
        if d is not None:
            out["refreshInterval"] = d
    target = ctx.fields(spec.get("target"), "spec.target",
                        ("name", "creationPolicy", "deletionPolicy", "template", "immutable"))
    t_out: dict[str, Any] = {}
    name = _text(target, "name", "spec.target", ctx)
    if name:
        t_out["name"] = name
    for field, kept in (("creationPolicy", ("Owner", "Merge", "Orphan", "None")),
                        ("deletionPolicy", ("Retain", "Delete"))):
        value = _choice(target, field, "spec.target", ctx, kept)
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


def _data_from(spec: dict[str, Any], ctx: _Ctx) -> list[dict[str, Any]]:
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
            fpath = _text(find, "path", f"{p}.find", ctx)
            if fpath:
                f_out["path"] = fpath
            fname = ctx.fields(find.get("name"), f"{p}.find.name", ("regexp",))
            regexp = _text(fname, "regexp", f"{p}.find.name", ctx)
            if regexp:
                f_out["name"] = {"regexp": regexp}
            decoding = _choice(find, "decodingStrategy", f"{p}.find", ctx,
                               ("Base64", "Base64URL", "Auto"), ("None",))
            if decoding:
                f_out["decodingStrategy"] = decoding
            _choice(find, "conversionStrategy", f"{p}.find", ctx, (), ("Default",))
            if f_out.keys() - {"decodingStrategy"}:
                out.append({"find": f_out})
            else:
                ctx.warn(f"{p}.find", "not translated: nothing but tags to find by")
        elif "rewrite" not in item and "sourceRef" not in item:
            ctx.warn(p, "not translated: neither extract nor find")
    return out


def _secret_ref(sel: Any, path: str, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    """An ESO SecretKeySelector; a ref the store kind cannot express refuses the store."""
    sel = ctx.fields(sel, path, ("name", "key", "namespace"))
    name, key = _text(sel, "name", path, ctx), _text(sel, "key", path, ctx)
    if not name or not key:
        raise ctx.skip(path, "needs both name and key in secretops")
    out = {"name": name, "key": key}
    ns = _text(sel, "namespace", path, ctx)
    if ns:
        if store.cluster:
            out["namespace"] = ns
        elif ns != store.namespace:
            raise ctx.skip(f"{path}.namespace", "a SecretStore may only name Secrets of its own "
                                                "namespace in secretops")
    return out


def _vault(v: Any, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    p = "spec.provider.vault"
    v = ctx.fields(v, p, ("server", "path", "version", "namespace", "caBundle", "auth"),
                   {"caProvider": "a CA from a ConfigMap/Secret; put the PEM in caBundle",
                    "tls": "client certificates are not supported"})
    server = _text(v, "server", p, ctx)
    if not server:
        raise ctx.skip(f"{p}.server", "missing")
    if v.get("version") not in (None, "v2"):
        raise ctx.skip(f"{p}.version", f"KV {v['version']!r} is not supported (only v2)")
    out: dict[str, Any] = {"server": server}
    path = _text(v, "path", p, ctx)
    if path:
        out["path"] = path.strip("/")
    else:
        ctx.warn(f"{p}.path", "not set: ESO then reads remote keys as <mount>/<path>, secretops "
                              "reads them inside the mount 'secret'; set path to the mount")
    out["version"] = "v2"
    for k in ("namespace", "caBundle"):
        value = _text(v, k, p, ctx)
        if value:
            out[k] = value
    a = f"{p}.auth"
    # a scalar auth (or any other shape) is refused here, never used as a mapping below
    auth = ctx.fields(v.get("auth"), a, ("tokenSecretRef", "appRole", "kubernetes"),
                      {m: "this Vault auth method is not supported (token, appRole, kubernetes "
                          "are)" for m in ("jwt", "ldap", "userPass", "cert", "iam", "gcp",
                                           "namespace")})
    if auth.get("tokenSecretRef"):
        return {**out, "auth": {"tokenSecretRef": _secret_ref(
            auth["tokenSecretRef"], f"{a}.tokenSecretRef", ctx, store)}}
    if auth.get("appRole"):
        ar = ctx.fields(auth["appRole"], f"{a}.appRole", ("path", "roleId", "secretRef"),
                        {"roleRef": "roleRef is not supported; give roleId"})
        role = _text(ar, "roleId", f"{a}.appRole", ctx)
        if not role:
            raise ctx.skip(f"{a}.appRole.roleId", "missing")
        app: dict[str, Any] = {"roleId": role,
                               "secretRef": _secret_ref(ar.get("secretRef"),
                                                        f"{a}.appRole.secretRef", ctx, store)}
        mount = _text(ar, "path", f"{a}.appRole", ctx)
        if mount:
            app["path"] = mount
        return {**out, "auth": {"appRole": app}}
    if auth.get("kubernetes"):
        return {**out, "auth": {"kubernetes": _vault_kubernetes(auth["kubernetes"], a, ctx,
                                                                store)}}
    raise ctx.skip(a, "no supported auth method (tokenSecretRef, appRole, kubernetes)")


def _vault_kubernetes(k8s: Any, a: str, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    p = f"{a}.kubernetes"
    k8s = ctx.fields(k8s, p, ("mountPath", "role", "serviceAccountRef", "secretRef"))
    role = _text(k8s, "role", p, ctx)
    if not role:
        raise ctx.skip(f"{p}.role", "missing")
    kube: dict[str, Any] = {"role": role}
    mount = _text(k8s, "mountPath", p, ctx)
    if mount:
        kube["mountPath"] = mount
    sa = ctx.fields(k8s.get("serviceAccountRef"), f"{p}.serviceAccountRef",
                    ("name", "audiences", "namespace"))
    sa_ns = _text(sa, "namespace", f"{p}.serviceAccountRef", ctx)
    if sa_ns and not store.cluster and sa_ns != store.namespace:
        raise ctx.skip(f"{p}.serviceAccountRef.namespace", "a service account of another "
                                                           "namespace")
    sa_name = _text(sa, "name", f"{p}.serviceAccountRef", ctx)
    if sa_name:
        kube["serviceAccountRef"] = {"name": sa_name}
        if sa_ns and store.cluster:
            kube["serviceAccountRef"]["namespace"] = sa_ns
        audiences = ctx.items(sa.get("audiences"), f"{p}.serviceAccountRef.audiences")
        if audiences:
            if not all(isinstance(x, str) for x in audiences):
                ctx.warn(f"{p}.serviceAccountRef.audiences", "not translated: not strings")
            kube["serviceAccountRef"]["audiences"] = [str(x) for x in audiences]
    elif k8s.get("secretRef") is not None:
        kube["secretRef"] = _secret_ref(k8s["secretRef"], f"{p}.secretRef", ctx, store)
    elif not store.cluster:
        ctx.note(p, "names no serviceAccountRef or secretRef: ESO logs in as its own service "
                    "account, secretops refuses that for a SecretStore; name the namespace's "
                    "service account")
    return kube


_AWS_SKIP = {"additionalRoles": "role chaining", "externalID": "an STS external id",
             "sessionTags": "STS session tags", "transitiveTagKeys": "STS transitive tags",
             "prefix": "a key prefix"}


def _aws(v: Any, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    p = "spec.provider.aws"
    v = ctx.fields(v, p, ("service", "region", "role", "auth", *_AWS_SKIP),
                   {"secretsManager": "Secrets Manager write options (PushSecret)"})
    for k, what in _AWS_SKIP.items():
        if v.get(k):
            raise ctx.skip(f"{p}.{k}", f"{what} is not supported, and reading without it would "
                                       "use other credentials or keys")
    if v.get("service") not in ("SecretsManager", "ParameterStore"):
        raise ctx.skip(f"{p}.service", f"{v.get('service')!r} is not supported")
    region = _text(v, "region", p, ctx)
    if not region:
        raise ctx.skip(f"{p}.region", "missing")
    out: dict[str, Any] = {"service": v["service"], "region": region}
    role = _text(v, "role", p, ctx)
    if role:
        out["role"] = role
    auth = ctx.fields(v.get("auth"), f"{p}.auth", ("secretRef", "jwt"))
    if auth.get("jwt") is not None:
        raise ctx.skip(f"{p}.auth.jwt", "a service account's web identity is not supported; "
                                        "omit auth to use the controller's own (IRSA)")
    if auth.get("secretRef") is not None:
        sr = ctx.fields(auth["secretRef"], f"{p}.auth.secretRef",
                        ("accessKeyIDSecretRef", "secretAccessKeySecretRef",
                         "sessionTokenSecretRef"))
        refs = {k: _secret_ref(sr.get(k), f"{p}.auth.secretRef.{k}", ctx, store)
                for k in ("accessKeyIDSecretRef", "secretAccessKeySecretRef")}
        if sr.get("sessionTokenSecretRef"):
            refs["sessionTokenSecretRef"] = _secret_ref(
                sr["sessionTokenSecretRef"], f"{p}.auth.secretRef.sessionTokenSecretRef", ctx,
                store)
        out["auth"] = {"secretRef": refs}
    return out


def _store(spec: Any, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    spec = ctx.fields(spec, "spec", ("provider", "refreshInterval", "conditions"),
                      {"controller": "secretops has one controller class: this store would be "
                                     "served by it whatever ESO controller it names",
                       "retrySettings": "the controller's --retry-base-delay/--retry-max-delay "
                                        "apply"}, harmless=("retrySettings",))
    provider = spec.get("provider") or {}
    if not isinstance(provider, dict) or len(provider) != 1:
        raise ctx.skip("spec.provider", "needs exactly one provider")
    (name, conf), = provider.items()
    if name == "vault":
        out: dict[str, Any] = {"provider": {"vault": _vault(conf, ctx, store)}}
    elif name == "aws":
        out = {"provider": {"aws": _aws(conf, ctx, store)}}
    else:
        raise ctx.skip(f"spec.provider.{name}", f"provider {name} is not supported by secretops "
                                                "(vault and aws are)")
    interval = spec.get("refreshInterval")
    if isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
        out["refreshInterval"] = f"{interval}s"
    elif interval not in (None, 0):
        d = _duration(interval, "spec.refreshInterval", ctx)
        if d not in (None, "0"):
            out["refreshInterval"] = d
    conditions = ctx.items(spec.get("conditions"), "spec.conditions")
    if conditions and not store.cluster:
        ctx.note("spec.conditions", "not translated: only a ClusterSecretStore has conditions "
                                    "(ESO ignores them here too)")
    elif conditions:
        kept = []
        for i, c in enumerate(conditions):
            c = ctx.fields(c, f"spec.conditions[{i}]",
                           ("namespaceSelector", "namespaces", "namespaceRegexes"))
            kept.append({k: c[k] for k in ("namespaceSelector", "namespaces",
                                           "namespaceRegexes") if c.get(k)})
        out["conditions"] = [c for c in kept if c]
        if len(out["conditions"]) < len(kept):
            # an empty condition would allow every namespace: refuse the store instead
            raise ctx.skip("spec.conditions", "a condition would be empty after translation "
                                              "(allowing every namespace)")
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
    ctx = _Ctx(describe(doc))
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
            spec = _store(doc.get("spec"), ctx, _Store(kind == "ClusterSecretStore",
                                                        meta.get("namespace")))
    except _Skip:
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
