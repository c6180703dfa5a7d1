"""The central scheduler and coalescing cache, under a fake clock with fake providers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from itertools import pairwise
from typing import Any

import pytest
from secretops_controller.external.provider import ErrorKind, FindRef, RemoteRef
from secretops_controller.external.scheduler import Scheduler, Settings, StoreKey, fingerprint

from tests.controller.external.conftest import FakeClock, FakeProvider, direct, settle

STORE = StoreKey("SecretStore", "team-a", "vault", fingerprint("config", "token-a"))


def run(test: Callable[[Scheduler, FakeClock], Awaitable[None]],
        settings: Settings | None = None, **kw: Any) -> None:
    async def main() -> None:
        clock = FakeClock()
        sched = Scheduler(clock=clock, settings=settings or Settings(jitter=0.1),
                          rng=random.Random(7), run_blocking=kw.pop("run_blocking", direct), **kw)
        task = asyncio.create_task(sched.run())
        try:
            await settle(sched)
            await test(sched, clock)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_200_registrations_over_20_keys_make_one_read_of_each_key_per_window() -> None:
    p = FakeProvider()
    for k in range(20):
        p.set(f"app/k{k}", {"v": str(k)})
    updates: list[set[Any]] = []

    async def body(s: Scheduler, clock: FakeClock) -> None:
        for i in range(200):
            s.register(("ns", f"es{i}"), STORE, p, [RemoteRef(f"app/k{i % 20}")], 60.0)
        await settle(s)
        assert p.keys_read == 20 and len(p.calls) == 1  # the first reads, in one batch
        assert sum(len(u) for u in updates) == 200  # every owner heard once
        snap = s.snapshot(("ns", "es42"))
        assert snap is not None and snap.complete
        assert snap.values[RemoteRef("app/k2")].value == {"v": "2"}
        # a later registration for a cached key is served without a read
        s.register(("ns", "late"), STORE, p, [RemoteRef("app/k3")], 60.0)
        await settle(s)
        assert p.keys_read == 20
        late = s.snapshot(("ns", "late"))
        assert late is not None and late.complete
        # five refresh windows: 20 keys read per window, in one call each time
        for _ in range(5):
            await clock.advance(60.0, s)
        assert p.keys_read == 20 * 6 and len(p.calls) == 6

    run(body, on_update=updates.append)


def test_jitter_keeps_every_refresh_inside_the_interval_and_spreads_stores() -> None:
    providers = [FakeProvider(name=f"p{i}") for i in range(30)]
    stores = [StoreKey("SecretStore", "ns", f"s{i}", fingerprint(str(i))) for i in range(30)]
    read_at: dict[int, list[float]] = {i: [] for i in range(30)}

    async def body(s: Scheduler, clock: FakeClock) -> None:
        for i, (p, st) in enumerate(zip(providers, stores, strict=True)):
            p.set("k", b"v")
            s.register(("ns", f"es{i}"), st, p, [RemoteRef("k")], 100.0)
        await settle(s)
        seen = [len(p.calls) for p in providers]
        for _ in range(1000):  # 1,000 s in 1 s steps
            await clock.advance(1.0, s)
            for i, p in enumerate(providers):
                if len(p.calls) != seen[i]:
                    read_at[i].append(clock.now())
                    seen[i] = len(p.calls)
        for times in read_at.values():
            gaps = [b - a for a, b in pairwise(times)]
            assert gaps and max(gaps) <= 100.0 + 1.0  # never later than the interval (1 s steps)
            assert min(gaps) >= 90.0 - 1.0  # at most 10 % early
        # started together, the stores' refreshes drift apart instead of staying aligned
        fourth = [t[3] for t in read_at.values()]
        assert max(fourth) - min(fourth) >= 5.0 and len({round(t) for t in fourth}) >= 5
        # and once phased, each store is read exactly once per interval
        for times in read_at.values():
            gaps = [b - a for a, b in pairwise(times)][1:]
            assert all(99.0 <= g <= 101.0 for g in gaps), gaps

    run(body)


def test_provider_errors_back_off_with_a_cap_keep_the_last_value_and_recover() -> None:
    p = FakeProvider()
    p.set("db", {"password": "one"})
    updates: list[set[Any]] = []

    async def body(s: Scheduler, clock: FakeClock) -> None:
        owner = ("ns", "es")
        s.register(owner, STORE, p, [RemoteRef("db")], 10.0)
        await settle(s)
        p.fail = ErrorKind.UNAVAILABLE
        await clock.advance(10.0, s)
        snap = s.snapshot(owner)
        assert snap is not None
        assert snap.values[RemoteRef("db")].value == {"password": "one"}  # last good kept
        assert snap.errors[RemoteRef("db")].kind == ErrorKind.UNAVAILABLE
        assert updates[-1] == {owner}  # told about the error
        # retries: delays grow (1, 2, 4, 8 … s, half-jittered) and stop growing at the cap (8 s)
        times = []
        before = len(p.calls)
        for _ in range(300):
            await clock.advance(0.25, s)
            if len(p.calls) != before:
                times.append(clock.now())
                before = len(p.calls)
        gaps = [b - a for a, b in pairwise(times)]
        assert gaps[0] <= 2.25 and max(gaps) <= 8.25 and max(gaps) >= 4.0
        p.fail = None
        p.set("db", {"password": "two"})
        for _ in range(40):
            await clock.advance(0.25, s)
        snap = s.snapshot(owner)
        assert snap is not None and not snap.errors
        assert snap.values[RemoteRef("db")].value == {"password": "two"}

    run(body, settings=Settings(jitter=0.1, backoff_base=1.0, backoff_cap=8.0),
        on_update=updates.append)


def test_not_found_is_an_answer_not_an_error() -> None:
    p = FakeProvider()

    async def body(s: Scheduler, clock: FakeClock) -> None:
        s.register("es", STORE, p, [RemoteRef("gone")], 30.0)
        await settle(s)
        snap = s.snapshot("es")
        assert snap is not None and snap.complete and snap.missing == {RemoteRef("gone")}
        await clock.advance(10.0, s)
        assert len(p.calls) == 1  # no backoff retries: next read at the interval
        p.set("gone", b"back")
        await clock.advance(20.0, s)
        snap = s.snapshot("es")
        assert snap is not None and snap.values[RemoteRef("gone")].value == b"back"

    run(body)


def test_the_cache_is_never_shared_between_credentials() -> None:
    tenant_a, tenant_b = FakeProvider(name="a"), FakeProvider(name="b")
    tenant_a.set("shared/key", b"value-of-a")
    tenant_b.set("shared/key", b"value-of-b")
    # one ClusterSecretStore, two namespaces bringing their own credentials
    store_a = StoreKey("ClusterSecretStore", "", "vault", fingerprint("cfg", "token-of-a"))
    store_b = StoreKey("ClusterSecretStore", "", "vault", fingerprint("cfg", "token-of-b"))
    assert store_a != store_b

    async def body(s: Scheduler, clock: FakeClock) -> None:
        s.register(("a", "es"), store_a, tenant_a, [RemoteRef("shared/key")], 60.0)
        await settle(s)
        s.register(("b", "es"), store_b, tenant_b, [RemoteRef("shared/key")], 60.0)
        await settle(s)
        a, b = s.snapshot(("a", "es")), s.snapshot(("b", "es"))
        assert a is not None and b is not None
        assert a.values[RemoteRef("shared/key")].value == b"value-of-a"
        assert b.values[RemoteRef("shared/key")].value == b"value-of-b"
        assert len(tenant_a.calls) == 1 and len(tenant_b.calls) == 1

    run(body)


def test_stores_with_one_read_identity_share_one_read_per_key_per_window() -> None:
    """One SecretStore in each of 5 namespaces, same credentials (one fingerprint), 20 keys
    each: 20 reads per window in one batch, not 100 in five; one provider serves them all."""
    shared = fingerprint("read-identity", "vault", "same token")
    stores = [StoreKey("SecretStore", f"team-{n}", "vault", shared) for n in range(5)]
    providers = [FakeProvider(name=f"p{n}") for n in range(5)]
    for p in providers:
        for k in range(20):
            p.set(f"app/k{k}", {"v": str(k)})

    async def body(s: Scheduler, clock: FakeClock) -> None:
        for n, (store, p) in enumerate(zip(stores, providers, strict=True)):
            for k in range(20):
                s.register((f"team-{n}", f"es{k}"), store, p, [RemoteRef(f"app/k{k}")], 60.0)
        await settle(s)
        first, *others = providers
        assert sum(p.keys_read for p in providers) == 20
        assert first.keys_read == 20 and all(not p.calls for p in others)
        assert s.entry_count() == 20 and s.store_ref_count() == 100
        for n in range(5):
            snap = s.snapshot((f"team-{n}", "es7"))
            assert snap is not None and snap.values[RemoteRef("app/k7")].value == {"v": "7"}
        for _ in range(3):
            await clock.advance(60.0, s)
        assert first.keys_read == 20 * 4 and len(first.calls) == 4
        # the stores leave one by one: the shared provider is closed with the last
        for n in range(5):
            for k in range(20):
                s.unregister((f"team-{n}", f"es{k}"))
            await asyncio.sleep(0)
            assert first.closed == (n == 4)

    run(body)


def test_new_objects_are_read_while_a_periodic_batch_is_still_in_flight() -> None:
    slow, fast = FakeProvider(name="slow"), FakeProvider(name="fast")
    slow.set("k", b"1")
    fast.set("k", b"2")
    gate = asyncio.Event()
    order: list[str] = []

    async def gated(fn: Any, *args: Any) -> Any:
        provider = fn.__self__
        if provider is slow and len(slow.calls) >= 1:
            order.append("slow-start")
            await gate.wait()  # the periodic refresh hangs (a slow provider)
        order.append(provider.name)
        return fn(*args)

    async def body(s: Scheduler, clock: FakeClock) -> None:
        slow_store = StoreKey("SecretStore", "ns", "slow", fingerprint("slow"))
        fast_store = StoreKey("SecretStore", "ns", "fast", fingerprint("fast"))
        s.register("old", slow_store, slow, [RemoteRef("k")], 10.0)
        await settle(s)
        clock.t += 10.0  # the periodic refresh of "old" falls due and hangs
        s._wake.set()
        for _ in range(100):
            await asyncio.sleep(0)
        assert order[-1] == "slow-start"
        s.register("new", fast_store, fast, [RemoteRef("k")], 10.0)
        for _ in range(100):
            await asyncio.sleep(0)
        snap = s.snapshot("new")
        assert snap is not None and snap.complete  # served although the refresh still hangs
        assert order[-1] == "fast"
        gate.set()
        await settle(s)

    run(body, run_blocking=gated)


def test_force_refresh_interval_zero_changes_and_unregister() -> None:
    p = FakeProvider()
    p.set("a", b"1")
    p.set("b", b"2")

    async def body(s: Scheduler, clock: FakeClock) -> None:
        s.register("once", STORE, p, [RemoteRef("a")], 0.0)  # refreshInterval: 0
        await settle(s)
        await clock.advance(10_000.0, s)
        assert len(p.calls) == 1
        s.refresh("once")  # force-sync
        await settle(s)
        assert len(p.calls) == 2
        # a changed spec: only the new ref is read, urgently
        s.register("once", STORE, p, [RemoteRef("a"), RemoteRef("b")], 0.0)
        await settle(s)
        assert p.calls[-1] == [RemoteRef("b")]
        s.unregister("once")
        assert s.snapshot("once") is None
        await settle(s)  # closed off the loop, through run_blocking
        assert p.closed

    run(body)


def test_find_results_are_cached_like_refs() -> None:
    p = FakeProvider()
    p.set("app/one", b"1")
    p.set("app/two", b"2")
    p.set("other/x", b"3")
    q = FindRef("app/", None)

    async def body(s: Scheduler, clock: FakeClock) -> None:
        for i in range(10):
            s.register(i, STORE, p, [q], 60.0)
        await settle(s)
        snap = s.snapshot(3)
        assert snap is not None and snap.complete
        assert sorted(snap.found[q]) == ["app/one", "app/two"]
        assert len(p.calls) == 1

    run(body)


@pytest.mark.parametrize("kind", [ErrorKind.DENIED, ErrorKind.THROTTLED])
def test_a_first_read_that_fails_is_not_complete(kind: ErrorKind) -> None:
    p = FakeProvider(fail=kind)

    async def body(s: Scheduler, clock: FakeClock) -> None:
        s.register("es", STORE, p, [RemoteRef("x")], 60.0)
        await settle(s)
        snap = s.snapshot("es")
        assert snap is not None and not snap.complete and snap.errors[RemoteRef("x")].kind == kind

    run(body)


def test_a_batch_that_finishes_does_not_pull_the_next_one_early() -> None:
    """A slow provider (45 ms a key, as through the benchmark's proxy): two groups of keys of
    one store, 2.8 s apart in phase, keep their 5 s period; the end of one group's batch (a
    wake-up of the loop) must not start the other group's reads before they are due."""
    p = FakeProvider()
    for k in range(100):
        p.set(f"k{k:03d}", b"v")
    clock_box: list[FakeClock] = []
    read_at: dict[str, list[float]] = {}

    async def slow(fn: Any, *args: Any) -> Any:
        clock = clock_box[0]
        for ref in args[0]:
            clock.t += 0.045
            read_at.setdefault(ref.key, []).append(clock.t)
        await asyncio.sleep(0)
        return fn(*args)

    async def body(s: Scheduler, clock: FakeClock) -> None:
        clock_box.append(clock)
        for k in range(62):
            s.register(("ns", f"a{k}"), STORE, p, [RemoteRef(f"k{k:03d}")], 5.0)
        await settle(s)
        await clock.advance(2.8, s)
        for k in range(62, 100):
            s.register(("ns", f"b{k}"), STORE, p, [RemoteRef(f"k{k:03d}")], 5.0)
        await settle(s)
        start = clock.now()
        for _ in range(600):  # 60 s in 0.1 s steps (and the reads' own time)
            await clock.advance(0.1, s)
        for key, times in read_at.items():
            gaps = [b - a for a, b in pairwise(times)][2:]  # after the first (jittered) period
            assert gaps and min(gaps) >= 5.0 - 0.2, (key, gaps)  # 0.1 s steps, 45 ms reads
        reads = sum(1 for times in read_at.values() for t in times if t > start)
        assert reads <= 100 * ((clock.now() - start) / 5.0 + 1)

    run(body, settings=Settings(jitter=0.1), run_blocking=slow)


def test_a_key_whose_first_read_is_in_flight_is_not_read_again_for_a_new_subscriber() -> None:
    p = FakeProvider()
    p.set("k", b"v")
    gate = asyncio.Event()

    async def gated(fn: Any, *args: Any) -> Any:
        await gate.wait()  # the first read is slow
        return fn(*args)

    updates: list[set[Any]] = []

    async def body(s: Scheduler, clock: FakeClock) -> None:
        s.register("first", STORE, p, [RemoteRef("k")], 60.0)
        for _ in range(100):
            await asyncio.sleep(0)  # the read started and waits
        s.register("second", STORE, p, [RemoteRef("k")], 60.0)  # same key, read in flight
        for _ in range(100):
            await asyncio.sleep(0)
        gate.set()
        await settle(s)
        assert p.keys_read == 1  # one read served both (docs: one read per key)
        assert {"first", "second"} <= set().union(*updates)
        for owner in ("first", "second"):
            snap = s.snapshot(owner)
            assert snap is not None and snap.complete

    run(body, run_blocking=gated, on_update=updates.append)


def test_a_shared_key_follows_the_shortest_interval_as_subscribers_come_and_go() -> None:
    """The refresh period of a key is the shortest positive interval of the ExternalSecrets
    that use it, whoever joins, changes its interval or leaves (the scheduler keeps it per
    key as they do, where it used to scan the subscribers of every key at every wake)."""
    p = FakeProvider()
    p.set("shared", b"1")
    ref = [RemoteRef("shared")]

    async def reads_after(clock: FakeClock, s: Scheduler, *steps: float) -> list[int]:
        out = []
        for step in steps:
            await clock.advance(step, s)
            await settle(s)
            out.append(len(p.calls))
        return out

    async def body(s: Scheduler, clock: FakeClock) -> None:
        s.register("a", STORE, p, ref, 60.0)
        s.register("b", STORE, p, ref, 30.0)
        await settle(s)
        assert len(p.calls) == 1  # the first read, for both
        assert await reads_after(clock, s, 30, 30) == [2, 3]  # every 30 s (b's)
        s.register("b", STORE, p, ref, 120.0)  # b slows down: a's 60 s is now the shortest
        assert await reads_after(clock, s, 30, 30, 30) == [4, 4, 5]
        s.unregister("a")  # b alone: 120 s
        assert await reads_after(clock, s, 60, 60, 60) == [6, 6, 7]
        s.register("c", STORE, p, ref, 0.0)  # read once: no period of its own
        s.unregister("b")
        assert await reads_after(clock, s, 120, 1000) == [7, 7]
        s.register("d", STORE, p, ref, 45.0)  # a new period: the key is refreshed again
        assert await reads_after(clock, s, 45, 45) == [8, 9]

    run(body, settings=Settings(jitter=0.0))
