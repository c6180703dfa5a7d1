"""The Helm chart ``charts/secretops``, rendered and linted by real Helm (Helm 4's Go SDK from the
``helm-python-sdk`` wheel, :mod:`tests.install.chart`).

* For each choice the kustomize installs offer — every feature (``crds/``), SealedSecrets only,
  ExternalSecrets only, namespaced — the chart installs **the same objects** as kustomize, up to
  what legitimately differs (:func:`tests.install.chart.normalise`: Helm's labels, the
  Namespace, env order). The kustomize installs are the ones whose least privilege
  ``tests/controller/test_deploy.py`` and ``test_rbac_modes.py`` prove by running the controller
  as their ServiceAccount, so that proof carries over to the chart.
* ``helm lint --strict`` finds nothing above "info" for the defaults and with every option on;
  values outside the schema and choices that cannot work are refused at render time.
* Built-in objects have no unknown or mistyped field (the official client's OpenAPI models,
  :mod:`tests.install.fields`); the output with every option applies to the emulator with
  ``kubectl apply --validate=strict`` (custom kinds checked against their CRDs), and again with
  no change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from secretops_controller.__main__ import config_from, parser

from tests.fixtures.k8s import K8s
from tests.install.chart import (
    CHART,
    CHOICES,
    NAMESPACE,
    ROOT,
    normalise,
    render_chart,
    render_chart_text,
    render_kustomize,
)
from tests.install.fields import problems

MONITORING_CRDS = Path(__file__).with_name("monitoring-crds.yaml")
EVERYTHING: dict[str, Any] = {
    "replicas": 2, "podDisruptionBudget": {"enabled": True},
    "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "networkPolicy": {"extraFrom": [{"ipBlock": {"cidr": "192.0.2.10/32"}}]},
    "image": {"digest": "sha256:" + "ab" * 32},
    "controller": {"extraArgs": ["--resync-period=10m"]},
}
NAMESPACED = {"rbac": {"watchNamespaces": ["team-a", "team-b"]}}


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [c] = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_chart_installs_what_kustomize_installs(choice: str) -> None:
    install, values = CHOICES[choice]
    chart, kustomize = normalise(render_chart(values)), normalise(render_kustomize(install))
    assert sorted(chart) == sorted(kustomize)
    for key in chart:
        assert chart[key] == kustomize[key], (
            f"{key} differs:\nchart: {json.dumps(chart[key], sort_keys=True)}\n"
            f"kustomize: {json.dumps(kustomize[key], sort_keys=True)}")


def test_the_comparison_sees_a_difference() -> None:
    """The normalisation keeps what matters: one changed rule verb is a difference."""
    chart = normalise(render_chart())
    kustomize = normalise(render_kustomize("crds"))
    key = ("ClusterRole", "", "secretops-rollout")
    kustomize[key]["rules"][0]["verbs"].append("get")
    assert chart[key] != kustomize[key]


@pytest.mark.parametrize("values", [{}, EVERYTHING, {**EVERYTHING, **NAMESPACED},
                                    {"features": {"externalSecrets": False}}])
def test_helm_lint_strict_is_clean(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [], report
    # severity 1 is "info" (an icon is recommended); nothing may warn
    assert [m for m in report["messages"] if m["severity"] > 1] == [], report


def test_lint_catches_a_misspelt_value() -> None:
    report = helm.lint(CHART, {"featurs": {"rollout": False}}, strict=True)
    assert any("featurs" in e for e in report["errors"]), report


@pytest.mark.parametrize(("values", "why"), [
    ({"replicas": 2, "leaderElection": {"enabled": False}}, "two leaders"),
    ({"shards": 6, "leaderElection": {"enabled": False}}, "the shards are Leases"),
    ({"shards": 65}, "maximum"),
    ({"features": {"sealedSecrets": False, "externalSecrets": False}}, "at least one"),
    ({"podDisruptionBudget": {"enabled": True}}, "replicas >= 2"),
    ({"rbac": {"watchNamespaces": ["Team_A"]}}, "does not match pattern"),
    ({"rbac": {"tokenRequestServiceAccounts": []}}, "minItems"),
    ({"features": {"rollout": "no"}}, "boolean"),
])
def test_chart_refuses_what_cannot_work(values: dict[str, Any], why: str) -> None:
    with pytest.raises(helm.HelmError, match=why):
        render_chart(values)


@pytest.mark.parametrize("values", [{}, EVERYTHING, {**EVERYTHING, **NAMESPACED}])
def test_built_in_objects_have_only_known_fields(values: dict[str, Any]) -> None:
    for doc in render_chart(values):
        assert problems(doc) == [], doc["kind"]
    for install, _ in CHOICES.values():
        for doc in render_kustomize(install):
            assert problems(doc) == [], (install, doc["kind"])


def test_the_field_check_finds_what_strict_validation_refuses() -> None:
    deploy = _one(render_chart(), "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnly"] = True
    deploy["spec"]["replicas"] = "2"
    found = problems(deploy)
    assert any("securityContext.readOnly: unknown field" in p for p in found), found
    assert any("spec.replicas: int expected" in p for p in found), found


def test_crd_copies_are_the_crds() -> None:
    """The chart's CRDs are byte-for-byte those of crds/ (Helm reads only the chart's files)."""
    copies = sorted(p.name for p in (CHART / "files" / "crds").iterdir())
    assert copies == ["clustersecretstore.yaml", "externalsecret.yaml", "sealedsecret.yaml",
                      "secretstore.yaml"]
    for name in copies:
        assert (CHART / "files" / "crds" / name).read_bytes() == \
            (ROOT / "crds" / name).read_bytes(), name


def test_chart_options(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render_chart({**EVERYTHING, "leaderElection": {"leaseName": "my-lease"},
                         "rbac": {"tokenRequestServiceAccounts": ["vault-a", "vault-b"]},
                         "crds": {"install": False}})
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    deploy = _one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    c = _container(docs)
    assert c["image"] == ("ghcr.io/secretops/secretops-controller:0.1.0@sha256:" + "ab" * 32)
    # the args are flags the controller accepts, with the values chosen
    for var in ("SECRETOPS_WATCH_NAMESPACES", "POD_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    config = config_from(parser().parse_args(c["args"]))
    assert config.lease_name == "my-lease"
    assert config.leader_elect
    [core] = [d for d in docs if d["kind"] == "Role" and
              d["metadata"]["name"] == "secretops-controller"]
    assert core["rules"][1]["resourceNames"] == ["my-lease"]
    tokens = [r for d in docs for r in d.get("rules") or []
              if "serviceaccounts/token" in r["resources"]]
    assert tokens == [{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                       "resourceNames": ["vault-a", "vault-b"], "verbs": ["create"]}]
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == deploy["spec"]["selector"]
    monitor = _one(docs, "ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    assert wanted <= _one(docs, "Service")["metadata"]["labels"].items()  # selects the Service
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["honorLabels"] is True
    policy = _one(docs, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert policy[-1] == {"ipBlock": {"cidr": "192.0.2.10/32"}}
    dashboard = _one(docs, "ConfigMap")
    assert json.loads(dashboard["data"]["secretops.json"])["uid"] == "secretops-controller"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"

    single = render_chart({"leaderElection": {"enabled": False}})
    assert "--no-leader-elect" in _container(single)["args"]


def test_namespaced_mode_watches_only_its_namespaces_labels() -> None:
    """Namespaced, with ClusterSecretStores: the namespaces rule of their ClusterRole names the
    watched namespaces (each is watched by a metadata.name field selector, authorized as a
    request for it); cluster-wide, it names none."""
    def rule(docs: list[dict[str, Any]]) -> dict[str, Any]:
        [role] = [d for d in docs if d["kind"] == "ClusterRole"
                  and d["metadata"]["name"] == "secretops-cluster-secret-stores"]
        [out] = [r for r in role["rules"] if r["resources"] == ["namespaces"]]
        return dict(out)
    assert rule(render_chart(NAMESPACED))["resourceNames"] == ["team-a", "team-b"]
    assert "resourceNames" not in rule(render_chart())


def test_chart_applies_to_the_emulator_strictly(k8s: K8s) -> None:
    for ns in (NAMESPACE, "team-a", "team-b"):  # helm install --create-namespace; tenants'
        k8s.kubectl("create", "namespace", ns)
    k8s.kubectl("apply", "--validate=strict", "-f", str(MONITORING_CRDS))
    for crd in ("servicemonitors", "prometheusrules"):
        k8s.kubectl("wait", "--for=condition=Established", f"crd/{crd}.monitoring.coreos.com")
    for values in (EVERYTHING, {**EVERYTHING, **NAMESPACED}):
        text = render_chart_text(values)
        out = k8s.kubectl("apply", "--validate=strict", "--server-side=false", "-f", "-",
                          input=text).stdout
        docs = render_chart(values)
        for doc in docs:
            if doc["kind"] == "CustomResourceDefinition":
                k8s.kubectl("wait", "--for=condition=Established",
                            f"crd/{doc['metadata']['name']}")
        listed = json.loads(k8s.kubectl("get", "-f", "-", "-o", "json", input=text).stdout)
        assert len(listed["items"]) == len(docs), out
        again = k8s.kubectl("apply", "--validate=strict", "-f", "-", input=text).stdout
        # applying again changes nothing. A PodDisruptionBudget always reports "configured":
        # its selector's patch strategy is "replace", so kubectl's patch is never empty (a real
        # API server does the same; the object stays as it was)
        changed = [line for line in again.splitlines() if not line.endswith(" unchanged")]
        assert changed == ["poddisruptionbudget.policy/secretops-controller configured"], again


def test_strict_validation_refuses_an_unknown_field(k8s: K8s) -> None:
    """The check above can fail: a misspelt field of a custom resource is refused."""
    k8s.kubectl("apply", "-f", str(MONITORING_CRDS))
    k8s.kubectl("wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com")
    if k8s.request("GET", f"/api/v1/namespaces/{NAMESPACE}")[0] == 404:
        k8s.kubectl("create", "namespace", NAMESPACE)
    [rule] = [d for d in render_chart({"prometheusRule": {"enabled": True}})
              if d["kind"] == "PrometheusRule"]
    rule["metadata"]["name"] = "misspelt"
    rule["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    proc = k8s.kubectl("apply", "--validate=strict", "-f", "-", input=yaml.safe_dump(rule),
                       check=False)
    assert proc.returncode != 0
    assert "fro" in proc.stderr, proc.stderr
