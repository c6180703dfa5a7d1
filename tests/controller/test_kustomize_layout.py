"""The kustomize layout: every install renders with the real kubectl, grants exactly the
features its Deployment switches on, and keeps its copies of the rules in step.

* ``crds/`` (default), ``deploy/sealed-secrets``, ``deploy/external-secrets``,
  ``deploy/namespaced`` render; no rule has a wildcard; every binding names the controller's
  ServiceAccount; the Deployment's switches parse into a controller configuration that passes
  its checks, and a feature is on exactly when RBAC objects labelled with it are present;
* namespaced: no grant is cluster-wide; the watched namespaces in the Deployment are exactly
  the namespaces with Roles;
* the per-namespace Roles of ``crds/namespaced/<feature>/`` have the same rules as the
  ClusterRoles of ``crds/rbac.yaml`` (one definition of each feature's rights, two scopes);
* a feature that is off registers no handler (the switches, and the namespaced scope, in the
  controller itself).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from secretops_controller import kube, operator
from secretops_controller.__main__ import config_from, parser
from secretops_controller.config import Config
from secretops_controller.context import Context
from secretops_controller.shards import lease_name

from tests.fixtures.k8s import kubectl_binary

ROOT = Path(__file__).resolve().parents[2]
INSTALLS = ["crds", "deploy/sealed-secrets", "deploy/external-secrets", "deploy/namespaced",
            "deploy/sharded"]
FEATURES = {"sealed-secrets": "SECRETOPS_SEALED_SECRETS",
            "external-secrets": "SECRETOPS_EXTERNAL_SECRETS",
            "cluster-secret-stores": "SECRETOPS_CLUSTER_SECRET_STORES",
            "rollout": "SECRETOPS_ROLLOUT", "token-requests": "SECRETOPS_TOKEN_REQUESTS"}
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
SUBJECT = {"kind": "ServiceAccount", "name": "secretops-controller",
           "namespace": "secretops-system"}


def render(path: str | Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl_binary(), "kustomize", str(ROOT / path)], check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def controller_config(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Config:
    """The configuration the rendered Deployment gives the controller (its args and env)."""
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    [c] = deploy["spec"]["template"]["spec"]["containers"]
    for e in c.get("env") or []:
        if "value" in e:
            monkeypatch.setenv(e["name"], e["value"])
    config = config_from(parser().parse_args(c.get("args") or []))
    config.check()
    return config


@pytest.mark.parametrize("install", INSTALLS)
def test_install_grants_what_it_switches_on(install: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [*FEATURES.values(), "SECRETOPS_WATCH_NAMESPACES", "SECRETOPS_SHARDS"]:
        monkeypatch.delenv(var, raising=False)
    docs = render(install)
    config = controller_config(docs, monkeypatch)
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    for doc in rbac:
        for rule in doc.get("rules") or []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], doc
        if doc["kind"].endswith("Binding"):
            assert doc["subjects"] == [SUBJECT], doc
    granted = {d["metadata"]["labels"]["secretops.dev/feature"] for d in rbac}
    on = {"sealed-secrets": config.sealed_secrets, "external-secrets": config.external_secrets,
          "cluster-secret-stores": config.uses_cluster_stores, "rollout": config.uses_rollout,
          "token-requests": config.uses_token_requests}
    assert {f for f, yes in on.items() if yes} | {"core"} == granted, (on, granted)
    crds = {d["metadata"]["name"].split(".")[0] for d in docs
            if d["kind"] == "CustomResourceDefinition"}
    assert crds == operator.needed_resources(config)
    # every shard's Lease by name, and no other (sharding: docs/controller.md)
    [named] = [r["resourceNames"] for d in rbac for r in d.get("rules") or []
               if "leases" in r["resources"] and r.get("resourceNames")]
    assert named == [lease_name(config.lease_name, i) for i in range(config.shards)]
    if config.namespaced:
        grants = {d["metadata"]["labels"]["secretops.dev/grant"] for d in rbac}
        assert "cluster-wide" not in grants
        with_roles = {d["metadata"]["namespace"] for d in rbac if d["metadata"]["labels"][
            "secretops.dev/grant"] == "watched-namespace"}
        assert with_roles == set(config.watch_namespaces)
        assert not config.uses_cluster_stores  # the example has no ClusterRole at all
        assert not [d for d in rbac if d["kind"].startswith("Cluster")]


def test_namespaced_roles_have_the_cluster_roles_rules() -> None:
    cluster = {d["metadata"]["name"]: d["rules"] for d in render("crds")
               if d["kind"] == "ClusterRole"}
    folders = sorted(p.name for p in (ROOT / "crds" / "namespaced").iterdir())
    assert folders == ["external-secrets", "rollout", "sealed-secrets", "token-requests"]
    for feature in folders:
        [role] = [d for d in render(f"crds/namespaced/{feature}") if d["kind"] == "Role"]
        assert role["rules"] == cluster[f"secretops-{feature}"], feature


def test_token_requests_are_limited_by_name() -> None:
    for install in ("crds", "deploy/namespaced"):
        rules = [r for d in render(install) for r in d.get("rules") or []
                 if "serviceaccounts/token" in r["resources"]]
        assert rules and all(r["resourceNames"] == ["secretops-store-auth"] for r in rules)


def test_switches_parse_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [*FEATURES.values(), "SECRETOPS_WATCH_NAMESPACES", "SECRETOPS_SHARDS"]:
        monkeypatch.delenv(var, raising=False)
    default = config_from(parser().parse_args([]))
    assert (default.sealed_secrets, default.external_secrets, default.rollout,
            default.token_requests, default.cluster_secret_stores) == (True,) * 5
    assert not default.namespaced
    monkeypatch.setenv("SECRETOPS_ROLLOUT", "false")
    monkeypatch.setenv("SECRETOPS_WATCH_NAMESPACES", "a, b")
    config = config_from(parser().parse_args(["--no-token-requests"]))
    assert not config.rollout and not config.token_requests and config.watch_namespaces == (
        "a", "b")
    flags = config_from(parser().parse_args(["--rollout", "--watch-namespace", "c"]))
    assert flags.rollout and flags.watch_namespaces == ("c",)  # flags win over the environment
    monkeypatch.setenv("SECRETOPS_SHARDS", "6")
    assert config_from(parser().parse_args([])).shards == 6
    assert config_from(parser().parse_args(["--shards", "3"])).shards == 3
    for bad in (Config(sealed_secrets=False, external_secrets=False),
                Config(watch_namespaces=("SET-ME",)), Config(watch_namespaces=("../x",)),
                Config(shards=0), Config(shards=65), Config(shards=2, leader_elect=False)):
        with pytest.raises(ValueError):
            bad.check()
    # sub-features follow the external-secrets half
    off = Config(external_secrets=False)
    assert not (off.uses_rollout or off.uses_token_requests or off.uses_cluster_stores)


def _watched(built: tuple[Any, Context]) -> set[str]:
    registry, ctx = built
    # kopf watches nothing (the informers do)
    assert not [*registry._watching.get_all_handlers(), *registry._changing.get_all_handlers()]
    return {w.plural for w in ctx.informers.watches}


def test_a_feature_that_is_off_registers_no_handler() -> None:
    assert _watched(operator.build(Config())) == {
        "sealedsecrets", "secrets", "externalsecrets", "secretstores", "clustersecretstores"}
    assert _watched(operator.build(Config(external_secrets=False))) == {
        "sealedsecrets", "secrets"}
    assert _watched(operator.build(Config(sealed_secrets=False))) == {
        "externalsecrets", "secretstores", "clustersecretstores"}
    assert _watched(operator.build(Config(cluster_secret_stores=False))) == {
        "sealedsecrets", "secrets", "externalsecrets", "secretstores"}


def test_the_namespaced_scope() -> None:
    assert operator.scope_of(Config()) is None
    scope = operator.scope_of(Config(watch_namespaces=("a",), cluster_secret_stores=False))
    assert scope is not None
    assert scope.allows("/api/v1/namespaces/a/secrets/x")
    assert scope.allows("/api/v1/namespaces/secretops-system/secrets")
    assert scope.allows("/apis/secretops.dev/v1alpha1")  # discovery
    assert scope.allows("/api/v1/namespaces/a")  # the namespace object (labels)
    for path in ("/api/v1/namespaces/b/secrets/x", "/api/v1/secrets",
                 "/apis/secretops.dev/v1alpha1/sealedsecrets",
                 "/apis/secretops.dev/v1alpha1/clustersecretstores/x",
                 "/api/v1/namespaces/kube-system/serviceaccounts/default/token",
                 "/api/v1/namespaces/a%2F..%2Fb/secrets"):
        assert not scope.allows(path), path
    stores = operator.scope_of(Config(watch_namespaces=("a",)))
    assert stores is not None and stores.allows(
        "/apis/secretops.dev/v1alpha1/clustersecretstores/x/status")
    assert kube.path_namespace("/apis/apps/v1/namespaces/a/deployments") == "a"
