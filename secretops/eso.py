"""External Secrets Operator manifests → secretops's (``secretops convert-eso``); pure, no I/O.

ESO's ``ExternalSecret``, ``SecretStore`` and ``ClusterSecretStore`` (``external-secrets.io/v1``
and ``v1beta1``) become the same kinds in ``secretops.dev/v1alpha1``, field by field. Whatever
has no counterpart is **named**, never silently dropped: :func:`convert` returns one
:class:`Issue` per untranslated field, template or store (the manifest, the field path, why).

* A field secretops lacks (``dataFrom[].rewrite``, ``remoteRef.metadataPolicy: Fetch``,
  ``target.templateFrom`` …) is left out of the output and named.
* A store whose credentials or provider cannot be expressed (GCP, Azure, Vault JWT/LDAP auth,
  AWS ``additionalRoles`` …) is **skipped whole** and named: a store that half-translated would
  read with other credentials than its owner meant.
* An ExternalSecret without a ``secretStoreRef`` (generators only) is skipped and named.
* Go templates (ESO template engine v2) are translated to the sandboxed jinja2 dialect of
  :mod:`secretops.sealing.template` by :func:`convert_template`; a template it cannot express
  is left out (its key named) and listed in the ``secretops.dev/untranslated`` annotation.
* Objects of other API groups pass through unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

GROUP = "secretops.dev/v1alpha1"
ESO_VERSIONS = ("external-secrets.io/v1", "external-secrets.io/v1beta1")
KINDS = ("ExternalSecret", "SecretStore", "ClusterSecretStore")
UNTRANSLATED_ANNOTATION = "secretops.dev/untranslated"
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$|^0$")
_GO_ZERO = re.compile(r"^0+(\.0+)?(ns|us|µs|ms|s|m|h)?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DROP_META = {"name", "namespace", "labels", "annotations"}
_DROP_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}


@dataclass(frozen=True)
class Issue:
    """One thing not translated: which manifest, which field (a dotted path), and why."""

    manifest: str  # e.g. "ExternalSecret web/db"
    path: str  # e.g. "spec.dataFrom[0].rewrite"
    message: str

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

    def warn(self, path: str, message: str) -> None:
        self.issues.append(Issue(self.manifest, path, message))

    def skip(self, path: str, message: str) -> _Skip:
        self.warn(path, message)
        return _Skip()

    def fields(self, obj: Any, path: str, known: Iterable[str],
               why: dict[str, str] | None = None) -> dict[str, Any]:
        """``obj`` as a mapping; every key not in ``known`` is named (with ``why`` if given)."""
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            self.warn(path, "not a mapping; left out")
            return {}
        known = set(known)
        for key in obj:
            if key not in known:
                reason = (why or {}).get(key, "has no counterpart in secretops")
                self.warn(f"{path}.{key}", f"not translated: {reason}")
        return obj


# ---- Go templates ----------------------------------------------------------------------------
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s+|"(?:[^"\\\n]|\\.)*"|`[^`]*`|\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_]'
                    r'[A-Za-z0-9_]*)*|\.|\||\(|\)|\$[A-Za-z0-9_]*|:?=|-?[0-9][0-9.]*'
                    r"|[A-Za-z_][A-Za-z0-9_]*|'(?:[^'\\]|\\.)+'|.", re.S)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue", "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len"}
# sprig/ESO function → (jinja2 filter, number of extra arguments, jinja2 extra arguments)
_FILTERS: dict[str, tuple[str, int, Callable[[list[str]], str]]] = {
    "b64enc": ("b64enc", 0, lambda a: ""),
    "b64dec": ("b64dec", 0, lambda a: ""),
    "sha256sum": ("sha256sum", 0, lambda a: ""),
    "quote": ("quote", 0, lambda a: ""),
    "upper": ("upper", 0, lambda a: ""),
    "lower": ("lower", 0, lambda a: ""),
    "trim": ("trim", 0, lambda a: ""),
    "title": ("title", 0, lambda a: ""),
    "toString": ("string", 0, lambda a: ""),
    "replace": ("replace", 2, lambda a: f"({a[0]}, {a[1]})"),
    "default": ("default", 1, lambda a: f"({a[0]}, true)"),
}


class _Untranslatable(Exception):
    pass


def _go_string(tok: str) -> str:
    """A Go string literal as a jinja2 (JSON-style) one."""
    if tok.startswith("`"):
        return json.dumps(tok[1:-1], ensure_ascii=False)
    try:
        return json.dumps(json.loads(tok), ensure_ascii=False)
    except ValueError:
        raise _Untranslatable(f"the string {tok} uses escapes jinja2 lacks") from None


def _operand(tok: str) -> str:
    if tok.startswith(("\"", "`")):
        return _go_string(tok)
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", tok):
        return tok
    if re.fullmatch(r"\.[A-Za-z_][A-Za-z0-9_]*", tok):
        return f'values["{tok[1:]}"]'
    if tok.startswith(".") and tok != ".":
        raise _Untranslatable(f"nested field {tok} (values are flat strings)")
    if tok.startswith("$"):
        raise _Untranslatable("template variables ($)")
    if tok == ".":
        raise _Untranslatable("the whole context (.) as a value")
    raise _Untranslatable(f"{tok!r}")


def _command(words: list[str], piped: str | None) -> str:
    if not words:
        raise _Untranslatable("an empty pipeline stage")
    head, args = words[0], words[1:]
    if piped is None and head == "index":
        if len(args) == 2 and args[0] == "." and args[1].startswith(("\"", "`")):
            return f"values[{_go_string(args[1])}]"
        raise _Untranslatable("index other than index . \"key\"")
    if piped is None and head == "printf":
        return _printf(args)
    if head in _FILTERS:
        name, n, render = _FILTERS[head]
        ops = [_operand(a) for a in args]
        if piped is None:
            if len(ops) != n + 1:
                raise _Untranslatable(f"{head} with {len(ops)} arguments")
            piped, ops = ops[-1], ops[:-1]
        elif len(ops) != n:
            raise _Untranslatable(f"{head} with {len(ops) + 1} arguments")
        return f"{piped} | {name}{render(ops)}"
    if piped is None and not args:
        return _operand(head)
    if head in _KEYWORDS:
        raise _Untranslatable(f"the control structure or operator {head!r}")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
        raise _Untranslatable(f"the function {head!r} (no counterpart in the sandbox)")
    raise _Untranslatable(f"{head!r}")


def _printf(args: list[str]) -> str:
    if not args or not args[0].startswith(("\"", "`")):
        raise _Untranslatable("printf without a literal format")
    fmt = json.loads(_go_string(args[0]))
    parts = re.split(r"(%[sv%])", fmt)
    if re.search(r"%(?![sv%])", "".join(p for p in parts if p not in ("%s", "%v", "%%"))):
        raise _Untranslatable("printf verbs other than %s and %v")
    ops = iter(_operand(a) for a in args[1:])
    out: list[str] = []
    try:
        for p in parts:
            if p in ("%s", "%v"):
                out.append(f"({next(ops)} | string)")
            elif p:
                out.append(json.dumps(p.replace("%%", "%"), ensure_ascii=False))
    except StopIteration:
        raise _Untranslatable("printf with fewer arguments than verbs") from None
    if next(ops, None) is not None:
        raise _Untranslatable("printf with more arguments than verbs")
    return " ~ ".join(out) or '""'


def _pipeline(body: str) -> str:
    tokens = [t for t in _TOKEN.findall(body) if not t.isspace()]
    if any(t in ("(", ")") for t in tokens):
        raise _Untranslatable("parenthesised expressions")
    if any(t in (":=", "=") for t in tokens):
        raise _Untranslatable("template variables ($x := …)")
    if tokens and tokens[0] in _KEYWORDS and tokens[0] not in _FILTERS:
        raise _Untranslatable(f"the control structure or operator {tokens[0]!r}")
    stages: list[list[str]] = [[]]
    for t in tokens:
        if t == "|":
            stages.append([])
        else:
            stages[-1].append(t)
    expr: str | None = None
    for words in stages:
        expr = _command(words, expr)
    assert expr is not None
    return expr


def convert_template(text: str) -> str:
    """An ESO (Go ``text/template`` + sprig) template as a secretops (jinja2 sandbox) one.

    Raises :class:`ValueError` naming the construct that has no counterpart (``range``, ``if``,
    variables, ``toJson``, ``fromJson``, PKCS#12 helpers …).
    """
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(text):
        out.append(_literal(text[pos:m.start()]))
        pos = m.end()
        body = m.group(2)
        if body.strip().startswith("/*"):
            if not body.strip().endswith("*/"):
                raise ValueError("an unterminated comment")
            out.append("{#" + body.strip()[2:-2].replace("#}", "# }") + "#}")
            continue
        try:
            expr = _pipeline(body)
        except _Untranslatable as e:
            raise ValueError(f"{e} in {{{{{body}}}}}") from None
        out.append("{{" + ("- " if m.group(1) else " ") + expr + (" -" if m.group(3) else " ")
                   + "}}")
    out.append(_literal(text[pos:]))
    result = "".join(out)
    _check(result)
    return result


def _literal(text: str) -> str:
    if "{{" in text:
        raise ValueError("an unterminated action ({{ without }})")
    return text.replace("{%", '{{ "{%" }}').replace("{#", '{{ "{#" }}')


def _check(result: str) -> None:
    """The translation must survive the engine's own Go conversion unchanged, and parse."""
    from secretops.sealing.template import _env, convert_go

    if convert_go(result) != result:
        raise ValueError("a string literal looks like a Go field reference (.name)")
    from jinja2 import TemplateSyntaxError

    try:
        _env().parse(result)
    except TemplateSyntaxError as e:
        raise ValueError(f"the translation does not parse: {e.message}") from None


# ---- objects ---------------------------------------------------------------------------------
def _metadata(meta: Any, ctx: _Ctx) -> dict[str, Any]:
    meta = meta if isinstance(meta, dict) else {}
    out = {k: meta[k] for k in ("name", "namespace") if k in meta}
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
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
                   "30s); the default 1h applies")
    return None


def _remote_ref(ref: Any, path: str, ctx: _Ctx) -> dict[str, Any]:
    ref = ctx.fields(ref, path, ("key", "property", "version", "decodingStrategy",
                                 "conversionStrategy", "metadataPolicy", "nullBytePolicy"))
    out = {k: str(ref[k]) for k in ("key", "property", "version") if ref.get(k) not in (None, "")}
    decoding = ref.get("decodingStrategy")
    if decoding not in (None, "None"):
        out["decodingStrategy"] = decoding
    if ref.get("conversionStrategy") not in (None, "Default"):
        ctx.warn(f"{path}.conversionStrategy",
                 f"not translated: {ref['conversionStrategy']} (secretops uses keys as they "
                 "are)")
    if ref.get("metadataPolicy") not in (None, "None"):
        ctx.warn(f"{path}.metadataPolicy",
                 "not translated: Fetch (secretops reads values, not provider metadata or tags)")
    if ref.get("nullBytePolicy") not in (None, "Ignore"):
        ctx.warn(f"{path}.nullBytePolicy", "not translated: Fail (values with NUL bytes are "
                                           "kept as they are)")
    return out


def _template(t: Any, path: str, ctx: _Ctx, untranslated: list[str]) -> dict[str, Any]:
    t = ctx.fields(t, path, ("engineVersion", "type", "metadata", "mergePolicy", "data"),
                   {"templateFrom": "templates from ConfigMaps/Secrets/literals are not "
                                    "supported; write them into template.data"})
    out: dict[str, Any] = {}
    if t.get("engineVersion") not in (None, "v2"):
        ctx.warn(f"{path}.engineVersion",
                 f"not translated: template engine {t['engineVersion']} (only v2 templates are "
                 "translated); the templates are left out")
        untranslated.append(f"{path}.data")
        t = {k: v for k, v in t.items() if k != "data"}
    if "templateFrom" in t:
        untranslated.append(f"{path}.templateFrom")
    if t.get("type"):
        out["type"] = t["type"]
    if t.get("mergePolicy") in ("Replace", "Merge"):
        out["mergePolicy"] = t["mergePolicy"]
    meta = ctx.fields(t.get("metadata"), f"{path}.metadata",
                      ("labels", "annotations", "finalizers"))
    m_out: dict[str, Any] = {}
    for part in ("labels", "annotations"):
        kept = {}
        for k, v in (meta.get(part) or {}).items():
            if "{{" in str(v):
                ctx.warn(f"{path}.metadata.{part}.{k}",
                         "not translated: secretops copies labels and annotations, it does not "
                         "render them")
                untranslated.append(f"{path}.metadata.{part}.{k}")
            else:
                kept[k] = str(v)
        if kept:
            m_out[part] = kept
    if m_out:
        out["metadata"] = m_out
    data: dict[str, str] = {}
    for key, text in (t.get("data") or {}).items():
        try:
            data[key] = convert_template(str(text))
        except ValueError as e:
            ctx.warn(f"{path}.data.{key}", f"template not translated, key left out: {e}")
            untranslated.append(f"{path}.data.{key}")
    if data:
        out["data"] = data
    return out


def _external_secret(spec: Any, ctx: _Ctx, untranslated: list[str]) -> dict[str, Any]:
    spec = ctx.fields(spec, "spec", ("secretStoreRef", "refreshInterval", "refreshPolicy",
                                      "target", "data", "dataFrom"))
    ref = spec.get("secretStoreRef") or {}
    if not isinstance(ref, dict) or not ref.get("name"):
        raise ctx.skip("spec.secretStoreRef", "missing: secretops reads only through a store "
                                              "(generators are not supported); skipped")
    kind = ref.get("kind") or "SecretStore"
    if kind not in ("SecretStore", "ClusterSecretStore"):
        raise ctx.skip("spec.secretStoreRef.kind", f"{kind} is not a store kind; skipped")
    out: dict[str, Any] = {"secretStoreRef": {"name": ref["name"], "kind": kind}}
    policy = spec.get("refreshPolicy")
    if policy in ("CreatedOnce", "OnChange"):
        out["refreshInterval"] = "0"  # read once per (re)registration: the nearest meaning
    elif policy not in (None, "Periodic"):
        ctx.warn("spec.refreshPolicy", f"not translated: {policy}")
    if "refreshInterval" in spec and "refreshInterval" not in out:
        d = _duration(spec["refreshInterval"], "spec.refreshInterval", ctx)
        if d is not None:
            out["refreshInterval"] = d
    target = ctx.fields(spec.get("target"), "spec.target",
                        ("name", "creationPolicy", "deletionPolicy", "template", "immutable"))
    t_out: dict[str, Any] = {}
    if target.get("name"):
        t_out["name"] = target["name"]
    if target.get("creationPolicy") in ("Owner", "Merge", "Orphan", "None"):
        t_out["creationPolicy"] = target["creationPolicy"]
    elif target.get("creationPolicy") is not None:
        ctx.warn("spec.target.creationPolicy", f"not translated: {target['creationPolicy']}")
    deletion = target.get("deletionPolicy")
    if deletion in ("Retain", "Delete"):
        t_out["deletionPolicy"] = deletion
    elif deletion is not None:
        ctx.warn("spec.target.deletionPolicy",
                 f"not translated: {deletion} (secretops has Retain and Delete; the default "
                 "Retain applies)")
    if isinstance(target.get("immutable"), bool):
        t_out["immutable"] = target["immutable"]
    if target.get("template") is not None:
        tpl = _template(target["template"], "spec.target.template", ctx, untranslated)
        if tpl:
            t_out["template"] = tpl
    if t_out:
        out["target"] = t_out
    data = []
    for i, item in enumerate(spec.get("data") or []):
        p = f"spec.data[{i}]"
        item = ctx.fields(item, p, ("secretKey", "remoteRef", "sourceRef"))
        if item.get("sourceRef") is not None:
            ctx.warn(f"{p}.sourceRef", "not translated: per-entry stores and generators; "
                                       "entry left out")
            continue
        key = str(item.get("secretKey") or "")
        if not _SECRET_KEY.match(key) or not isinstance(item.get("remoteRef"), dict):
            ctx.warn(p, "not translated: needs a secretKey of [-._a-zA-Z0-9] and a remoteRef; "
                        "entry left out")
            continue
        ref_out = _remote_ref(item["remoteRef"], f"{p}.remoteRef", ctx)
        if "key" not in ref_out:
            ctx.warn(f"{p}.remoteRef.key", "missing; entry left out")
            continue
        data.append({"secretKey": key, "remoteRef": ref_out})
    if data:
        out["data"] = data
    data_from = []
    for i, item in enumerate(spec.get("dataFrom") or []):
        p = f"spec.dataFrom[{i}]"
        item = ctx.fields(item, p, ("extract", "find"),
                          {"rewrite": "key rewriting (regexp/transform/merge) is not supported; "
                                      "the keys keep their remote names",
                           "sourceRef": "per-entry stores and generators; entry left out"})
        if item.get("sourceRef") is not None:
            continue
        if item.get("extract") is not None:
            ref_out = _remote_ref(item["extract"], f"{p}.extract", ctx)
            if "key" in ref_out:
                data_from.append({"extract": ref_out})
            else:
                ctx.warn(f"{p}.extract.key", "missing; entry left out")
        elif item.get("find") is not None:
            find = ctx.fields(item["find"], f"{p}.find",
                              ("path", "name", "conversionStrategy", "decodingStrategy"),
                              {"tags": "finding by tags is not supported"})
            f_out: dict[str, Any] = {}
            if find.get("path"):
                f_out["path"] = str(find["path"])
            name = find.get("name") or {}
            if isinstance(name, dict) and name.get("regexp"):
                f_out["name"] = {"regexp": str(name["regexp"])}
            if find.get("decodingStrategy") not in (None, "None"):
                f_out["decodingStrategy"] = find["decodingStrategy"]
            if find.get("conversionStrategy") not in (None, "Default"):
                ctx.warn(f"{p}.find.conversionStrategy",
                         f"not translated: {find['conversionStrategy']}")
            if f_out.keys() - {"decodingStrategy"}:
                data_from.append({"find": f_out})
            else:
                ctx.warn(f"{p}.find", "not translated: nothing but tags to find by; entry left "
                                      "out")
    if data_from:
        out["dataFrom"] = data_from
    return out


def _secret_ref(sel: Any, path: str, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    """An ESO SecretKeySelector; a ref the store kind cannot express skips the store."""
    sel = ctx.fields(sel, path, ("name", "key", "namespace"))
    if not sel.get("name") or not sel.get("key"):
        raise ctx.skip(path, "needs both name and key in secretops; store skipped")
    out = {"name": str(sel["name"]), "key": str(sel["key"])}
    ns = sel.get("namespace")
    if ns:
        if store.cluster:
            out["namespace"] = str(ns)
        elif ns != store.namespace:
            raise ctx.skip(f"{path}.namespace", "a SecretStore may only name Secrets of its own "
                                                "namespace in secretops; store skipped")
    return out


def _vault(v: Any, ctx: _Ctx, store: _Store) -> dict[str, Any]:
    p = "spec.provider.vault"
    v = ctx.fields(v, p, ("server", "path", "version", "namespace", "caBundle", "auth"),
                   {"caProvider": "a CA from a ConfigMap/Secret; put the PEM in caBundle",
                    "tls": "client certificates are not supported"})
    if not v.get("server"):
        raise ctx.skip(f"{p}.server", "missing; store skipped")
    if v.get("version") not in (None, "v2"):
        raise ctx.skip(f"{p}.version", f"KV {v['version']} is not supported (only v2); "
                                       "store skipped")
    out: dict[str, Any] = {"server": v["server"]}
    if v.get("path"):
        out["path"] = str(v["path"]).strip("/")
    else:
        ctx.warn(f"{p}.path", "not set: ESO then reads remote keys as <mount>/<path>, secretops "
                              "uses the mount 'secret' and keys inside it; check the keys")
    out["version"] = "v2"
    for k in ("namespace", "caBundle"):
        if v.get(k):
            out[k] = v[k]
    auth = v.get("auth") or {}
    methods = ("tokenSecretRef", "appRole", "kubernetes")
    ctx.fields(auth, f"{p}.auth", (*methods,),
               {m: "this Vault auth method is not supported (token, appRole, kubernetes are)"
                for m in ("jwt", "ldap", "userPass", "cert", "iam", "gcp", "namespace")})
    a = f"{p}.auth"
    if auth.get("tokenSecretRef"):
        return {**out, "auth": {"tokenSecretRef": _secret_ref(
            auth["tokenSecretRef"], f"{a}.tokenSecretRef", ctx, store)}}
    if auth.get("appRole"):
        ar = ctx.fields(auth["appRole"], f"{a}.appRole", ("path", "roleId", "roleRef",
                                                          "secretRef"))
        if not ar.get("roleId"):
            raise ctx.skip(f"{a}.appRole.roleId", "missing (roleRef is not supported); "
                                                  "store skipped")
        app: dict[str, Any] = {"roleId": str(ar["roleId"]),
                               "secretRef": _secret_ref(ar.get("secretRef"),
                                                        f"{a}.appRole.secretRef", ctx, store)}
        if ar.get("path"):
            app["path"] = ar["path"]
        return {**out, "auth": {"appRole": app}}
    if auth.get("kubernetes"):
        k8s = ctx.fields(auth["kubernetes"], f"{a}.kubernetes",
                         ("mountPath", "role", "serviceAccountRef", "secretRef"))
        if not k8s.get("role"):
            raise ctx.skip(f"{a}.kubernetes.role", "missing; store skipped")
        kube: dict[str, Any] = {"role": str(k8s["role"])}
        if k8s.get("mountPath"):
            kube["mountPath"] = k8s["mountPath"]
        sa = ctx.fields(k8s.get("serviceAccountRef"), f"{a}.kubernetes.serviceAccountRef",
                        ("name", "audiences", "namespace"))
        if sa.get("namespace") and not store.cluster and sa["namespace"] != store.namespace:
            raise ctx.skip(f"{a}.kubernetes.serviceAccountRef.namespace",
                           "a service account of another namespace; store skipped")
        if sa.get("name"):
            kube["serviceAccountRef"] = {"name": sa["name"]}
            if sa.get("namespace") and store.cluster:
                kube["serviceAccountRef"]["namespace"] = sa["namespace"]
            if sa.get("audiences"):
                kube["serviceAccountRef"]["audiences"] = list(sa["audiences"])
        elif k8s.get("secretRef") is not None:
            kube["secretRef"] = _secret_ref(k8s["secretRef"], f"{a}.kubernetes.secretRef", ctx,
                                            store)
        elif not store.cluster:
            ctx.warn(f"{a}.kubernetes", "names no serviceAccountRef or secretRef: ESO logs in "
                                        "as its own service account, secretops refuses that "
                                        "for a SecretStore; name the namespace's service "
                                        "account")
        return {**out, "auth": {"kubernetes": kube}}
    raise ctx.skip(a, "no supported auth method (tokenSecretRef, appRole, kubernetes); "
                      "store skipped")


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
                                       "use other credentials or keys; store skipped")
    if v.get("service") not in ("SecretsManager", "ParameterStore"):
        raise ctx.skip(f"{p}.service", f"{v.get('service')!r} is not supported; store skipped")
    if not v.get("region"):
        raise ctx.skip(f"{p}.region", "missing; store skipped")
    out: dict[str, Any] = {"service": v["service"], "region": v["region"]}
    if v.get("role"):
        out["role"] = v["role"]
    auth = ctx.fields(v.get("auth"), f"{p}.auth", ("secretRef", "jwt"))
    if auth.get("jwt") is not None:
        raise ctx.skip(f"{p}.auth.jwt", "a service account's web identity is not supported; "
                                        "omit auth to use the controller's own (IRSA); store "
                                        "skipped")
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
                      {"controller": "secretops has one controller class",
                       "retrySettings": "the controller's --retry-base-delay/--retry-max-delay "
                                        "apply"})
    provider = spec.get("provider") or {}
    if not isinstance(provider, dict) or len(provider) != 1:
        raise ctx.skip("spec.provider", "needs exactly one provider; store skipped")
    (name, conf), = provider.items()
    if name == "vault":
        out: dict[str, Any] = {"provider": {"vault": _vault(conf, ctx, store)}}
    elif name == "aws":
        out = {"provider": {"aws": _aws(conf, ctx, store)}}
    else:
        raise ctx.skip(f"spec.provider.{name}", f"provider {name} is not supported by secretops "
                                                "(vault and aws are); store skipped")
    interval = spec.get("refreshInterval")
    if isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
        out["refreshInterval"] = f"{interval}s"
    elif interval not in (None, 0):
        d = _duration(interval, "spec.refreshInterval", ctx)
        if d not in (None, "0"):
            out["refreshInterval"] = d
    conditions = spec.get("conditions")
    if conditions:
        if not store.cluster:
            ctx.warn("spec.conditions", "not translated: only a ClusterSecretStore has "
                                        "conditions")
        else:
            kept = []
            for i, c in enumerate(conditions):
                c = ctx.fields(c, f"spec.conditions[{i}]",
                               ("namespaceSelector", "namespaces", "namespaceRegexes"))
                kept.append({k: c[k] for k in ("namespaceSelector", "namespaces",
                                               "namespaceRegexes") if c.get(k)})
            out["conditions"] = [c for c in kept if c]
            if len(out["conditions"]) < len(kept):
                # an empty condition would allow every namespace: refuse the store instead
                raise ctx.skip("spec.conditions", "a condition would be empty after "
                                                  "translation (allowing every namespace); "
                                                  "store skipped")
    return out


def describe(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    name = meta.get("name", "?")
    ns = meta.get("namespace")
    return f"{doc.get('kind', '?')} {ns + '/' if ns else ''}{name}"


def convert(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Issue]]:
    """One manifest: (the secretops object, or the input itself if not ESO's, or None when
    skipped; the issues)."""
    api = str(doc.get("apiVersion", ""))
    kind = doc.get("kind")
    ctx = _Ctx(describe(doc))
    if not api.startswith("external-secrets.io/") and not api.startswith(
            "generators.external-secrets.io/"):
        return doc, []
    if api not in ESO_VERSIONS or kind not in KINDS:
        ctx.warn("apiVersion" if kind in KINDS else "kind",
                 f"{api} {kind} is not translated (ExternalSecret, SecretStore and "
                 f"ClusterSecretStore of {' and '.join(ESO_VERSIONS)} are); skipped")
        return None, ctx.issues
    untranslated: list[str] = []
    meta = _metadata(doc.get("metadata"), ctx)
    try:
        if kind == "ExternalSecret":
            spec = _external_secret(doc.get("spec"), ctx, untranslated)
        else:
            spec = _store(doc.get("spec"), ctx, _Store(kind == "ClusterSecretStore",
                                                        meta.get("namespace")))
    except _Skip:
        return None, ctx.issues
    if untranslated:
        meta.setdefault("annotations", {})[UNTRANSLATED_ANNOTATION] = ", ".join(untranslated)
    return {"apiVersion": GROUP, "kind": kind, "metadata": meta, "spec": spec}, ctx.issues


def convert_all(docs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Issue]]:
    """Every manifest in order; skipped ones are left out (and named in the issues)."""
    out: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for doc in docs:
        obj, found = convert(doc)
        issues.extend(found)
        if obj is not None:
            out.append(obj)
    return out, issues
