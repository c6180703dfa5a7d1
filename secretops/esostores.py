"""``SecretStore``/``ClusterSecretStore`` of ESO → secretops's: Vault and AWS, or refused whole
(a store that half-translated would read with other credentials or keys than its owner meant).
"""

from __future__ import annotations

from typing import Any

from secretops.esoctx import Ctx, Store, duration, string_of


def _secret_ref(sel: Any, path: str, ctx: Ctx, store: Store) -> dict[str, Any]:
    """An ESO SecretKeySelector; a ref the store kind cannot express refuses the store."""
    sel = ctx.fields(sel, path, ("name", "key", "namespace"))
    name, key = string_of(sel, "name", path, ctx), string_of(sel, "key", path, ctx)
    if not name or not key:
        raise ctx.skip(path, "needs both name and key in secretops")
    out = {"name": name, "key": key}
    ns = string_of(sel, "namespace", path, ctx)
    if ns:
        if store.cluster:
            out["namespace"] = ns
        elif ns != store.namespace:
            raise ctx.skip(f"{path}.namespace", "a SecretStore may only name Secrets of its own "
                                                "namespace in secretops")
    return out


def _vault(v: Any, ctx: Ctx, store: Store) -> dict[str, Any]:
    p = "spec.provider.vault"
    v = ctx.fields(v, p, ("server", "path", "version", "namespace", "caBundle", "auth"),
                   {"caProvider": "a CA from a ConfigMap/Secret; put the PEM in caBundle",
                    "tls": "client certificates are not supported"})
    server = string_of(v, "server", p, ctx)
    if not server:
        raise ctx.skip(f"{p}.server", "missing")
    if v.get("version") not in (None, "v2"):
        raise ctx.skip(f"{p}.version", f"KV {v['version']!r} is not supported (only v2)")
    out: dict[str, Any] = {"server": server}
    path = string_of(v, "path", p, ctx)
    if path:
        out["path"] = path.strip("/")
    else:
        ctx.warn(f"{p}.path", "not set: ESO then reads remote keys as <mount>/<path>, secretops "
                              "reads them inside the mount 'secret'; set path to the mount")
    out["version"] = "v2"
    for k in ("namespace", "caBundle"):
        value = string_of(v, k, p, ctx)
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
        role = string_of(ar, "roleId", f"{a}.appRole", ctx)
        if not role:
            raise ctx.skip(f"{a}.appRole.roleId", "missing")
        app: dict[str, Any] = {"roleId": role,
                               "secretRef": _secret_ref(ar.get("secretRef"),
                                                        f"{a}.appRole.secretRef", ctx, store)}
        mount = string_of(ar, "path", f"{a}.appRole", ctx)
        if mount:
            app["path"] = mount
        return {**out, "auth": {"appRole": app}}
    if auth.get("kubernetes"):
        return {**out, "auth": {"kubernetes": _vault_kubernetes(auth["kubernetes"], a, ctx,
                                                                store)}}
    raise ctx.skip(a, "no supported auth method (tokenSecretRef, appRole, kubernetes)")


def _vault_kubernetes(k8s: Any, a: str, ctx: Ctx, store: Store) -> dict[str, Any]:
    p = f"{a}.kubernetes"
    k8s = ctx.fields(k8s, p, ("mountPath", "role", "serviceAccountRef", "secretRef"))
    role = string_of(k8s, "role", p, ctx)
    if not role:
        raise ctx.skip(f"{p}.role", "missing")
    kube: dict[str, Any] = {"role": role}
    mount = string_of(k8s, "mountPath", p, ctx)
    if mount:
        kube["mountPath"] = mount
    sa = ctx.fields(k8s.get("serviceAccountRef"), f"{p}.serviceAccountRef",
                    ("name", "audiences", "namespace"))
    sa_ns = string_of(sa, "namespace", f"{p}.serviceAccountRef", ctx)
    if sa_ns and not store.cluster and sa_ns != store.namespace:
        raise ctx.skip(f"{p}.serviceAccountRef.namespace", "a service account of another "
                                                           "namespace")
    sa_name = string_of(sa, "name", f"{p}.serviceAccountRef", ctx)
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


def _aws(v: Any, ctx: Ctx, store: Store) -> dict[str, Any]:
    p = "spec.provider.aws"
    v = ctx.fields(v, p, ("service", "region", "role", "auth", *_AWS_SKIP),
                   {"secretsManager": "Secrets Manager write options (PushSecret)"})
    for k, what in _AWS_SKIP.items():
        if v.get(k):
            raise ctx.skip(f"{p}.{k}", f"{what} is not supported, and reading without it would "
                                       "use other credentials or keys")
    if v.get("service") not in ("SecretsManager", "ParameterStore"):
        raise ctx.skip(f"{p}.service", f"{v.get('service')!r} is not supported")
    region = string_of(v, "region", p, ctx)
    if not region:
        raise ctx.skip(f"{p}.region", "missing")
    out: dict[str, Any] = {"service": v["service"], "region": region}
    role = string_of(v, "role", p, ctx)
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


def store_spec(spec: Any, ctx: Ctx, store: Store) -> dict[str, Any]:
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
        d = duration(interval, "spec.refreshInterval", ctx)
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
