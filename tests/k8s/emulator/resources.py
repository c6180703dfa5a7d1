"""The API's resource types: the built-in table and what a CustomResourceDefinition declares.

A :class:`ResourceType` is one resource (``secrets``, ``deployments.apps``,
``sealedthings.example.dev``) with every version it is served at. Objects of a resource are
stored once, in the storage version; other versions differ only in ``apiVersion`` (a CRD's
``conversion: None`` strategy, which is also all the emulator offers). :class:`Registry`
answers discovery and the router's look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schema import CompiledSchema


@dataclass
class ResourceType:
    group: str
    versions: list[str]  # served versions, highest priority first
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: list[str] = field(default_factory=list)  # "status", "scale", "token", ...
    generation: bool = False  # metadata.generation is kept (workloads, CRDs, custom resources)
    custom: bool = False  # served from a CustomResourceDefinition
    schemas: dict[str, CompiledSchema] = field(default_factory=dict)  # version -> schema (CRDs)
    printer_columns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    storage_version: str = ""
    verbs: list[str] = field(default_factory=list)  # empty: the full set (virtual kinds: fewer)
    # The registry strategy's AllowUnconditionalUpdate / AllowCreateOnUpdate: a PUT without
    # metadata.resourceVersion is 422 where the first is false; a PUT to a missing object
    # creates it where the second is true (leases, events, services, RBAC).
    unconditional_update: bool = True
    create_on_update: bool = False

    def __post_init__(self) -> None:
        self.storage_version = self.storage_version or self.versions[0]

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def status_subresource(self) -> bool:
        return "status" in self.subresources

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v

    def discovery(self) -> list[dict[str, Any]]:
        """This resource's entries in an APIResourceList (the resource, then its subresources)."""
        verbs = self.verbs or [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        }
        if self.short_names:
            entry["shortNames"] = self.short_names
        if self.categories:
            entry["categories"] = self.categories
        out = [entry]
        for sub in self.subresources:
            sub_verbs = {
                "status": ["get", "patch", "update"],
                "scale": ["get", "patch", "update"],
                "token": ["create"],
                "proxy": ["create", "delete", "get", "patch", "update"],
                "finalize": ["update"],
            }.get(sub, ["get"])
            sub_kind = {
                "scale": "Scale",
                "token": "TokenRequest",
                "proxy": "ServiceProxyOptions",
            }.get(sub, self.kind)
            out.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": sub_kind,
                    "verbs": sub_verbs,
                }
            )
        return out


def _t(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    subs: tuple[str, ...] = (),
    generation: bool = False,
    categories: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group,
        [version],
        plural,
        kind,
        namespaced,
        kind.lower(),
        list(short),
        list(categories),
        list(subs),
        generation,
    )


def builtin_types() -> list[ResourceType]:
    """The built-in resources served from the start."""
    token_review = _t("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False)
    token_review.verbs = ["create"]
    self_review = _t(
        "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False
    )
    self_review.verbs = ["create"]
    types = [
        _t("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
        _t("", "v1", "secrets", "Secret"),
        _t("", "v1", "configmaps", "ConfigMap", short=("cm",)),
        _t("", "v1", "events", "Event", short=("ev",)),
        _t("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",), subs=("token",)),
        _t(
            "",
            "v1",
            "services",
            "Service",
            short=("svc",),
            subs=("status", "proxy"),
            categories=("all",),
        ),
        _t(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            short=("deploy",),
            subs=("status",),
            generation=True,
            categories=("all",),
        ),
        _t(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            short=("sts",),
            subs=("status",),
            generation=True,
            categories=("all",),
        ),
        _t(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            short=("ds",),
            subs=("status",),
            generation=True,
            categories=("all",),
        ),
        _t("coordination.k8s.io", "v1", "leases", "Lease"),
        _t("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
        _t(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            short=("pdb",),
            subs=("status",),
            generation=True,
        ),
        _t("events.k8s.io", "v1", "events", "Event", short=("ev",)),
        _t("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _t(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            ("status",),
            generation=True,
            categories=("api-extensions",),
        ),
        token_review,
        self_review,
    ]
    for rt in types:
        rt.unconditional_update = rt.plural not in ("leases", "customresourcedefinitions")
        rt.create_on_update = rt.plural in _CREATE_ON_UPDATE
    return types


# pkg/registry/*/strategy.go: AllowCreateOnUpdate() is true for these only.
_CREATE_ON_UPDATE = (
    "leases",
    "events",
    "services",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
)


class Registry:
    """Resource types by (group, version, plural) and by (group, plural); groups for discovery."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], ResourceType] = {}
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        for rt in builtin_types():
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self.remove(rt.key)
        self._by_key[rt.key] = rt
        for v in rt.versions:
            self._by_gvr[(rt.group, v, rt.plural)] = rt

    def remove(self, key: tuple[str, str]) -> ResourceType | None:
        rt = self._by_key.pop(key, None)
        if rt is not None:
            for v in rt.versions:
                self._by_gvr.pop((rt.group, v, rt.plural), None)
        return rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self._by_key.get(key)

    def all(self) -> list[ResourceType]:
        return list(self._by_key.values())

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first), in registration order; core ("") excluded."""
        out: dict[str, list[str]] = {}
        for rt in self._by_key.values():
            if rt.group:
                versions = out.setdefault(rt.group, [])
                versions.extend(v for v in rt.versions if v not in versions)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._by_key.values() if rt.group == group and version in rt.versions]
