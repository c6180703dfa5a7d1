"""Service-account tokens: TokenRequest, TokenReview, issuer discovery, bearer authentication.

Each expectation is what kube-apiserver does (``authentication.k8s.io/v1``, the
``serviceaccounts/token`` subresource, ``/.well-known/openid-configuration``), one test per
behaviour. OpenBao logging in with these tokens is in ``test_openbao_auth.py``.
"""

from __future__ import annotations

import base64
import calendar
import json
import time
import uuid
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.k8s import K8s

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
GROUPS = ["system:serviceaccounts", "system:serviceaccounts:{ns}", "system:authenticated"]


@pytest.fixture
def ns(k8s: K8s) -> str:
    name = f"a-{uuid.uuid4().hex[:10]}"
    assert k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


def token_request(
    k8s: K8s, ns: str, name: str, **spec: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return k8s.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", body)


def review(k8s: K8s, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    status, out, _ = k8s.request(
        "POST",
        REVIEWS,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
    )
    assert status == 201 and out["kind"] == "TokenReview", out
    return dict(out["status"])


def decode(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def verify_with_jwks(token: str, jwks: dict[str, Any]) -> None:
    head, payload, sig = token.split(".")
    key = next(k for k in jwks["keys"] if k["kid"] == decode(head)["kid"])
    public = rsa.RSAPublicNumbers(b64int(key["e"]), b64int(key["n"])).public_key()
    public.verify(
        base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)),
        f"{head}.{payload}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def issuer(k8s: K8s) -> str:
    return str(k8s.request("GET", "/.well-known/openid-configuration")[1]["issuer"])


# ---- TokenRequest --------------------------------------------------------------------------------
def test_token_request_issues_an_rs256_jwt_with_the_apiservers_claims(k8s: K8s, ns: str) -> None:
    sa = k8s.service_account(ns, "ctrl")
    status, out, _ = token_request(k8s, ns, "ctrl", audiences=["vault"], expirationSeconds=1200)
    assert status == 201
    assert out["kind"] == "TokenRequest" and out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["metadata"]["name"] == "ctrl" and out["metadata"]["namespace"] == ns
    assert out["spec"]["audiences"] == ["vault"] and out["spec"]["expirationSeconds"] == 1200
    token = out["status"]["token"]
    head, claims = decode(token.split(".")[0]), decode(token.split(".")[1])
    assert head["alg"] == "RS256" and head["kid"]
    assert claims["iss"] == issuer(k8s)
    assert claims["sub"] == f"system:serviceaccount:{ns}:ctrl"
    assert claims["aud"] == ["vault"]
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 1200
    assert abs(claims["iat"] - time.time()) < 60 and uuid.UUID(claims["jti"])
    assert claims["kubernetes.io"] == {
        "namespace": ns,
        "serviceaccount": {"name": "ctrl", "uid": sa["metadata"]["uid"]},
    }
    expires = calendar.timegm(
        time.strptime(out["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    )
    assert expires == claims["exp"]


def test_token_request_defaults_to_the_api_audience_and_one_hour(k8s: K8s, ns: str) -> None:
    k8s.service_account(ns, "ctrl")
    status, out, _ = token_request(k8s, ns, "ctrl")
    assert status == 201
    claims = decode(out["status"]["token"].split(".")[1])
    assert claims["aud"] == [issuer(k8s)] and out["spec"]["audiences"] == [issuer(k8s)]
    assert out["spec"]["expirationSeconds"] == 3600 and claims["exp"] - claims["iat"] == 3600


def test_token_request_for_a_missing_service_account_is_404(k8s: K8s, ns: str) -> None:
    status, out, _ = token_request(k8s, ns, "nobody")
    assert status == 404 and out["reason"] == "NotFound"
    assert out["message"] == 'serviceaccounts "nobody" not found'


def test_token_request_shorter_than_ten_minutes_is_422(k8s: K8s, ns: str) -> None:
    k8s.service_account(ns, "ctrl")
    status, out, _ = token_request(k8s, ns, "ctrl", expirationSeconds=599)
    assert status == 422 and out["reason"] == "Invalid"
    assert out["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    assert "may not specify a duration less than 10 minutes" in out["message"]


def test_the_kubernetes_client_requests_and_reviews_tokens(k8s: K8s, ns: str) -> None:
    api = k8s.client()
    k8s.service_account(ns, "ctrl")
    issued = client.CoreV1Api(api).create_namespaced_service_account_token(
        "ctrl",
        ns,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["vault"], expiration_seconds=900)
        ),
    )
    assert issued.status.token and issued.status.expiration_timestamp
    reviewed = client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=issued.status.token, audiences=["vault"])
        )
    )
    assert reviewed.status.authenticated is True
    assert reviewed.status.user.username == f"system:serviceaccount:{ns}:ctrl"
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api).create_namespaced_service_account_token(
            "nobody",
            ns,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        )
    assert missing.value.status == 404


# ---- TokenReview ---------------------------------------------------------------------------------
def test_token_review_authenticates_a_service_account_token(k8s: K8s, ns: str) -> None:
    uid = k8s.service_account(ns, "ctrl")["metadata"]["uid"]
    status = review(k8s, k8s.token(ns, "ctrl"))
    assert status["authenticated"] is True
    user = status["user"]
    assert user["username"] == f"system:serviceaccount:{ns}:ctrl" and user["uid"] == uid
    assert user["groups"] == [g.format(ns=ns) for g in GROUPS]
    assert status["audiences"] == [issuer(k8s)]  # no audiences asked: the API's


def test_token_review_intersects_the_audiences(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl", audiences=["a", "b"])
    assert review(k8s, token, ["b", "c"])["audiences"] == ["b"]
    refused = review(k8s, token, ["c"])
    assert not refused.get("authenticated") and refused["user"] == {}
    assert "invalid bearer token" in refused["error"] and "audiences" in refused["error"]
    assert not review(k8s, token).get("authenticated")  # nor the API's own audience


def test_token_review_refuses_a_forged_token(k8s: K8s, ns: str) -> None:
    head, payload, sig = k8s.token(ns, "ctrl").split(".")
    other = dict(decode(payload), sub=f"system:serviceaccount:{ns}:admin")
    forged = (
        f"{head}.{base64.urlsafe_b64encode(json.dumps(other).encode()).decode().rstrip('=')}.{sig}"
    )
    status = review(k8s, forged)
    assert not status.get("authenticated") and "invalid bearer token" in status["error"]
    assert not review(k8s, "not-a-jwt").get("authenticated")


def test_token_review_refuses_an_expired_token(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl", expiration_seconds=600)
    assert review(k8s, token)["authenticated"] is True
    k8s.advance_clock(601)  # the emulator's token clock: no waiting
    status = review(k8s, token)
    assert not status.get("authenticated") and "has expired" in status["error"]
    assert review(k8s, k8s.token(ns, "ctrl"))["authenticated"] is True  # new tokens are fine


def test_token_review_refuses_tokens_of_a_deleted_or_recreated_account(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl")
    path = f"/api/v1/namespaces/{ns}/serviceaccounts"
    assert k8s.request("DELETE", f"{path}/ctrl")[0] == 200
    status = review(k8s, token)
    assert not status.get("authenticated") and "not found" in status["error"]
    k8s.service_account(ns, "ctrl")  # same name, new uid
    status = review(k8s, token)
    assert not status.get("authenticated") and "does not match claim" in status["error"]


def test_token_review_is_create_only(k8s: K8s) -> None:
    status, out, _ = k8s.request("GET", REVIEWS)
    assert status == 405 and out["reason"] == "MethodNotAllowed"


# ---- discovery -----------------------------------------------------------------------------------
def test_discovery_lists_token_review_and_the_token_and_proxy_subresources(k8s: K8s) -> None:
    _, groups, _ = k8s.request("GET", "/apis")
    assert "authentication.k8s.io" in {g["name"] for g in groups["groups"]}
    _, auth, _ = k8s.request("GET", "/apis/authentication.k8s.io/v1")
    entries = {r["name"]: r for r in auth["resources"]}
    assert entries["tokenreviews"]["verbs"] == ["create"]
    assert entries["tokenreviews"]["kind"] == "TokenReview"
    assert not entries["tokenreviews"]["namespaced"]
    _, core, _ = k8s.request("GET", "/api/v1")
    entries = {r["name"]: r for r in core["resources"]}
    assert entries["serviceaccounts/token"]["kind"] == "TokenRequest"
    assert entries["serviceaccounts/token"]["verbs"] == ["create"]
    assert entries["services/proxy"]["kind"] == "ServiceProxyOptions"


def test_issuer_discovery_publishes_the_key_that_verifies_tokens(k8s: K8s, ns: str) -> None:
    status, config, _ = k8s.request("GET", "/.well-known/openid-configuration")
    assert status == 200
    assert config["jwks_uri"] == f"{config['issuer']}/openid/v1/jwks"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    status, jwks, headers = k8s.request("GET", "/openid/v1/jwks")
    assert status == 200 and headers["Content-Type"].startswith("application/jwk-set+json")
    assert jwks["keys"][0]["kty"] == "RSA" and jwks["keys"][0]["use"] == "sig"
    token = k8s.token(ns, "ctrl")
    verify_with_jwks(token, jwks)
    head, payload, sig = token.split(".")
    with pytest.raises(InvalidSignature):
        verify_with_jwks(f"{head}.{payload}x.{sig}", jwks)


# ---- bearer authentication of API requests -------------------------------------------------------
def test_a_service_account_token_authenticates_api_requests(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl")
    status, out, _ = k8s.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {}, token=token
    )
    assert status == 201
    assert out["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:ctrl"
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=token)[0] == 200


def test_an_invalid_token_of_the_cluster_is_401(k8s: K8s, ns: str) -> None:
    vault_only = k8s.token(ns, "ctrl", audiences=["vault"])  # not for the API
    status, out, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=vault_only)
    assert status == 401 and out["reason"] == "Unauthorized" and out["code"] == 401
    head, payload, _ = k8s.token(ns, "ctrl").split(".")
    status, _, _ = k8s.request(
        "GET", f"/api/v1/namespaces/{ns}/secrets", token=f"{head}.{payload}.AAAA"
    )
    assert status == 401
    # other credentials (the kubeconfig's admin token) are the test's admin
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets", token="emulator-admin")[0] == 200
