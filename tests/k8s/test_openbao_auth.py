"""OpenBao's Kubernetes and JWT auth methods, end to end against the emulator (real OpenBao).

* Kubernetes auth: ``kubernetes_host`` is the emulator over HTTPS (its throwaway CA is
  ``kubernetes_ca_cert``; OpenBao refuses a config without a CA, even for ``http://``), the
  reviewer is a service account's TokenRequest-issued token, and OpenBao asks the emulator's
  TokenReview about each login JWT.
* JWT auth: OpenBao finds the public key itself through the emulator's
  ``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` (no TokenReview).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.k8s import K8s, assert_least_privilege
from tests.fixtures.openbao import OpenBao

hvac = pytest.importorskip("hvac")

AUTH_DELEGATOR = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: token-reviewer}
rules:
  - apiGroups: [authentication.k8s.io]
    resources: [tokenreviews]
    verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: openbao-token-reviewer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: token-reviewer}
subjects:
  - {kind: ServiceAccount, name: openbao, namespace: NS}
"""


@pytest.fixture
def ns(k8s_tls: K8s) -> str:
    name = f"v-{uuid.uuid4().hex[:10]}"
    status, _, _ = k8s_tls.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201
    return name


def _policy(client: Any, name: str) -> None:
    client.sys.create_or_update_policy(
        name=name, policy='path "secret/data/app/*" { capabilities = ["read"] }'
    )


def test_kubernetes_auth_login_goes_through_token_review(
    openbao: OpenBao, k8s_tls: K8s, ns: str
) -> None:
    k8s = k8s_tls
    assert k8s.ca_file is not None
    client = openbao.client()
    mount = f"k8s-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("kubernetes", path=mount)
    client.write(
        f"auth/{mount}/config",
        kubernetes_host=k8s.url,
        kubernetes_ca_cert=k8s.ca_file.read_text(),
        token_reviewer_jwt=k8s.token(ns, "openbao"),
        disable_local_ca_jwt=True,
    )
    _policy(client, f"{ns}-reader")
    client.write(
        f"auth/{mount}/role/app",
        bound_service_account_names=["app"],
        bound_service_account_namespaces=[ns],
        audience="vault",
        token_policies=[f"{ns}-reader"],
        token_ttl="10m",
    )
    k8s.reset_audit()

    app = k8s.service_account(ns, "app")
    login = client.auth.kubernetes.login(
        role="app", jwt=k8s.token(ns, "app", audiences=["vault"]), mount_point=mount
    )
    auth = login["auth"]
    assert auth["client_token"] and f"{ns}-reader" in auth["token_policies"]
    assert auth["metadata"]["service_account_name"] == "app"
    assert auth["metadata"]["service_account_namespace"] == ns
    assert auth["metadata"]["service_account_uid"] == app["metadata"]["uid"]
    user = openbao.client(token=auth["client_token"])
    assert f"{ns}-reader" in user.auth.token.lookup_self()["data"]["policies"]

    # another service account of the namespace is not bound to the role
    with pytest.raises(hvac.exceptions.Forbidden, match="service account name not authorized"):
        client.auth.kubernetes.login(
            role="app", jwt=k8s.token(ns, "other", audiences=["vault"]), mount_point=mount
        )
    # a token for another audience than the role's is refused
    with pytest.raises(hvac.exceptions.VaultError, match="invalid audience"):
        client.auth.kubernetes.login(role="app", jwt=k8s.token(ns, "app"), mount_point=mount)
    # a token whose signature is not the cluster's: the TokenReview says not authenticated
    good = k8s.token(ns, "app", audiences=["vault"])
    head, payload, _ = good.split(".")
    forged = f"{head}.{payload}.{'A' * 342}"
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        client.auth.kubernetes.login(role="app", jwt=forged, mount_point=mount)
    # once the service account is deleted, its tokens no longer log in
    token = k8s.token(ns, "app", audiences=["vault"])
    assert k8s.request("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/app")[0] == 200
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        client.auth.kubernetes.login(role="app", jwt=token, mount_point=mount)

    # OpenBao's calls, made with the reviewer's token, are audited and need only token review
    calls = k8s.audit(f"{ns}/openbao")
    assert calls and {(c["verb"], c["apiGroup"], c["resource"]) for c in calls} == {
        ("create", "authentication.k8s.io", "tokenreviews")
    }
    assert_least_privilege(calls, AUTH_DELEGATOR.replace("NS", ns))


def test_jwt_auth_validates_tokens_with_the_published_public_key(
    openbao: OpenBao, k8s_tls: K8s, ns: str
) -> None:
    k8s = k8s_tls
    assert k8s.ca_file is not None
    client = openbao.client()
    mount = f"jwt-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("jwt", path=mount)
    client.write(
        f"auth/{mount}/config",
        oidc_discovery_url=k8s.url,  # the emulator's issuer is its own URL
        oidc_discovery_ca_pem=k8s.ca_file.read_text(),
    )
    _policy(client, f"{ns}-jwt")
    client.write(
        f"auth/{mount}/role/app",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["vault"],
        bound_subject=f"system:serviceaccount:{ns}:app",
        token_policies=[f"{ns}-jwt"],
    )
    login = client.write(
        f"auth/{mount}/login", role="app", jwt=k8s.token(ns, "app", audiences=["vault"])
    )
    assert f"{ns}-jwt" in login["auth"]["token_policies"]
    with pytest.raises(hvac.exceptions.VaultError, match="invalid subject"):
        client.write(
            f"auth/{mount}/login", role="app", jwt=k8s.token(ns, "other", audiences=["vault"])
        )
