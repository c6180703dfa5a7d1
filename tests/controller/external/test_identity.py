"""The read identity of a store (docs/external-secrets.md, "Shared reads across stores"): stores
share cache entries and a provider exactly when their provider, settings and credentials are
equal — whatever their kind, namespace, name or the Secrets the credentials came from — and
never when any credential or setting differs."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Mapping
from typing import Any

import pytest
from secretops_controller.external import stores

from tests.helpers import CANARY

SERVER = "http://127.0.0.1:1"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def store(ns: str, provider: dict[str, Any], kind: str = "SecretStore",
          name: str = "vault") -> dict[str, Any]:
    meta = {"name": name} if kind == stores.CLUSTER_KIND else {"name": name, "namespace": ns}
    return {"kind": kind, "metadata": meta, "spec": {"provider": copy.deepcopy(provider)}}


def key(obj: Mapping[str, Any], secrets: Mapping[tuple[str, str], dict[str, str]],
        es_ns: str | None = None, **kw: Any) -> str:
    async def get(ns: str, name: str) -> Mapping[str, Any] | None:
        data = secrets.get((ns, name))
        return None if data is None else {"data": {k: _b64(v) for k, v in data.items()}}

    def tokens(ns: str, name: str, audiences: tuple[str, ...]) -> str:
        return f"jwt-of-{ns}-{name}"

    resolved = asyncio.run(stores.resolve(obj, es_ns or obj["metadata"].get("namespace"), get,
                                          request_token=tokens, **kw))
    return resolved.key.fingerprint


def token_vault(secret: str = "vault-token", **settings: Any) -> dict[str, Any]:
    return {"vault": {"server": SERVER, **settings,
                      "auth": {"tokenSecretRef": {"name": secret, "key": "token"}}}}


NAMESPACES = [f"team-{i}" for i in range(5)]


def test_namespaced_stores_with_the_same_token_share_one_identity() -> None:
    secrets = {(ns, "vault-token"): {"token": CANARY} for ns in NAMESPACES}
    keys = {key(store(ns, token_vault()), secrets) for ns in NAMESPACES}
    assert len(keys) == 1
    # the Secret the token comes from, the store's name and kind do not matter: the reads do
    secrets[("team-x", "other-name")] = {"token": CANARY}
    assert key(store("team-x", token_vault("other-name"), name="bao"), secrets) in keys
    secrets[("shared", "vault-token")] = {"token": CANARY}
    cluster = token_vault()
    cluster["vault"]["auth"]["tokenSecretRef"]["namespace"] = "shared"
    assert key(store("", cluster, stores.CLUSTER_KIND), secrets, "team-0") in keys
    # the identity is a keyed hash: nothing of the token in it
    [k] = keys
    assert CANARY not in k and CANARY[::-1] not in k


def test_a_different_token_is_a_different_identity() -> None:
    secrets = {("team-a", "vault-token"): {"token": "token-of-a"},
               ("team-b", "vault-token"): {"token": "token-of-b"}}
    assert key(store("team-a", token_vault()), secrets) != \
        key(store("team-b", token_vault()), secrets)


def test_a_cluster_store_read_per_namespace_shares_only_equal_credentials() -> None:
    """A ClusterSecretStore whose token Secret is read in each ExternalSecret's namespace: one
    identity per distinct token, however many namespaces use it."""
    secrets = {("a", "vault-token"): {"token": "t1"}, ("b", "vault-token"): {"token": "t1"},
               ("c", "vault-token"): {"token": "t2"}}
    cluster = store("", token_vault(), stores.CLUSTER_KIND)
    a, b, c = (key(cluster, secrets, ns) for ns in "abc")
    assert a == b != c


@pytest.mark.parametrize("change", [
    {"server": "http://127.0.0.1:2"}, {"path": "kv"}, {"namespace": "tenant"},
])
def test_every_vault_setting_is_part_of_the_identity(change: dict[str, str]) -> None:
    secrets = {(ns, "vault-token"): {"token": "t"} for ns in ("a", "b")}
    assert key(store("a", token_vault()), secrets) != \
        key(store("b", token_vault(**change)), secrets)


def approle(role_id: str = "role-1", mount: str = "approle") -> dict[str, Any]:
    return {"vault": {"server": SERVER, "auth": {"appRole": {
        "path": mount, "roleId": role_id, "secretRef": {"name": "ar", "key": "secret-id"}}}}}


def test_approle_identity_is_the_role_id_secret_id_and_mount() -> None:
    secrets = {(ns, "ar"): {"secret-id": "sid-1"} for ns in NAMESPACES}
    secrets[("other", "ar")] = {"secret-id": "sid-2"}
    same = {key(store(ns, approle()), secrets) for ns in NAMESPACES}
    assert len(same) == 1
    assert key(store("other", approle()), secrets) not in same  # another secret id
    assert key(store("team-0", approle("role-2")), secrets) not in same
    assert key(store("team-0", approle(mount="approle-b")), secrets) not in same


def kubernetes(role: str = "r", **auth: Any) -> dict[str, Any]:
    return {"vault": {"server": SERVER, "auth": {"kubernetes": {"role": role, **auth}}}}


def test_service_accounts_of_two_namespaces_never_share() -> None:
    """Same role, same account name, two namespaces: two accounts, whose Vault policies may be
    templated on the account's namespace — never one cache."""
    sa = {"serviceAccountRef": {"name": "app", "audiences": ["vault"]}}
    a, b = (key(store(ns, kubernetes(**sa)), {}) for ns in ("team-a", "team-b"))
    assert a != b
    assert a == key(store("team-a", kubernetes(**sa), name="another"), {})
    assert a != key(store("team-a", kubernetes("r2", **sa)), {})
    assert a != key(store("team-a", kubernetes(mountPath="k8s-2", **sa)), {})
    other_audience = {"serviceAccountRef": {"name": "app", "audiences": ["other"]}}
    assert a != key(store("team-a", kubernetes(**other_audience)), {})


def test_the_controllers_own_token_is_an_identity_of_its_own(tmp_path: Any) -> None:
    own = tmp_path / "token"
    own.write_text("controller-jwt")
    cluster = [store("", kubernetes(), stores.CLUSTER_KIND, name=n) for n in ("x", "y")]
    x, y = (key(s, {}, "team-a", own_token_file=str(own)) for s in cluster)
    assert x == y  # two ClusterSecretStores logging in as the controller, same role
    ref = kubernetes(secretRef={"name": "sa", "key": "token"})
    assert x != key(store("team-a", ref), {("team-a", "sa"): {"token": "controller-jwt"}})


def aws(service: str = "SecretsManager", region: str = "us-east-1", **extra: Any
        ) -> dict[str, Any]:
    return {"aws": {"service": service, "region": region, **extra, "auth": {"secretRef": {
        "accessKeyIDSecretRef": {"name": "aws", "key": "id"},
        "secretAccessKeySecretRef": {"name": "aws", "key": "secret"}}}}}


def test_aws_identity_is_the_key_service_region_endpoint_and_role() -> None:
    secrets = {(ns, "aws"): {"id": "AKIA1", "secret": CANARY} for ns in NAMESPACES}
    same = {key(store(ns, aws()), secrets) for ns in NAMESPACES}
    assert len(same) == 1
    secrets[("x", "aws")] = {"id": "AKIA1", "secret": "another secret key"}
    assert key(store("x", aws()), secrets) not in same
    for other in (aws("ParameterStore"), aws(region="eu-west-1"),
                  aws(endpoint="http://127.0.0.1:9"), aws(role="arn:aws:iam::1:role/r")):
        assert key(store("team-0", other), secrets) not in same, other
    # without a key: the controller's own default chain, one identity for every such store
    chain = {"aws": {"service": "SecretsManager", "region": "us-east-1"}}
    assert key(store("team-0", chain), {}) == key(store("team-1", chain), {})
    assert key(store("team-0", chain), {}) not in same
