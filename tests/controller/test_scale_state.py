"""What the controller keeps per object, and how much work it has in flight (issue 20).

At 10,000 SealedSecrets and 10,000 ExternalSecrets, every byte kept per object is ~20 MB and
every task per object is 20,000 tasks. These tests pin the fixes ``./scripts/bench --scale``
led to: the per-object condition series are kept in one compact map (a ``prometheus_client``
child per series cost ~0.8 KiB), a Secret's lock lives only while it is used, the informers run at
most ``--workers`` object handlers per kind at once, and the ExternalSecret syncs run in
``--workers`` tasks, not one per ExternalSecret.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import generate_latest
from secretops_controller import kube, sealed
from secretops_controller.config import Config
from secretops_controller.context import Context
from secretops_controller.external.reconcile import ExternalSecrets
from secretops_controller.external.syncqueue import HELD
from secretops_controller.keyring import KeyRing
from secretops_controller.metrics import Metrics
from secretops_controller.operator import configure, resync_once
from secretops_controller.sealed import SEALED_LABEL

from tests.fixtures.k8s import K8s


def context(**settings: Any) -> Context:
    config = Config(**settings)
    api = kube.Kube(lambda: kube.login(config.kubeconfig))  # started by a first request
    metrics = Metrics()
    return Context(config, api, KeyRing(api, config, metrics), metrics)


def our_secret(k8s: K8s, ns: str, name: str) -> dict[str, Any]:
    """A new namespace ``ns`` holding a Secret ``name`` with our label, as written."""
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": name, "namespace": ns, "labels": {SEALED_LABEL: "true"}},
              "data": {"v": "eA=="}}
    status, written, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
    assert status == 201
    return dict(written)


async def drain(half: ExternalSecrets, workers: list[asyncio.Task[None]]) -> None:
    """Wait until no sync is pending, then stop ``workers``."""
    while half.pending_syncs():
        await asyncio.sleep(0.01)  # polling until the queue is empty
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


def audited_context(k8s: K8s, ns: str, tmp_path: Path) -> Context:
    """A controller context watching ``ns`` as a service account (its calls are audited)."""
    config = k8s.kubeconfig_for(ns, "controller", tmp_path / "kubeconfig")
    return context(kubeconfig=str(config), watch_namespaces=(ns,))


def test_condition_series_cost_a_few_hundred_bytes_per_object() -> None:
    metrics = Metrics()
    names = [(f"ns-{i % 50:03d}", f"s{i:05d}") for i in range(2000)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for ns, name in names:
        metrics.sealed_condition.set(ns, name, "Synced", "True")
    per_object = (tracemalloc.get_traced_memory()[0] - before) / len(names)
    tracemalloc.stop()
    # two prometheus_client children (True and False) were ~1.6 KiB per object
    assert per_object < 400, f"{per_object:.0f} bytes per object"


def test_condition_series_exposed_as_before() -> None:
    """The same text on /metrics: True and False, Unknown once it was the status, 1 for the
    current one; an object's series go with it."""
    metrics = Metrics()
    gauge = metrics.external_condition
    gauge.set("ns", "a", "Ready", "True")
    gauge.set("ns", "b", "Ready", "Unknown")
    gauge.set("ns", "b", "Ready", "False")
    text = generate_latest(metrics.registry).decode()
    lines = sorted(line for line in text.splitlines()
                   if line.startswith("secretops_externalsecret_status_condition{"))
    assert lines == [
        'secretops_externalsecret_status_condition{condition="Ready",name="a",namespace="ns",'
        'status="False"} 0.0',
        'secretops_externalsecret_status_condition{condition="Ready",name="a",namespace="ns",'
        'status="True"} 1.0',
        'secretops_externalsecret_status_condition{condition="Ready",name="b",namespace="ns",'
        'status="False"} 1.0',
        'secretops_externalsecret_status_condition{condition="Ready",name="b",namespace="ns",'
        'status="True"} 0.0',
        'secretops_externalsecret_status_condition{condition="Ready",name="b",namespace="ns",'
        'status="Unknown"} 0.0',
    ]
    assert "# TYPE secretops_externalsecret_status_condition gauge" in text
    gauge.forget("ns", "b")
    assert 'name="b"' not in generate_latest(metrics.registry).decode()


def test_a_secrets_lock_is_kept_only_while_in_use() -> None:
    ctx = context()
    order: list[str] = []

    async def holder(tag: str, hold: asyncio.Event | None) -> None:
        async with ctx.lock("ns", "s"):
            order.append(f"{tag} in")
            if hold is not None:
                await hold.wait()
            order.append(f"{tag} out")

    async def main() -> None:
        release = asyncio.Event()
        first = asyncio.create_task(holder("a", release))
        await asyncio.sleep(0)
        second = asyncio.create_task(holder("b", None))
        await asyncio.sleep(0)
        assert len(ctx._locks) == 1  # one lock, shared by the holder and the waiter
        release.set()
        await asyncio.gather(first, second)

    asyncio.run(main())
    gc.collect()
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(ctx._locks) == 0  # nothing kept per Secret once nobody uses its lock


def test_kopf_watches_nothing_and_posts_with_at_most_workers_posters() -> None:
    """Handlers run in the informers' queues (at most --workers each, tests/controller/
    test_informer.py); kopf keeps the Event posters of its startup handlers."""
    settings = kopf.OperatorSettings()
    configure(settings, Config(workers=7))
    assert settings.scanning.disabled  # no CRD watch, no discovery of resources to handle
    assert settings.posting.worker_limit == 7
    # an idle poster keeps its place only briefly, or the limit would be a rate
    assert settings.posting.idle_timeout <= 0.1


def test_externalsecret_syncs_run_in_workers_tasks_not_one_per_object() -> None:
    ctx = context(workers=3)
    half = ExternalSecrets(ctx)
    running: set[Any] = set()
    most = 0
    synced: list[Any] = []
    gate = asyncio.Event()

    async def sync(owner: Any, body: Any = None) -> None:
        nonlocal most
        running.add(owner)
        most = max(most, len(running))
        await gate.wait()
        running.discard(owner)
        synced.append(owner)

    half.sync = sync  # type: ignore[method-assign]

    async def main() -> None:
        workers = [asyncio.create_task(half.sync_worker()) for _ in range(3)]
        tasks_before = len(asyncio.all_tasks())
        owners = [("ns", f"es{i}") for i in range(50)]
        for o in owners:
            half.kick(o)
        half.kick(owners[0])  # already queued: one sync
        await asyncio.sleep(0.01)
        assert len(asyncio.all_tasks()) == tasks_before  # no task per ExternalSecret
        half.kick(owners[0])  # being synced: once more after this sync
        assert half.pending_syncs() == 50
        gate.set()
        await drain(half, workers)

    asyncio.run(main())
    assert most == 3
    assert sorted(set(synced)) == sorted(("ns", f"es{i}") for i in range(50))
    assert synced.count(("ns", "es0")) == 2
    assert len(synced) == 51


def test_the_echo_of_a_syncs_own_write_does_not_sync_again() -> None:
    """The watch event of the Secret a sync writes may arrive before the write's answer (so
    before its resourceVersion is known as ours): one sync, not two; an event of another
    version (someone else's change) still syncs again."""
    ctx = context(workers=1)
    half = ExternalSecrets(ctx)
    synced: list[Any] = []

    async def sync(owner: Any, body: Any = None) -> None:
        synced.append(owner)
        ns, name = owner
        if len(synced) == 1:  # the first sync writes version 7 of its Secret
            half.kick(owner, (ns, name, "7"))  # its echo, before the answer
            half.writer.written[(ns, name)] = "7"  # the answer
        elif len(synced) == 2:  # the second owner: another writer made version 8
            half.kick(owner, (ns, name, "8"))
            half.writer.written[(ns, name)] = "9"

    half.sync = sync  # type: ignore[method-assign]

    async def main() -> None:
        worker = asyncio.create_task(half.sync_worker())
        half.kick(("ns", "a"))
        half.kick(("ns", "b"))
        await drain(half, [worker])

    asyncio.run(main())
    assert synced == [("ns", "a"), ("ns", "b"), ("ns", "b")]


def test_a_kick_hands_the_watched_body_to_the_next_sync_only() -> None:
    """An ExternalSecret's watch event hands its body to its next sync (which then need not
    read it); a sync again after it, or a kick while it runs, reads its own; at most HELD
    bodies wait, later owners' syncs read theirs."""
    ctx = context(workers=1)
    half = ExternalSecrets(ctx)
    got: list[tuple[Any, Any]] = []

    async def sync(owner: Any, body: Any = None) -> None:
        got.append((owner, body))
        if owner == ("ns", "a") and len(got) == 1:
            half.kick(owner, body={"v": "during"})  # while it runs: not handed over

    half.sync = sync  # type: ignore[method-assign]
    many = [("ns", f"m{i}") for i in range(HELD + 5)]

    async def main() -> None:
        half.kick(("ns", "a"), body={"v": "a1"})
        half.kick(("ns", "b"))
        half.kick(("ns", "b"), body={"v": "b1"})  # queued: handed over all the same
        for o in many:
            half.kick(o, body={"v": o[1]})
        worker = asyncio.create_task(half.sync_worker())
        await drain(half, [worker])

    asyncio.run(main())
    assert got[:3] == [(("ns", "a"), {"v": "a1"}), (("ns", "a"), None), (("ns", "b"), {"v": "b1"})]
    handed = [o for o, body in got[3:] if body is not None]
    assert handed == many[:HELD - 2]  # a and b held two of the HELD places first
    assert len(got) == 3 + len(many)


def test_a_forgotten_or_listed_external_secret_hands_no_body_over() -> None:
    """A body handed to a sync that has not run yet is dropped when the ExternalSecret is
    forgotten (deleted): the sync reads it (404) and writes nothing from the old body. A body
    from a LIST of our own (a gained shard's catch-up, maybe seconds old) is never handed over,
    and is not handled at all once a watch event of the object was (review of issue 20's
    hand-over: a catch-up could create the Secret of an ExternalSecret deleted or retargeted
    since its listing)."""
    ctx = context(workers=1)
    half = ExternalSecrets(ctx)
    got: list[tuple[Any, Any]] = []
    handled: list[tuple[Any, bool]] = []

    async def sync(owner: Any, body: Any = None) -> None:
        got.append((owner, body))

    async def on_external(es: Any, refresh: bool = True, hand_over: bool = True) -> None:
        handled.append(((es["metadata"]["namespace"], es["metadata"]["name"]), hand_over))

    half.sync = sync  # type: ignore[method-assign]
    half.on_external = on_external  # type: ignore[method-assign]

    def es(name: str, generation: int) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": name, "uid": name,
                             "generation": generation}}

    async def main() -> None:
        half.kick(("ns", "gone"), body={"v": "old"})
        half.forget(("ns", "gone"))
        await half.external_event(None, es("listed", 1), listed=True)
        await half.external_event("MODIFIED", es("watched", 2))
        await half.external_event(None, es("watched", 1), listed=True)  # older, listed later
        half.kick(("ns", "late"))
        worker = asyncio.create_task(half.sync_worker())
        await drain(half, [worker])

    asyncio.run(main())
    assert (("ns", "gone"), {"v": "old"}) not in got
    assert handled == [(("ns", "listed"), False), (("ns", "watched"), True)]


def test_resync_lists_our_secrets_page_by_page_and_no_sealedsecret(
        k8s: K8s, tmp_path: Path) -> None:
    """The resync reads one collection, our labelled Secrets, with a page limit (it keeps a
    16-byte fingerprint of each), and takes the SealedSecrets from what this leader handled:
    at 10,000 objects two whole LISTs (the SealedSecrets are the larger) were the peak of
    every round. A handled, synced SealedSecret whose Secret is missing is repaired (here its
    SealedSecret is gone too: one GET, nothing written)."""
    ns = "resync-pages"
    written = our_secret(k8s, ns, "kept")
    ctx = audited_context(k8s, ns, tmp_path)
    ctx.handled[(ns, "kept")] = (b"mark", True)
    ctx.handled[(ns, "gone")] = (b"mark", True)
    ctx.handled[(ns, "failed")] = (b"mark", False)  # a failure: left alone
    ctx.fingerprints[(ns, "kept")] = sealed.fingerprint(written)
    k8s.reset_audit()

    async def main() -> int:
        try:
            return await resync_once(ctx)
        finally:
            await ctx.api.close()

    assert asyncio.run(main()) == 1
    calls = [(r["verb"], r["resource"], r["name"]) for r in k8s.audit(f"{ns}/controller")]
    assert calls == [("list", "secrets", ""), ("get", "sealedsecrets", "gone")]


def test_a_store_read_before_its_watch_is_not_kept(k8s: K8s, tmp_path: Path) -> None:
    """A SecretStore read because its watch has not listed it yet (an ExternalSecret listed
    first) is not kept: deleted before the store watch lists it, it no longer serves (it
    was kept for the whole term: deleting a store did not revoke its use)."""
    from secretops_controller.external.storecheck import Stores

    from tests.controller.conftest import prepare_external

    prepare_external(k8s)
    ns = "store-read"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    path = f"/apis/secretops.dev/v1alpha1/namespaces/{ns}/secretstores"
    status, _, _ = k8s.request("POST", path, {
        "apiVersion": "secretops.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "bao"}, "spec": {"provider": {"vault": {
            "server": "http://127.0.0.1:1",
            "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}}}})
    assert status == 201
    config = k8s.kubeconfig_for(ns, "controller", tmp_path / "kubeconfig")
    ctx = context(kubeconfig=str(config), watch_namespaces=(ns,))

    async def no_credentials(_: Any) -> None:
        return None

    stores = Stores(ctx, lambda *_: None, no_credentials)

    async def main() -> tuple[Any, Any]:
        try:
            first = await stores.get("SecretStore", ns, "bao")
            assert k8s.request("DELETE", f"{path}/bao")[0] == 200
            return first, await stores.get("SecretStore", ns, "bao")
        finally:
            await ctx.api.close()

    first, second = asyncio.run(main())
    assert first is not None and second is None


def test_the_externalsecrets_informer_waits_while_held_owners_wait_for_a_sync() -> None:
    """The ExternalSecret watch's handler returns only once fewer than HELD owners wait or
    sync: the informer reads no further meanwhile, so each owner's watched body can be handed
    over to its sync (at a cold start, reading every ExternalSecret again was ~1 GET each)."""
    ctx = context(workers=2)
    half = ExternalSecrets(ctx)
    gate = asyncio.Event()

    async def sync(owner: Any, body: Any = None) -> None:
        await gate.wait()

    half.sync = sync  # type: ignore[method-assign]

    async def main() -> tuple[bool, bool]:
        workers = [asyncio.create_task(half.sync_worker()) for _ in range(2)]
        for i in range(HELD):
            half.kick(("ns", f"es{i}"))
        waiter = asyncio.create_task(half.syncs.room())
        await asyncio.sleep(0.01)
        blocked = not waiter.done()
        gate.set()
        async with asyncio.timeout(10):  # a hang guard
            await waiter
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return blocked, waiter.done()

    blocked, released = asyncio.run(main())
    assert blocked and released


def test_a_secret_event_during_its_own_write_is_not_taken_for_drift(k8s: K8s) -> None:
    """The watch event of a Secret we create can come before the create's answer (before its
    fingerprint is known): the owned-Secret handler waits for that write's lock, then finds
    the fingerprint and repairs nothing. (A repair would read the SealedSecret — none here:
    it would forget the fingerprint, its SealedSecret gone.)"""
    ctx = context(kubeconfig=str(k8s.kubeconfig), max_retries=0)
    handler = next(w.handler for w in sealed.register(ctx) if w.plural == "secrets")
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"k": "dg=="},
              "metadata": {"namespace": "default", "name": "s-drift-race",
                           "labels": {SEALED_LABEL: "true"}}}
    key = ("default", "s-drift-race")

    async def main() -> None:
        try:
            async with ctx.lock(*key):  # the reconcile creating it
                event = asyncio.create_task(handler("ADDED", dict(secret)))
                await asyncio.sleep(0.01)
                ctx.fingerprints[key] = sealed.fingerprint(secret)  # the create's answer
            await event
        finally:
            await ctx.api.close()

    asyncio.run(main())
    assert ctx.fingerprints.get(key) == sealed.fingerprint(secret)


def test_the_watch_event_of_a_secret_being_created_repairs_nothing(
        k8s: K8s, tmp_path: Path) -> None:
    """The watch event of a Secret the SealedSecret handler is creating can arrive before the
    create's answer, when the fingerprint of the write is not recorded yet: the Secret handler
    waits for the write in flight (the Secret's lock) instead of taking the event for drift
    (a GET of the SealedSecret, a create answered 409, a GET of the Secret and a second
    status patch). kopf's batch window (0.1 s) makes it rare; a watch without one would not."""
    ns = "echo-race"
    written = our_secret(k8s, ns, "s")
    ctx = audited_context(k8s, ns, tmp_path)
    k8s.reset_audit()

    async def main() -> None:
        try:
            async with ctx.lock(ns, "s"):  # the SealedSecret handler's create, in flight
                echo = asyncio.create_task(sealed.on_secret(ctx, "ADDED", written))
                await asyncio.sleep(0.05)  # the event is handled meanwhile (a window)
                ctx.fingerprints[(ns, "s")] = sealed.fingerprint(written)  # the answer
            await echo
        finally:
            await ctx.api.close()

    asyncio.run(main())
    assert k8s.audit(f"{ns}/controller") == []  # no GET of the SealedSecret, no write
    assert ctx.fingerprints[(ns, "s")] == sealed.fingerprint(written)


def test_resync_leaves_a_sealedsecret_handled_during_its_list_to_the_next_one(
        k8s: K8s, tmp_path: Path) -> None:
    """A SealedSecret handled while the resync reads the pages may have its Secret written
    after its page was served: it is not taken for missing (at a cold start of 5,000 ~80 were:
    a GET of the SealedSecret, a create answered 409, a GET of the Secret and a second status
    patch each); the next resync looks at it."""
    ns = "resync-late"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    ctx = audited_context(k8s, ns, tmp_path)
    k8s.reset_audit()

    async def main() -> int:
        def handled_meanwhile() -> None:  # runs once the resync awaits its first page
            ctx.handled[(ns, "late")] = (b"mark", True)
            ctx.fingerprints[(ns, "late")] = b"written after its page"

        asyncio.get_running_loop().call_soon(handled_meanwhile)
        try:
            return await resync_once(ctx)
        finally:
            await ctx.api.close()

    assert asyncio.run(main()) == 0
    calls = [(r["verb"], r["resource"], r["name"]) for r in k8s.audit(f"{ns}/controller")]
    assert calls == [("list", "secrets", "")]
