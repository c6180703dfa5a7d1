"""The handlers' API client against the Kubernetes API emulator: errors carry the server's
``Retry-After``, and every retry waits at least that long (not only kopf's own requests)."""

from __future__ import annotations

import asyncio
import uuid

from secretops_controller import kube
from secretops_controller.config import Config

from tests.fixtures.k8s import K8s


def test_retry_after_reaches_the_error_and_the_retry_delay(k8s: K8s) -> None:
    name = f"ra-{uuid.uuid4().hex[:8]}"
    k8s.fail_next(1, 429, match={"resource": "configmaps", "name": name}, retry_after=7)
    k8s.fail_next(1, 500, match={"resource": "configmaps", "name": name})

    async def main() -> tuple[kube.ApiError, kube.ApiError, dict[str, object] | None]:
        api = kube.Kube(lambda: kube.login(str(k8s.kubeconfig)))
        try:
            errors = []
            for _ in range(2):
                try:
                    await api.get(kube.configmaps("default", name))
                except kube.ApiError as e:
                    errors.append(e)
            return errors[0], errors[1], await api.get(kube.configmaps("default", name))
        finally:
            await api.close()

    throttled, unavailable, after = asyncio.run(main())
    assert (throttled.status, throttled.retry_after, throttled.transient) == (429, 7.0, True)
    assert (unavailable.status, unavailable.retry_after) == (500, None)
    assert after is None  # the faults are used up: a plain 404
    config = Config(retry_base_delay=1.0, retry_max_delay=60.0)
    assert config.retry_delay(0, throttled) == 7.0  # the server asked for more than 1 s
    assert config.retry_delay(4, throttled) == 16.0  # the backoff had grown past it
    assert config.retry_delay(0, unavailable) == 1.0
    assert kube._seconds("86400") == 300.0 and kube._seconds("soon") is None


def test_event_bodies_are_what_a_real_apiserver_accepts(k8s: K8s) -> None:
    from secretops_controller.events import event_body

    if k8s.request("GET", "/api/v1/namespaces/secretops-system")[0] == 404:
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": "secretops-system"}})
    cluster_scoped = {"apiVersion": "secretops.dev/v1alpha1", "kind": "ClusterSecretStore",
                      "metadata": {"name": "vault", "uid": "u1"}}
    namespaced = {"apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
                  "metadata": {"name": "db", "namespace": "default", "uid": "u2"}}
    for obj in (cluster_scoped, namespaced):
        body = event_body(obj, "Normal", "Valid", "checked", "secretops-controller", "pod-1",
                          "secretops-system")
        ns = body["metadata"]["namespace"]
        assert ns == obj["metadata"].get("namespace", "secretops-system")
        status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/events", body)
        assert status == 201, out


def test_watch_lists_then_streams_and_relists_at_once_on_410(k8s: K8s) -> None:
    """The one watch loop outside kopf: LISTED items, then events; a watch the server ends is
    opened again from the last version; 410 Expired lists again at once (the retry delay is
    far longer than the deadline); integer timeoutSeconds (nothing malformed sent)."""
    ns = f"w-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    k8s.malformed(clear=True)

    def secret(name: str, label: str = "yes") -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": {"watched": label}}, "data": {}}

    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("a"))
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("ignored", "no"))
    injected = k8s.faults()["injected"]

    async def main() -> list[tuple[str, str]]:
        api = kube.Kube(lambda: kube.login(str(k8s.kubeconfig)))
        seen: list[tuple[str, str]] = []

        async def until(n: int) -> None:
            async with asyncio.timeout(30):  # a hang guard, not a timing
                while len(seen) < n:
                    await asyncio.sleep(0.02)

        async def consume() -> None:
            async for ev in api.watch(kube.secrets(ns), label_selector="watched=yes",
                                      timeout_seconds=1, retry_delay=3600):
                if ev.type != "BOOKMARK":
                    seen.append((ev.type, str(ev.object["metadata"]["name"])))

        task = asyncio.create_task(consume())
        try:
            await until(1)
            await asyncio.to_thread(k8s.request, "POST", f"/api/v1/namespaces/{ns}/secrets",
                                    secret("b"))
            await until(2)
            # the next watch (after this one times out in 1 s) is refused as expired
            await asyncio.to_thread(k8s.fail_next, 1, 410,
                                    {"verb": "watch", "resource": "secrets", "namespace": ns})
            await until(4)  # a relist: both again, as LISTED
            await asyncio.to_thread(k8s.request, "DELETE",
                                    f"/api/v1/namespaces/{ns}/secrets/a")
            await until(5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await api.close()
        return seen

    seen = asyncio.run(main())
    assert seen[:2] == [("LISTED", "a"), ("ADDED", "b")]
    assert sorted(seen[2:4]) == [("LISTED", "a"), ("LISTED", "b")]
    assert seen[4] == ("DELETED", "a")
    assert k8s.faults()["injected"] != injected, "the 410 was never served"
    assert k8s.malformed() == []


def test_list_pages_follows_continue_tokens_of_one_snapshot(k8s: K8s) -> None:
    """The resync reads our Secrets page by page: with a server that pages (the emulator does,
    as the apiserver) every item comes once, over several requests, and a write between pages
    is not seen (one snapshot)."""
    ns = f"pg-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for i in range(7):
        k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets",
                    {"metadata": {"name": f"s{i}", "labels": {"mine": "yes"}}})
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "other"}})

    async def main() -> list[list[str]]:
        api = kube.Kube(lambda: kube.login(str(k8s.kubeconfig)))
        try:
            pages = []
            async for page in api.list_pages(kube.secrets(ns), "mine", limit=3):
                pages.append([s["metadata"]["name"] for s in page])
                if len(pages) == 1:  # not in the snapshot the next pages are of
                    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets",
                                {"metadata": {"name": "s9", "labels": {"mine": "yes"}}})
            return pages
        finally:
            await api.close()

    assert asyncio.run(main()) == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]


def test_watch_lists_page_by_page_through_short_and_empty_pages(k8s: K8s) -> None:
    """The watch's LIST is paged (``limit``/``continue``) like the rest: no collection comes
    in one answer. With a selector a page may hold fewer than ``limit`` items, even none, and
    still a token (the emulator's ``list_scan`` fault serves such pages): every item is listed
    once, and the watch then goes on from the list's version."""
    ns = f"wp-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for i in range(10):  # every other one matches: s0 s2 s4 s6 s8
        k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {
            "name": f"s{i}", "labels": {"watched": "yes" if i % 2 == 0 else "no"}}})
    k8s.short_pages(3)
    k8s.delay(1, count=100, match={"verb": "list", "resource": "secrets", "namespace": ns})

    def lists_made() -> int:
        return 100 - sum(r["remaining"] for r in k8s.faults()["rules"])

    async def main() -> tuple[list[list[str]], list[tuple[str, str]], int]:
        api = kube.Kube(lambda: kube.login(str(k8s.kubeconfig)))
        seen: list[tuple[str, str]] = []
        pages = [[s["metadata"]["name"] for s in page]
                 async for page in api.list_pages(kube.secrets(ns), "watched=yes", limit=2)]
        before = await asyncio.to_thread(lists_made)

        async def consume() -> None:
            async for ev in api.watch(kube.secrets(ns), label_selector="watched=yes",
                                      timeout_seconds=5, retry_delay=3600):
                if ev.type != "BOOKMARK":
                    seen.append((ev.type, str(ev.object["metadata"]["name"])))

        task = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(30):  # a hang guard, not a timing
                while len(seen) < 5:
                    await asyncio.sleep(0.02)
                listed = await asyncio.to_thread(lists_made) - before
                await asyncio.to_thread(k8s.request, "POST",
                                        f"/api/v1/namespaces/{ns}/secrets",
                                        {"metadata": {"name": "t", "labels": {"watched": "yes"}}})
                while len(seen) < 6:
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await api.close()
            await asyncio.to_thread(k8s.clear_faults)
        return pages, seen, listed

    pages, seen, listed = asyncio.run(main())
    assert pages == [["s0", "s2"], ["s4"], ["s6", "s8"], []]
    assert listed == 4  # the watch's LIST (500 a page): the same four pages
    assert seen == [("LISTED", f"s{i}") for i in range(0, 10, 2)] + [("ADDED", "t")]
