"""A ClusterSecretStore's ``namespaceSelector`` conditions against the namespaces as watched,
in the controller's own process half (:class:`~.reconcile.ExternalSecrets`, not started: the
tests drive its handlers) against the Kubernetes API emulator and the real OpenBao.

What these pin: a label removal is never undone by a handling that started before it (the
re-registration takes the object's handling lock); one owner's failure to register again
neither skips the others nor leaves it syncing (revoked, retried); the namespace watch
outlives a failure of its ``on_change``, forgets namespaces a relist no longer has, and the
background tasks of a term are started again after a failure. The emulator's fault rules
(delays, failures) are the only seams.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from secretops_controller import kube
from secretops_controller.config import Config
from secretops_controller.context import Context
from secretops_controller.external import marks
from secretops_controller.external.namespaces import Namespaces
from secretops_controller.external.reconcile import ExternalSecrets
from secretops_controller.external.storeconfig import CLUSTER_KIND
from secretops_controller.keyring import KeyRing
from secretops_controller.metrics import Metrics

from tests.controller.external.conftest import Tenant
from tests.controller.external.test_reconcile import (
    API,
    MERGE,
    create,
    external,
    get,
    item,
    opaque,
    ready,
    token_for,
)
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao


@pytest.fixture
def ns(cluster: K8s) -> Iterator[str]:
    name = f"nsw-{uuid.uuid4().hex[:8]}"
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    cluster.clear_faults()


def context(k8s: K8s) -> Context:
    config = Config(kubeconfig=str(k8s.kubeconfig), retry_base_delay=0.05, retry_max_delay=0.3,
                    max_retries=1)
    api = kube.Kube(lambda: kube.login(config.kubeconfig))
    metrics = Metrics()
    return Context(config, api, KeyRing(api, config, metrics), metrics)


def run(k8s: K8s, test: Callable[[Context], Awaitable[None]]) -> None:
    async def main() -> None:
        ctx = context(k8s)
        try:
            await test(ctx)
        finally:
            await ctx.api.close()
    asyncio.run(main())


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` (in a thread: it may call the emulator) until true, or fail."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.05)


def label(k8s: K8s, ns: str, value: str | None) -> None:
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {"team": value}}},
                MERGE)


def cluster_store(k8s: K8s, openbao: OpenBao, tenant: Tenant, ns: str,
                  token_namespace: str | None) -> str:
    """A ClusterSecretStore for the namespaces labelled ``team=<tenant prefix>``, its token in
    Secret ``bao-token`` of ``token_namespace`` (None: of each ExternalSecret's namespace,
    read per registration)."""
    create(k8s, opaque(ns, "bao-token", token=token_for(openbao, tenant)))
    ref: dict[str, Any] = {"name": "bao-token", "key": "token"}
    if token_namespace is not None:
        ref["namespace"] = token_namespace
    name = f"css-{uuid.uuid4().hex[:8]}"
    create(k8s, {"kind": "ClusterSecretStore", "metadata": {"name": name}, "spec": {
        "provider": {"vault": {"server": openbao.url, "auth": {"tokenSecretRef": ref}}},
        "conditions": [{"namespaceSelector": {"matchLabels": {"team": tenant.prefix}}}]}})
    return name


def es_of(k8s: K8s, ns: str, name: str) -> dict[str, Any]:
    return get(k8s, f"{API}/namespaces/{ns}/externalsecrets/{name}")


def refused(k8s: K8s, ns: str, name: str) -> bool:
    return ready(k8s, ns, "externalsecrets", name).get("reason") == "StoreNotAllowed"


def test_a_label_removed_while_a_handling_is_in_flight_is_not_undone(
        cluster: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """The ExternalSecret's handling evaluates the labels, then waits for its credentials
    Secret (held up here); the label is removed meanwhile. The namespace's re-registration
    waits for that handling and refuses it after — before, it refused at once and the stale
    handling registered it again, syncing from a namespace the store no longer allows."""
    k8s = cluster
    label(k8s, ns, tenant.prefix)
    store = cluster_store(k8s, openbao, tenant, ns, token_namespace=None)
    create(k8s, external(ns, "es", store, [item("v", f"{tenant.prefix}/x", "v")],
                         kind=CLUSTER_KIND, interval="1h"))

    async def test(ctx: Context) -> None:
        half = ExternalSecrets(ctx)
        watch = asyncio.create_task(half.stores.namespaces.run())
        try:
            assert await half.stores.namespaces.labels(ns) == {"team": tenant.prefix}
            k8s.delay(1500, count=1, match={"verb": "get", "resource": "secrets",
                                            "namespace": ns, "name": "bao-token"})
            first = asyncio.create_task(half.external_event("ADDED", es_of(k8s, ns, "es")))
            await until(lambda: not k8s.faults()["rules"], "the credentials read held up")
            await asyncio.to_thread(label, k8s, ns, None)
            await first
            await until(lambda: refused(k8s, ns, "es"), "refused once unlabelled")
            await until(lambda: half.stores.namespaces.known.get(ns) == {}, "labels watched")
            assert half.owned[(ns, "es")].key is None
            assert half.scheduler.snapshot((ns, "es")) is None, "registered though refused"
        finally:
            watch.cancel()
            await half.stop()
    run(k8s, test)


def test_one_failed_reregistration_neither_skips_the_others_nor_keeps_syncing(
        cluster: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """The label removed, the first ExternalSecret cannot be read (500s): the next one is
    refused all the same (before: the first error ended the namespace's re-registration), and
    the first stops syncing until it is read — then it is refused too."""
    k8s = cluster
    label(k8s, ns, tenant.prefix)
    store = cluster_store(k8s, openbao, tenant, ns, token_namespace=ns)
    for name in ("es0", "es1"):
        create(k8s, external(ns, name, store, [item("v", f"{tenant.prefix}/x", "v")],
                             kind=CLUSTER_KIND, interval="1h"))

    async def test(ctx: Context) -> None:
        half = ExternalSecrets(ctx)
        watch = asyncio.create_task(half.stores.namespaces.run())
        try:
            await half.stores.namespaces.labels(ns)
            for name in ("es0", "es1"):
                await half.external_event("ADDED", es_of(k8s, ns, name))
                assert half.owned[(ns, name)].key is not None
            k8s.fail_next(1000, 500, match={"verb": "get", "resource": "externalsecrets",
                                            "namespace": ns, "name": "es0"})
            await asyncio.to_thread(label, k8s, ns, None)
            await until(lambda: refused(k8s, ns, "es1"), "the second one refused")
            await until(lambda: half.owned[(ns, "es0")].key is None, "the first revoked")
            assert half.scheduler.snapshot((ns, "es0")) is None
            assert (ns, "es0") not in half.marks  # its next event handles it again
            k8s.clear_faults()
            await until(lambda: refused(k8s, ns, "es0"), "the first refused once read")
        finally:
            watch.cancel()
            await half.stop()
    run(k8s, test)


def test_the_namespace_watch_outlives_a_failed_on_change_and_forgets_deleted_namespaces(
        cluster: K8s, ns: str, caplog: pytest.LogCaptureFixture) -> None:
    """``on_change`` raising (anything) is logged and the watch goes on: the next label change
    still counts (before: the watch task died, the labels stayed as they were for the term).
    A namespace deleted while the watch was away is gone after the relist."""
    k8s = cluster
    doomed = f"{ns}-gone"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": doomed}})

    async def test(ctx: Context) -> None:
        watched = Namespaces(ctx)
        calls: list[str] = []

        async def on_change(name: str) -> None:
            calls.append(name)
            if len(calls) == 1:
                raise RuntimeError("a bug in a registration")

        watched.on_change = on_change
        task = asyncio.create_task(watched.run())
        try:
            assert await watched.labels(doomed) == {}
            await asyncio.to_thread(label, k8s, ns, "a")
            await until(lambda: calls == [ns], "on_change called")
            await asyncio.to_thread(label, k8s, ns, "b")
            await until(lambda: watched.known.get(ns) == {"team": "b"}, "the next change")
            assert calls == [ns, ns] and not task.done()
            k8s.delay(1000, count=1, match={"verb": "list", "resource": "namespaces"})
            k8s.drop_watches()
            k8s.request("DELETE", f"/api/v1/namespaces/{doomed}")
            await until(lambda: doomed not in watched.known, "forgotten after the relist")
        finally:
            task.cancel()
    with caplog.at_level(logging.ERROR):
        run(k8s, test)
    assert "RuntimeError" in caplog.text and "a bug in a registration" not in caplog.text


def test_a_failed_background_task_is_logged_and_started_again(
        cluster: K8s, caplog: pytest.LogCaptureFixture) -> None:
    """A term's watch or timer that fails is started again after --retry-max-delay (before:
    it ended silently, and its work stopped for the rest of the term)."""
    runs: list[int] = []

    async def task() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")

    async def test(ctx: Context) -> None:
        await ExternalSecrets(ctx)._run("namespaces watch", task)
    with caplog.at_level(logging.ERROR):
        run(cluster, test)
    assert len(runs) == 2
    assert "the namespaces watch task failed" in caplog.text


def test_a_denial_with_unchanged_credentials_keeps_the_cluster_stores_resolution(
        cluster: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """A read denied by policy, the credentials read again and found unchanged: the store's
    resolution stands, so later registrations read no credentials (before: it was dropped, and
    each registration of a ClusterSecretStore read its credentials Secret again)."""
    k8s = cluster
    name = cluster_store(k8s, openbao, tenant, ns, token_namespace=ns)
    body = get(k8s, f"{API}/clustersecretstores/{name}")

    async def test(ctx: Context) -> None:
        half = ExternalSecrets(ctx)
        try:
            half.stores.seen(body)
            ok, _, _ = await half.stores.validate(body)
            assert ok
            sid = (CLUSTER_KIND, "", name)
            key = half.stores.keys[sid]
            assert key is not None
            assert not await half.stores.recheck(sid, key, ns)
            k8s.fail_next(10, 500, match={"verb": "get", "resource": "secrets",
                                          "namespace": ns, "name": "bao-token"})
            for other in ("team-a", "team-b"):  # no read: a 500 would raise
                assert (await half.stores.resolve_for(body, other)).key == key
        finally:
            await half.stop()
    run(k8s, test)


def test_the_clean_up_patch_is_guarded_by_the_watched_version(cluster: K8s, ns: str) -> None:
    """kopf's leftovers are removed with the watched resourceVersion as a precondition: an
    ExternalSecret changed since refuses the patch (409, no warning) and nothing is adopted —
    before, the patched version was adopted over a stale body, so a status write guarded by it
    passed although the spec it was made from had changed."""
    k8s = cluster
    es = external(ns, "es", "vault", [item("v", "k", "v")], interval="1h")
    es["metadata"]["annotations"] = {"secretops.dev/kopf-managed": "yes"}
    create(k8s, es)
    watched = es_of(k8s, ns, "es")
    k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/es",
                {"spec": {"refreshInterval": "2h"}}, MERGE)

    async def test(ctx: Context) -> None:
        obj = copy.deepcopy(watched)
        assert await marks.drop_leftovers(ctx.api, obj)
        assert obj == watched
        fresh = es_of(k8s, ns, "es")
        assert await marks.drop_leftovers(ctx.api, fresh)
        assert fresh["metadata"]["resourceVersion"] == es_of(k8s, ns, "es")["metadata"][
            "resourceVersion"]
    run(k8s, test)
    assert "secretops.dev/kopf-managed" not in es_of(k8s, ns, "es")["metadata"].get(
        "annotations", {})
