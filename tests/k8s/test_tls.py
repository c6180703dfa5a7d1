"""The emulator's optional TLS mode (``--tls-dir``): HTTPS with a throwaway CA.

Clients trust it through the kubeconfig's ``certificate-authority-data``. kubectl sends a bearer
token only over HTTPS, so a kubectl run as a service account (audited) needs this mode; the
``kubernetes`` client and kopf send it over plain HTTP too.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.fixtures.k8s import K8s


def test_serves_https_with_its_ca_and_refuses_untrusting_clients(k8s_tls: K8s) -> None:
    assert k8s_tls.url.startswith("https://127.0.0.1:") and k8s_tls.ca_file is not None
    assert k8s_tls.request("GET", "/readyz")[0] == 200
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(
            f"{k8s_tls.url}/readyz", timeout=5, context=ssl.create_default_context()
        )
    names = client.CoreV1Api(k8s_tls.client()).list_namespace().items
    assert "default" in {n.metadata.name for n in names}


def test_kubectl_as_a_service_account_is_audited(k8s_tls: K8s, tmp_path: Path) -> None:
    ns = f"tls-{uuid.uuid4().hex[:8]}"
    config = k8s_tls.kubeconfig_for(ns, "ctrl", tmp_path / "sa-kubeconfig")
    k8s_tls.kubectl("--kubeconfig", str(config), "get", "secrets", "-o", "name")
    calls = k8s_tls.audit(f"{ns}/ctrl")
    assert ("list", "", "secrets", ns) in {
        (c["verb"], c["apiGroup"], c["resource"], c["namespace"]) for c in calls
    }
    # kubectl's discovery calls are recorded as non-resource URLs
    assert any(c["nonResourceURL"] and c["path"] == "/api" for c in calls)
