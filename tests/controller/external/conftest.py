"""Fixtures for the external-secrets tests: counting proxies in front of the real OpenBao and
moto servers, a fake clock for the scheduler, and a fake provider that counts its calls."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from secretops_controller.external.provider import (
    ErrorKind,
    FindRef,
    ProviderError,
    RemoteRef,
    RemoteValue,
    Result,
)
from secretops_controller.external.providers.vault import AppRoleAuth
from secretops_controller.external.scheduler import Scheduler

from tests.controller.conftest import prepare_external
from tests.controller.external.proxy import CountingProxy
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao


@pytest.fixture(scope="module")
def cluster(k8s_emulator: K8s) -> K8s:
    """This module's emulator with the external half's CRDs (the controller not started)."""
    prepare_external(k8s_emulator)
    return k8s_emulator


@dataclass
class Tenant:
    prefix: str  # this test's KV paths live under it
    policy: str


@pytest.fixture
def tenant(openbao: OpenBao) -> Tenant:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    policy = f"{prefix}-read"
    openbao.client().sys.create_or_update_policy(name=policy, policy=f"""
path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list"] }}
path "secret/metadata/{prefix}" {{ capabilities = ["list"] }}
""")
    return Tenant(prefix, policy)


def put(openbao: OpenBao, path: str, data: dict[str, Any]) -> int:
    out = openbao.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret=data, mount_point="secret")
    return int(out["data"]["version"])


@pytest.fixture
def approle(openbao: OpenBao, tenant: Tenant) -> Iterator[tuple[str, AppRoleAuth]]:
    client = openbao.client()
    mount = f"ar-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("approle", path=mount)
    client.auth.approle.create_or_update_approle(
        "ctrl", token_policies=[tenant.policy], token_ttl="60s", token_max_ttl="600s",
        mount_point=mount)
    role_id = client.auth.approle.read_role_id("ctrl", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("ctrl", mount_point=mount)["data"][
        "secret_id"]
    yield mount, AppRoleAuth(role_id, secret_id, mount)
    client.sys.disable_auth_method(mount)


@pytest.fixture
def bao_proxy(openbao: OpenBao) -> Iterator[CountingProxy]:
    proxy = CountingProxy(openbao.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def moto_proxy(moto_server: str) -> Iterator[CountingProxy]:
    proxy = CountingProxy(moto_server).start()
    try:
        yield proxy
    finally:
        proxy.stop()


class FakeClock:
    """Time that moves only when the test says so; :meth:`advance` lets the scheduler settle."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def wait(self, timeout: float | None, wake: asyncio.Event) -> None:
        deadline = math.inf if timeout is None else self.t + timeout
        if deadline <= self.t:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (deadline, fut)
        self._waiters.append(entry)
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait([fut, woken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def advance(self, seconds: float, scheduler: Scheduler) -> None:
        self.t += seconds
        for deadline, fut in list(self._waiters):
            if deadline <= self.t and not fut.done():
                fut.set_result(None)
        await settle(scheduler)


async def settle(scheduler: Scheduler, rounds: int = 10_000) -> None:
    """Let the loop and workers run until nothing is queued or in flight (no real time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        if scheduler.quiet():
            return
    raise AssertionError("the scheduler did not settle")


async def direct(fn: Any, *args: Any) -> Any:
    """Provider calls inline (fake providers do no I/O): deterministic under the fake clock."""
    return fn(*args)


@dataclass
class FakeProvider:
    """A provider over a dict; records every call; ``fail`` makes calls raise."""

    values: dict[str, bytes | dict[str, Any]] = field(default_factory=dict)
    versions_: dict[str, int] = field(default_factory=dict)
    calls: list[list[RemoteRef]] = field(default_factory=list)
    fail: ErrorKind | None = None
    closed: bool = False
    name: str = "fake"

    def set(self, key: str, value: bytes | dict[str, Any]) -> None:
        self.values[key] = value
        self.versions_[key] = self.versions_.get(key, 0) + 1

    def read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]:
        self.calls.append(list(refs))
        if self.fail is not None:
            raise ProviderError(self.fail, f"fake: {self.fail.value}")
        out: dict[RemoteRef, Result] = {}
        for r in refs:
            if r.key in self.values:
                out[r] = RemoteValue(self.values[r.key], str(self.versions_[r.key]))
            else:
                out[r] = ProviderError(ErrorKind.NOT_FOUND, f"fake: {r.key}: not found")
        return out

    def versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]:
        return {r: str(self.versions_[r.key]) for r in refs}

    def find(self, query: FindRef) -> dict[str, RemoteValue]:
        self.calls.append([])
        return {k: RemoteValue(v, str(self.versions_[k])) for k, v in self.values.items()
                if k.startswith(query.path or "") and query.matches(k)}

    def close(self) -> None:
        self.closed = True

    @property
    def keys_read(self) -> int:
        return sum(len(c) for c in self.calls)
