"""The AWS providers against the real moto server, requests counted by a proxy."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from secretops_controller.external.provider import (
    ErrorKind,
    FindRef,
    ProviderError,
    RemoteRef,
    RemoteValue,
)
from secretops_controller.external.providers.aws import (
    AwsConfig,
    AwsCredentials,
    ParameterStoreProvider,
    SecretsManagerProvider,
    provider,
)

from tests.controller.external.proxy import CountingProxy
from tests.fixtures.moto import ACCOUNT, REGION
from tests.helpers import CANARY

pytest.importorskip("boto3")
KEYS = AwsCredentials("testing", "testing")
SM = "secretsmanager.BatchGetSecretValue"


def admin(moto_server: str, service: str) -> Any:
    import boto3

    make: Any = boto3.client
    return make(service, region_name=REGION, endpoint_url=moto_server,
                aws_access_key_id="testing", aws_secret_access_key="testing")


def sm_config(url: str, **kw: Any) -> AwsConfig:
    return AwsConfig("SecretsManager", REGION, endpoint=url, credentials=KEYS, **kw)


def test_secrets_manager_reads_are_batched_twenty_per_call(
        moto_server: str, moto_proxy: CountingProxy) -> None:
    sm = admin(moto_server, "secretsmanager")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/s{i}" for i in range(45)]
    for i, n in enumerate(names):
        sm.create_secret(Name=n, SecretString=json.dumps({"i": i, "pw": CANARY}))
    sm.create_secret(Name=f"{prefix}/bin", SecretBinary=b"\x00\x01")
    p = provider(sm_config(moto_proxy.url))
    assert isinstance(p, SecretsManagerProvider)
    refs = [RemoteRef(n) for n in names] + [RemoteRef(f"{prefix}/bin"), RemoteRef(f"{prefix}/no")]
    got = p.read_many(refs)
    assert moto_proxy.count(SM) == 3 and len(moto_proxy.requests) == 3  # 47 ids: 20 + 20 + 7
    first = got[RemoteRef(names[0])]
    assert isinstance(first, RemoteValue) and json.loads(bytes(first.value))["i"] == 0
    assert got[RemoteRef(f"{prefix}/bin")] == RemoteValue(
        b"\x00\x01", str(sm.describe_secret(SecretId=f"{prefix}/bin")["VersionIdsToStages"]
                         .popitem()[0]))
    no = got[RemoteRef(f"{prefix}/no")]
    assert isinstance(no, ProviderError) and no.kind == ErrorKind.NOT_FOUND
    assert CANARY not in repr(got) and CANARY not in str(no)
    # rotation (moto: drive it with PutSecretValue): versions see the new VersionId cheaply
    before = p.versions([RemoteRef(names[0])])[RemoteRef(names[0])]
    new = sm.put_secret_value(SecretId=names[0], SecretString="rotated")["VersionId"]
    assert before != new and p.versions([RemoteRef(names[0])]) == {RemoteRef(names[0]): new}
    # pinned versions: a stage, or uuid/<VersionId>
    pinned = p.read_many([RemoteRef(names[0], "AWSPREVIOUS"), RemoteRef(names[0], f"uuid/{new}")])
    assert pinned[RemoteRef(names[0], f"uuid/{new}")] == RemoteValue(b"rotated", new)
    prev = pinned[RemoteRef(names[0], "AWSPREVIOUS")]
    assert isinstance(prev, RemoteValue) and prev.version == before
    found = p.find(FindRef(f"{prefix}/s1", None))
    assert sorted(found) == sorted(n for n in names if n.startswith(f"{prefix}/s1"))
    p.close()


def test_parameter_store_reads_ten_per_call_and_versions_without_values(
        moto_server: str, moto_proxy: CountingProxy) -> None:
    ssm = admin(moto_server, "ssm")
    prefix = f"/t{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/p{i}" for i in range(25)]
    for n in names:
        ssm.put_parameter(Name=n, Value=f"{CANARY}-{n}", Type="SecureString")
    ssm.put_parameter(Name=names[0], Value="v2", Type="SecureString", Overwrite=True)
    p = provider(AwsConfig("ParameterStore", REGION, endpoint=moto_proxy.url, credentials=KEYS))
    assert isinstance(p, ParameterStoreProvider)
    refs = [RemoteRef(n) for n in names] + [RemoteRef(names[0], "1"), RemoteRef(f"{prefix}/no")]
    got = p.read_many(refs)
    assert moto_proxy.count("AmazonSSM.GetParameters") == 3  # 26 distinct names/versions: 10+10+7
    assert got[RemoteRef(names[0])] == RemoteValue(b"v2", "2")
    assert got[RemoteRef(names[0], "1")] == RemoteValue(f"{CANARY}-{names[0]}".encode(), "1")
    no = got[RemoteRef(f"{prefix}/no")]
    assert isinstance(no, ProviderError) and no.kind == ErrorKind.NOT_FOUND
    moto_proxy.reset()
    v = p.versions([RemoteRef(n) for n in names])
    assert v[RemoteRef(names[0])] == "2" and v[RemoteRef(names[1])] == "1"
    # no values, no decryption; moto pages DescribeParameters by 10 whatever MaxResults says
    # (real AWS: up to 50 per page), so 25 names take 3 calls here and 1 on AWS
    assert moto_proxy.count("AmazonSSM.DescribeParameters") == 3
    assert moto_proxy.count() == 3
    found = p.find(FindRef(prefix, r"p1\d$"))
    assert sorted(found) == sorted(f"{prefix}/p{i}" for i in range(10, 20))


def test_default_chain_assumed_role_outage_and_bad_keys(
        moto_server: str, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    sm = admin(moto_server, "secretsmanager")
    name = f"t{uuid.uuid4().hex[:8]}/x"
    sm.create_secret(Name=name, SecretString=CANARY)
    # no auth: boto3's default chain (here the environment, as IRSA's web identity would be)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    chain = provider(AwsConfig("SecretsManager", REGION, endpoint=moto_proxy.url))
    assert isinstance(chain.read_many([RemoteRef(name)])[RemoteRef(name)], RemoteValue)
    # an assumed role: one AssumeRole, its credentials reused
    iam = admin(moto_server, "iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"r{uuid.uuid4().hex[:8]}",
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    moto_proxy.reset()
    assumed = provider(sm_config(moto_proxy.url, role=role))
    for _ in range(3):
        assert isinstance(assumed.read_many([RemoteRef(name)])[RemoteRef(name)], RemoteValue)
    assert sum(1 for m, _, op in moto_proxy.requests if m == "POST" and not op) == 1  # STS
    assert moto_proxy.count(SM) == 3
    # the endpoint cut off: Unavailable, within the bounded timeout, without the value
    moto_proxy.cut = True
    fast = provider(sm_config(moto_proxy.url, timeout=2.0, max_attempts=1))
    with pytest.raises(ProviderError) as e:
        fast.read_many([RemoteRef(name)])
    assert e.value.kind == ErrorKind.UNAVAILABLE and CANARY not in str(e.value)
    moto_proxy.cut = False
    assert isinstance(fast.read_many([RemoteRef(name)])[RemoteRef(name)], RemoteValue)
