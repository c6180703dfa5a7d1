"""A small RBAC evaluator for the emulator's audit records: least privilege, checked.

Given RBAC manifests (Role, ClusterRole, RoleBinding, ClusterRoleBinding; YAML text, files or
dicts) and the audit records of a service account's calls (``K8s.audit()``), :func:`check_rbac`
answers, with the rules of Kubernetes' RBAC authorizer:

* which calls are **denied** — no rule of a role bound to the caller allows them;
* which granted permissions were **never used** — each rule expanded to (verb, apiGroup,
  resource[, resourceName]) and compared with the calls it allowed.

What is evaluated: subjects (ServiceAccount — with a RoleBinding's namespace as default —, User,
Group, including ``system:serviceaccounts``, ``system:serviceaccounts:<ns>`` and
``system:authenticated``); a RoleBinding grants its Role or ClusterRole in its own namespace only,
a ClusterRoleBinding grants its ClusterRole everywhere and for cluster-scoped resources; rules'
``verbs``, ``apiGroups``, ``resources`` (``*``, ``name/subresource`` and ``*/subresource``),
``resourceNames`` (a list or watch names an object only through a ``metadata.name`` field
selector, as in the apiserver), and ``nonResourceURLs`` (exact or ``prefix*``, from
ClusterRoleBindings only). The apiserver's default grants to every authenticated user
(discovery, health, version, self reviews, issuer discovery) are included and never reported as
unused. Not evaluated: ClusterRole ``aggregationRule``, and the ``escalate``/``bind``/
``impersonate`` verbs' special meaning (they are matched as plain verbs).

:func:`assert_least_privilege` fails a test unless every call was allowed and every granted
permission was used.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
_RBAC = "rbac.authorization.k8s.io"

DEFAULT_CLUSTER_ROLES: list[tuple[str, str, list[Obj]]] = [
    (
        "system:discovery",
        "system:authenticated",
        [
            {
                "verbs": ["get"],
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            }
        ],
    ),
    (
        "system:basic-user",
        "system:authenticated",
        [
            {
                "verbs": ["create"],
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
            },
            {
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            },
        ],
    ),
    (
        "system:service-account-issuer-discovery",
        "system:serviceaccounts",
        [
            {
                "verbs": ["get"],
                "nonResourceURLs": [
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            }
        ],
    ),
]


@dataclass(frozen=True)
class RuleRef:
    """One rule of a role, as granted by one binding."""

    role: str  # "Role ns/name" or "ClusterRole name"
    index: int
    binding: str  # "RoleBinding ns/name" or "ClusterRoleBinding name"
    default: bool = False

    def __str__(self) -> str:
        return f"{self.role} rule[{self.index}] (via {self.binding})"


@dataclass
class _Grant:
    ref: RuleRef
    rule: Obj
    namespace: str | None  # None: cluster-wide (ClusterRoleBinding)
    subjects: list[Obj]


@dataclass
class RbacReport:
    allowed: list[tuple[Obj, list[RuleRef]]] = field(default_factory=list)
    denied: list[Obj] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # "RuleRef: verb group/resource[/name]"

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unused

    def explain(self) -> str:
        lines = [f"denied: {describe(r)}" for r in self.denied]
        lines += [f"unused: {u}" for u in self.unused]
        return "\n".join(lines) or "every call allowed, every permission used"


def describe(record: Obj) -> str:
    who = record.get("serviceAccount") or record.get("user")
    if record.get("nonResourceURL"):
        return f"{who}: {record['verb']} {record['path']}"
    group = record.get("apiGroup") or "core"
    where = f" in {record['namespace']}" if record.get("namespace") else " (cluster)"
    name = f" {record['name']!r}" if record.get("name") else ""
    return f"{who}: {record['verb']} {group}/{record['resource']}{name}{where}"


def load_manifests(*sources: str | Path | Obj | Iterable[Obj]) -> list[Obj]:
    """RBAC objects from YAML text, YAML files, directories of them, or already-parsed dicts."""
    docs: list[Obj] = []
    for source in sources:
        if isinstance(source, dict):
            docs.append(source)
        elif isinstance(source, Path):
            files = sorted(source.glob("*.y*ml")) if source.is_dir() else [source]
            for f in files:
                docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
        elif isinstance(source, str):
            docs.extend(d for d in yaml.safe_load_all(source) if d)
        else:
            docs.extend(source)
    out: list[Obj] = []
    for doc in docs:
        if doc.get("kind") == "List":
            out.extend(doc.get("items") or [])
        else:
            out.append(doc)
    return [d for d in out if str(d.get("apiVersion", "")).startswith(_RBAC)]


class Policy:
    def __init__(self, manifests: list[Obj], defaults: bool = True) -> None:
        roles: dict[tuple[str, str, str], list[Obj]] = {}
        for doc in manifests:
            meta = doc.get("metadata") or {}
            if doc.get("kind") == "Role":
                roles[("Role", meta.get("namespace", "default"), meta["name"])] = list(
                    doc.get("rules") or []
                )
            elif doc.get("kind") == "ClusterRole":
                roles[("ClusterRole", "", meta["name"])] = list(doc.get("rules") or [])
        self.grants: list[_Grant] = []
        for doc in manifests:
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            if kind not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            ref = doc.get("roleRef") or {}
            ns = meta.get("namespace", "default") if kind == "RoleBinding" else None
            if ref.get("kind") == "Role" and ns is not None:
                key = ("Role", ns, ref.get("name", ""))
                role_name = f"Role {ns}/{ref.get('name')}"
            else:
                key = ("ClusterRole", "", ref.get("name", ""))
                role_name = f"ClusterRole {ref.get('name')}"
            binding = (
                f"RoleBinding {ns}/{meta['name']}" if ns else f"ClusterRoleBinding {meta['name']}"
            )
            subjects = [
                {**s, "namespace": s.get("namespace") or ns or ""}
                if s.get("kind") == "ServiceAccount"
                else s
                for s in doc.get("subjects") or []
            ]
            for i, rule in enumerate(roles.get(key, [])):
                self.grants.append(_Grant(RuleRef(role_name, i, binding), rule, ns, subjects))
        if defaults:
            for name, group, rules in DEFAULT_CLUSTER_ROLES:
                for i, rule in enumerate(rules):
                    self.grants.append(
                        _Grant(
                            RuleRef(f"ClusterRole {name}", i, f"ClusterRoleBinding {name}", True),
                            rule,
                            None,
                            [{"kind": "Group", "name": group}],
                        )
                    )

    @staticmethod
    def _identity(record: Obj) -> tuple[str, list[str], str, str]:
        user = str(record.get("user") or "")
        sa_ns, sa_name = "", ""
        groups = ["system:authenticated"]
        if user.startswith("system:serviceaccount:"):
            sa_ns, _, sa_name = user[len("system:serviceaccount:") :].partition(":")
            groups += ["system:serviceaccounts", f"system:serviceaccounts:{sa_ns}"]
        return user, groups, sa_ns, sa_name

    @staticmethod
    def _subject_matches(subject: Obj, user: str, groups: list[str], ns: str, name: str) -> bool:
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            return bool(name) and subject.get("name") == name and subject.get("namespace") == ns
        if kind == "User":
            return subject.get("name") == user
        if kind == "Group":
            return subject.get("name") in groups
        return False

    @staticmethod
    def _rule_allows(rule: Obj, record: Obj) -> bool:
        verbs = rule.get("verbs") or []
        if "*" not in verbs and record["verb"] not in verbs:
            return False
        if record.get("nonResourceURL"):
            path = record["path"]
            return any(
                u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1]))
                for u in rule.get("nonResourceURLs") or []
            )
        groups = rule.get("apiGroups") or []
        if "*" not in groups and record.get("apiGroup", "") not in groups:
            return False
        resource = record["resource"]
        sub = resource.partition("/")[2]
        if not any(
            r in ("*", resource) or (sub and r == f"*/{sub}") for r in rule.get("resources") or []
        ):
            return False
        names = rule.get("resourceNames") or []
        return not names or (bool(record.get("name")) and record["name"] in names)

    def allows(self, record: Obj) -> list[RuleRef]:
        """The rules that allow this call (empty: denied)."""
        user, groups, sa_ns, sa_name = self._identity(record)
        out = []
        for g in self.grants:
            if record.get("nonResourceURL"):
                if g.namespace is not None:
                    continue  # non-resource URLs are granted by ClusterRoleBindings only
            elif g.namespace is not None and record.get("namespace") != g.namespace:
                continue
            if not any(self._subject_matches(s, user, groups, sa_ns, sa_name) for s in g.subjects):
                continue
            if self._rule_allows(g.rule, record):
                out.append(g.ref)
        return out

    def bound_to(self, record: Obj) -> list[_Grant]:
        user, groups, sa_ns, sa_name = self._identity(record)
        return [
            g
            for g in self.grants
            if any(self._subject_matches(s, user, groups, sa_ns, sa_name) for s in g.subjects)
        ]


def _permissions(rule: Obj) -> list[tuple[str, ...]]:
    if rule.get("nonResourceURLs"):
        return [
            ("url", v, u)
            for v, u in itertools.product(rule.get("verbs") or [], rule["nonResourceURLs"])
        ]
    names = rule.get("resourceNames") or [""]
    return [
        (v, g, r, n)
        for v, g, r, n in itertools.product(
            rule.get("verbs") or [],
            rule.get("apiGroups") or [],
            rule.get("resources") or [],
            names,
        )
    ]


def _covers(permission: tuple[str, ...], record: Obj) -> bool:
    """Whether a single expanded permission (wildcards allowed) was used by this call."""
    if permission[0] == "url":
        _, verb, url = permission
        rule: Obj = {"verbs": [verb], "nonResourceURLs": [url]}
    else:
        verb, group, resource, name = permission
        rule = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
        if name:
            rule["resourceNames"] = [name]
    return Policy._rule_allows(rule, record)


def _show(permission: tuple[str, ...]) -> str:
    if permission[0] == "url":
        return f"{permission[1]} {permission[2]}"
    verb, group, resource, name = permission
    return f"{verb} {group or 'core'}/{resource}" + (f" {name!r}" if name else "")


def check_rbac(
    records: Iterable[Obj],
    *manifests: str | Path | Obj | Iterable[Obj],
    service_account: str | None = None,
) -> RbacReport:
    """Evaluate audit records (``ns/name`` of ``service_account`` only, if given) against RBAC.

    ``unused`` lists the permissions granted to the callers seen that no call used.
    """
    policy = Policy(load_manifests(*manifests))
    report = RbacReport()
    calls = [
        r for r in records if service_account is None or r.get("serviceAccount") == service_account
    ]
    used: dict[RuleRef, list[Obj]] = {}
    grants: dict[RuleRef, _Grant] = {}
    if service_account is not None:  # its grants count even if it made no call
        ns, _, name = service_account.partition("/")
        for g in policy.bound_to({"user": f"system:serviceaccount:{ns}:{name}"}):
            grants.setdefault(g.ref, g)
    for record in calls:
        for g in policy.bound_to(record):
            grants.setdefault(g.ref, g)
        refs = policy.allows(record)
        if refs:
            report.allowed.append((record, refs))
            for ref in refs:
                used.setdefault(ref, []).append(record)
        else:
            report.denied.append(record)
    for ref, grant in grants.items():
        if ref.default:
            continue
        seen = used.get(ref, [])
        for permission in _permissions(grant.rule):
            if not any(_covers(permission, r) for r in seen):
                report.unused.append(f"{ref}: {_show(permission)}")
    return report


def assert_least_privilege(
    records: Iterable[Obj],
    *manifests: str | Path | Obj | Iterable[Obj],
    service_account: str | None = None,
) -> RbacReport:
    """Fail unless every call was allowed and every granted permission was used."""
    report = check_rbac(records, *manifests, service_account=service_account)
    if not report.ok:
        raise AssertionError("RBAC is not least privilege:\n" + report.explain())
    return report
