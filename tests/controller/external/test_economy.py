"""The scheduler against the real OpenBao and moto servers, every HTTP request counted by a proxy
at the provider side: 200 ExternalSecrets over 20 remote keys cost 20 Vault reads per refresh
cycle, one BatchGetSecretValue, two GetParameters — and one Vault login in all."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from secretops_controller.external.provider import (
    Provider,
    ProviderError,
    RemoteRef,
    RemoteValue,
    Result,
)
from secretops_controller.external.providers.aws import AwsConfig, AwsCredentials, provider
from secretops_controller.external.providers.vault import TokenAuth, VaultConfig, VaultProvider
from secretops_controller.external.scheduler import Scheduler, Settings, StoreKey, fingerprint

from tests.controller.external.conftest import Tenant, put
from tests.controller.external.proxy import CountingProxy
from tests.fixtures.moto import REGION
from tests.fixtures.openbao import OpenBao

OWNERS, KEYS, INTERVAL, CYCLES = 200, 20, 1.0, 3


async def poll(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)  # polling interval of a loop with a deadline


class Metered:
    """Wraps a provider: the proxy's request count during each ``read_many`` call."""

    def __init__(self, inner: Provider, proxy: CountingProxy) -> None:
        self.inner, self.proxy, self.name = inner, proxy, inner.name
        self.per_call: list[tuple[int, int]] = []  # (refs asked, HTTP requests made)
        self._lock = threading.Lock()  # calls are sequential here; the lock makes it certain

    def read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]:
        with self._lock:
            before = len(self.proxy.requests)
            out = self.inner.read_many(refs)
            self.per_call.append((len(refs), len(self.proxy.requests) - before))
            return out

    def versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]:
        return self.inner.versions(refs)

    def close(self) -> None:
        self.inner.close()


def measure(p: Provider, keys: list[str], proxy: CountingProxy) -> list[tuple[int, int]]:
    """Register OWNERS over KEYS, wait for the first sync and CYCLES refreshes; returns
    (refs, requests) per provider call, the first sync first."""
    store = StoreKey("SecretStore", "ns", "store", fingerprint("cfg", "creds"))
    sched = Scheduler(settings=Settings(jitter=0.1, coalesce_window=0.05))
    metered = Metered(p, proxy)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        try:
            for i in range(OWNERS):
                sched.register(("ns", f"es{i}"), store, metered, [RemoteRef(keys[i % KEYS])],
                               INTERVAL)

            def all_synced() -> bool:
                snaps = [sched.snapshot(("ns", f"es{i}")) for i in range(OWNERS)]
                return all(s is not None and s.complete and not s.errors for s in snaps)

            await poll(all_synced, "the first sync of every ExternalSecret")
            await poll(lambda: len(metered.per_call) > CYCLES, f"{CYCLES} refresh cycles")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return metered.per_call[:CYCLES + 1]


def test_vault_one_read_per_key_per_cycle_and_one_login(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant,
        approle: Any) -> None:
    _, auth = approle
    keys = [f"{tenant.prefix}/k{i}" for i in range(KEYS)]
    for k in keys:
        put(openbao, k, {"v": k})
    p = VaultProvider(VaultConfig(bao_proxy.url), auth)
    calls = measure(p, keys, bao_proxy)
    # the first sync: one AppRole login, then one GET per distinct key; then each refresh
    # cycle: one GET per key, no login, no metadata read, nothing else
    assert calls[0] == (KEYS, 1 + KEYS)
    assert calls[1:] == [(KEYS, KEYS)] * CYCLES
    assert p.logins == 1
    print(f"vault: {OWNERS} ExternalSecrets over {KEYS} keys, requests per call: {calls}")


def test_vault_upstream_change_reaches_every_subscriber_within_the_interval(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant) -> None:
    keys = [f"{tenant.prefix}/k{i}" for i in range(KEYS)]
    for k in keys:
        put(openbao, k, {"v": "1"})
    p = VaultProvider(VaultConfig(bao_proxy.url), TokenAuth(openbao.token))
    store = StoreKey("SecretStore", "ns", "store", fingerprint("cfg", "root"))
    sched = Scheduler(settings=Settings(jitter=0.1, coalesce_window=0.05))
    updated: set[Any] = set()

    async def main() -> None:
        sched._on_update = updated.update
        task = asyncio.create_task(sched.run())
        try:
            for i in range(OWNERS):
                sched.register(i, store, p, [RemoteRef(keys[i % KEYS])], INTERVAL)
            await poll(lambda: len(updated) == OWNERS, "first sync")
            updated.clear()
            put(openbao, keys[3], {"v": "2"})
            changed_at = time.monotonic()

            def rotated() -> bool:
                s = sched.snapshot(3)
                return s is not None and s.values[RemoteRef(keys[3])].version == "2"

            await poll(rotated, "the new version")
            took = time.monotonic() - changed_at
            # a refresh starts at most INTERVAL after the last one started, plus one batch of 20
            # reads (well under a second alone; the margin is for a loaded CI machine)
            assert took <= INTERVAL + 3.0, took
            # only the subscribers of the changed key are told
            assert updated == {i for i in range(OWNERS) if i % KEYS == 3}
            snap = sched.snapshot(23)
            assert snap is not None and snap.values[RemoteRef(keys[3])] == RemoteValue(
                {"v": "2"}, "2")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


@pytest.mark.parametrize("service", ["SecretsManager", "ParameterStore"])
def test_aws_reads_batched_per_cycle(moto_server: str, moto_proxy: CountingProxy,
                                     service: str) -> None:
    import boto3

    make: Any = boto3.client
    prefix = f"/t{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}/k{i}" for i in range(KEYS)]
    admin = make("secretsmanager" if service == "SecretsManager" else "ssm", region_name=REGION,
                 endpoint_url=moto_server, aws_access_key_id="t", aws_secret_access_key="t")
    for k in keys:
        if service == "SecretsManager":
            admin.create_secret(Name=k, SecretString=json.dumps({"k": k}))
        else:
            admin.put_parameter(Name=k, Value=k, Type="SecureString")
    p = provider(AwsConfig(service, REGION, endpoint=moto_proxy.url,  # type: ignore[arg-type]
                           credentials=AwsCredentials("testing", "testing")))
    calls = measure(p, keys, moto_proxy)
    per_call = 20 if service == "SecretsManager" else 10
    # 200 ExternalSecrets' first sync and each refresh: 1 BatchGetSecretValue / 2 GetParameters
    assert calls == [(KEYS, -(-KEYS // per_call))] * (CYCLES + 1)
    op = ("secretsmanager.BatchGetSecretValue" if service == "SecretsManager"
          else "AmazonSSM.GetParameters")
    assert moto_proxy.count(op) >= sum(n for _, n in calls)
    print(f"{service}: {OWNERS} ExternalSecrets over {KEYS} keys, requests per call: {calls}")
