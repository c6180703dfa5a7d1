"""The controller's informer (:mod:`secretops_controller.informer`) against the emulator over
real HTTP: paged LIST then WATCH, resume after a dropped connection (no relist), a real
``410 Expired`` (the emulator keeps 5 events per resource here) that relists, bookmarks that keep
a quiet watch's version fresh, and the work queue: coalescing, a bound on waiting bodies, echo
and shard filtering, ``managedFields`` stripped.

The handlers are the test's; the controller's own (SealedSecrets, ExternalSecrets) go through
the same informer in every controller test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from secretops_controller import kube
from secretops_controller.config import Config
from secretops_controller.informer import Informer, Watch

from tests.fixtures.k8s import K8s, start_emulator, stop

HISTORY = 5  # events the emulator keeps per resource: a resume from older ones is 410
Seen = list[tuple[str | None, str, str]]  # (kind, name, data["v"])


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8s]:
    proc, k8s = start_emulator(tmp_path_factory.mktemp("informer"), "--history", str(HISTORY),
                               "--bookmark-interval", "0.2", log_requests=False)
    try:
        yield k8s
    finally:
        k8s.close()
        stop(proc)


def namespace(k8s: K8s) -> str:
    ns = f"inf-{uuid.uuid4().hex[:8]}"
    assert k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    return ns


def put(k8s: K8s, ns: str, name: str, v: str, labels: dict[str, str] | None = None) -> str:
    """Create or update ConfigMap ``name`` with data v; its new resourceVersion."""
    body = {"metadata": {"name": name, "labels": labels or {}}, "data": {"v": v}}
    status, out, _ = k8s.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/{name}", body,
                                 content_type="application/merge-patch+json")
    if status == 404:
        status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert status in (200, 201), out
    return str(out["metadata"]["resourceVersion"])


async def until(check: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(30):  # a hang guard, not a timing
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


def informer(k8s: K8s, ns: str, handler: Callable[[str | None, dict[str, Any]],
                                                  Awaitable[None]], *,
             workers: int = 4, bound: int | None = None, page: int = 500,
             echo: Callable[[str | None, dict[str, Any]], bool] | None = None,
             wanted: Callable[[str | None], bool] | None = None,
             also: tuple[str, ...] = ()) -> Informer:
    config = Config(workers=workers, watch_timeout=30, retry_base_delay=0.05,
                    watch_namespaces=(ns, *also))
    api = kube.Kube(lambda: kube.login(str(k8s.kubeconfig)))
    watch = Watch("/api/v1", "configmaps", handler, echo or (lambda kind, body: False))
    return Informer(api, watch, config, wanted or (lambda n: True), bound=bound, page=page)


def recorder(seen: Seen, bodies: list[dict[str, Any]] | None = None
             ) -> Callable[[str | None, dict[str, Any]], Awaitable[None]]:
    async def handler(kind: str | None, body: dict[str, Any]) -> None:
        seen.append((kind, body["metadata"]["name"], (body.get("data") or {}).get("v", "")))
        if bodies is not None:
            bodies.append(body)
    return handler


async def running(inf: Informer, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(inf.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await inf.api.close()


def test_a_dropped_watch_resumes_and_an_expired_version_relists(emu: K8s) -> None:
    ns = namespace(emu)
    put(emu, ns, "a", "1")
    seen: Seen = []
    inf = informer(emu, ns, recorder(seen))

    async def body() -> None:
        await until(lambda: (None, "a", "1") in seen, "a listed")
        await asyncio.to_thread(emu.drop_watches)
        await asyncio.to_thread(put, emu, ns, "b", "1")
        await until(lambda: ("ADDED", "b", "1") in seen, "b watched after the drop")
        assert seen == [(None, "a", "1"), ("ADDED", "b", "1")], "resumed, not relisted"
        # the watch is kept down (every watch fails) while more than HISTORY events happen:
        # its version falls out of the server's window, and the resume is a real 410
        await asyncio.to_thread(emu.fail_next, 10_000, 500,
                                {"verb": "watch", "resource": "configmaps", "namespace": ns})
        await asyncio.to_thread(emu.drop_watches)
        for v in range(2, 3 + HISTORY):
            await asyncio.to_thread(put, emu, ns, "a", str(v))
        await asyncio.to_thread(emu.clear_faults)
        await until(lambda: (None, "a", str(2 + HISTORY)) in seen, "a relisted")
        await until(lambda: (None, "b", "1") in seen, "b relisted")

    asyncio.run(running(inf, body))
    # no event of the gap (they were gone from the server's window): the relist has the newest
    assert [s for s in seen if s[1] == "a"] == [(None, "a", "1"), (None, "a", str(2 + HISTORY))]


def test_bookmarks_keep_a_quiet_watch_resumable(emu: K8s) -> None:
    """Nothing changes in the watched namespace while another one's ConfigMaps move the
    resource's window past the watch's own last event: a bookmark carries the newer version,
    so a dropped watch resumes (no relist) where it would otherwise get 410."""
    ns, busy = namespace(emu), namespace(emu)
    put(emu, ns, "quiet", "1")
    seen: Seen = []
    inf = informer(emu, ns, recorder(seen))

    async def body() -> None:
        await until(lambda: bool(seen), "listed")
        newest = ""
        for v in range(2 * HISTORY):
            newest = await asyncio.to_thread(put, emu, busy, f"x{v}", "1")
        path = kube.resource_path("/api/v1", ns, "configmaps", None)
        await until(lambda: int(inf.versions.get(path) or 0) >= int(newest), "a bookmark")
        await asyncio.to_thread(emu.drop_watches)
        await asyncio.to_thread(put, emu, ns, "later", "1")
        await until(lambda: ("ADDED", "later", "1") in seen, "watched after the drop")

    asyncio.run(running(inf, body))
    assert seen == [(None, "quiet", "1"), ("ADDED", "later", "1")], "resumed, not relisted"


def test_changes_while_handled_are_coalesced_into_one_more_handling(emu: K8s) -> None:
    ns = namespace(emu)
    put(emu, ns, "x", "0")
    seen: Seen = []
    gate = asyncio.Event()
    record = recorder(seen)

    async def handler(kind: str | None, body: dict[str, Any]) -> None:
        await record(kind, body)
        await gate.wait()

    inf = informer(emu, ns, handler)

    async def body() -> None:
        await until(lambda: bool(seen), "x listed")
        for v in range(1, 6):
            await asyncio.to_thread(put, emu, ns, "x", str(v))
        await until(lambda: inf.received == 6, "every change read")
        assert inf.queue.waiting == 1  # one body waits for x: the newest
        gate.set()
        await until(lambda: len(seen) == 2, "handled once more")
        await until(lambda: inf.queue.waiting == 0 and inf.queue.handled == 2, "idle")

    asyncio.run(running(inf, body))
    assert seen == [(None, "x", "0"), ("MODIFIED", "x", "5")]


def test_waiting_bodies_are_bounded_and_the_list_is_read_page_by_page(emu: K8s) -> None:
    ns = namespace(emu)
    for i in range(40):
        put(emu, ns, f"c{i:02d}", "1")
    seen: Seen = []
    gate = asyncio.Event()
    record = recorder(seen)

    async def handler(kind: str | None, body: dict[str, Any]) -> None:
        await gate.wait()
        await record(kind, body)

    inf = informer(emu, ns, handler, workers=2, bound=3, page=10)

    async def body() -> None:
        await until(lambda: inf.queue.waiting == 3, "the queue full")
        # handlers hold 2, 3 wait, one more is held up in put: nothing more is read
        assert inf.received <= 2 + 3 + 1
        gate.set()
        await until(lambda: len(seen) == 40, "all handled")

    asyncio.run(running(inf, body))
    assert inf.queue.peak == 3
    assert sorted(s[1] for s in seen) == [f"c{i:02d}" for i in range(40)]


def test_echoes_and_other_shards_are_dropped_before_they_are_kept(emu: K8s) -> None:
    """An echo (here: labelled echo=yes) is dropped unless its object is queued or being
    handled (then it may be newer than what waits); another shard's namespace is dropped;
    ``managedFields`` is stripped from what is kept."""
    ns, other = namespace(emu), namespace(emu)
    put(emu, ns, "busy", "0")
    seen: Seen = []
    bodies: list[dict[str, Any]] = []
    gate = asyncio.Event()
    record = recorder(seen, bodies)

    async def handler(kind: str | None, body: dict[str, Any]) -> None:
        await record(kind, body)
        await gate.wait()

    inf = informer(emu, ns, handler,
                   echo=lambda kind, body: (body["metadata"].get("labels") or {}).get("echo")
                   == "yes",
                   wanted=lambda n: n != other, also=(other,))

    async def body() -> None:
        await until(lambda: bool(seen), "busy listed")
        await asyncio.to_thread(put, emu, ns, "busy", "1", {"echo": "yes"})  # kept: busy
        await asyncio.to_thread(put, emu, ns, "quiet", "1", {"echo": "yes"})  # dropped
        await asyncio.to_thread(put, emu, other, "elsewhere", "1")  # dropped
        await until(lambda: inf.received == 4, "every event read")
        gate.set()
        await until(lambda: inf.queue.handled == 2, "handled")

    asyncio.run(running(inf, body))
    assert seen == [(None, "busy", "0"), ("MODIFIED", "busy", "1")]
    assert inf.dropped == 2
    assert all("managedFields" not in b["metadata"] for b in bodies)
    status, sent, _ = emu.request("GET", f"/api/v1/namespaces/{ns}/configmaps/busy")
    assert status == 200 and sent["metadata"]["managedFields"]  # as the server sends them
