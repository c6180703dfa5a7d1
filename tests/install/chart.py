"""Rendering the two installs for the tests: the Helm chart with real Helm, kustomize with the
real kubectl.

Helm is Helm 4's own Go SDK, loaded as a shared library by the ``helm-python-sdk`` wheel from
PyPI (``helm_python``): ``Chart.render`` is ``helm template`` (no cluster contacted),
``lint`` is ``helm lint``. No ``helm`` binary is downloaded.

:func:`normalise` removes what legitimately differs between the two installs of the same
choices, and nothing else:

* Helm's own labels (``app.kubernetes.io/instance``, ``managed-by``, ``version``,
  ``helm.sh/chart``) and the ``helm.sh/resource-policy: keep`` annotation of the CRDs;
* the Namespace: kustomize creates ``secretops-system``; a chart never creates its own release
  namespace (``helm install --create-namespace`` does, and Helm refuses a release whose
  namespace is also one of its objects);
* the order of a container's ``env``: a list merged by name (kustomize's components append
  their variables in the order they are listed; the chart writes them in a fixed order).
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from tests.fixtures.k8s import kubectl_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "secretops"
RELEASE = "secretops"
NAMESPACE = "secretops-system"
HELM_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
               "app.kubernetes.io/version", "helm.sh/chart")
HELM_ANNOTATIONS = ("helm.sh/resource-policy",)

# The same choices made both ways: a kustomize install and the chart's values.
CHOICES: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("crds", {}),
    "sealed-only": ("deploy/sealed-secrets", {"features": {"externalSecrets": False}}),
    "external-only": ("deploy/external-secrets", {"features": {"sealedSecrets": False}}),
    "namespaced": ("deploy/namespaced", {"rbac": {"watchNamespaces": ["team-a", "team-b"]},
                                         "features": {"clusterSecretStores": False}}),
    "sharded": ("deploy/sharded", {"replicas": 3, "shards": 6,
                                   "podDisruptionBudget": {"enabled": True}}),
}


def render_chart(values: dict[str, Any] | None = None,
                 namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """``helm template secretops charts/secretops -n NAMESPACE`` with ``values``: the objects."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=namespace,
                                 is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".txt"):  # NOTES.txt is printed, not applied
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def render_chart_text(values: dict[str, Any] | None = None,
                      namespace: str = NAMESPACE) -> str:
    """The rendered objects as one multi-document YAML stream (what ``kubectl apply -f`` takes)."""
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in render_chart(values,
                                                                              namespace))


def render_kustomize(install: str) -> list[dict[str, Any]]:
    """``kubectl kustomize <install>``: the objects."""
    out = subprocess.run([kubectl_binary(), "kustomize", str(ROOT / install)], check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return doc["kind"], meta.get("namespace", ""), meta["name"]


def normalise(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The objects by (kind, namespace, name), without what legitimately differs (above)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for original in docs:
        if original["kind"] == "Namespace":
            continue
        doc = copy.deepcopy(original)
        meta = doc["metadata"]
        for field, drop in (("labels", HELM_LABELS), ("annotations", HELM_ANNOTATIONS)):
            kept = {k: v for k, v in (meta.get(field) or {}).items() if k not in drop}
            meta.pop(field, None)
            if kept:
                meta[field] = kept
        pod = (doc.get("spec") or {}).get("template", {}).get("spec", {})
        for container in pod.get("containers") or []:
            if "env" in container:
                container["env"] = sorted(container["env"], key=lambda e: str(e["name"]))
        out[key(doc)] = doc
    return out
