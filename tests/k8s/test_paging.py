"""Paged LISTs (``limit`` and ``continue``) as the apiserver serves them (emulator/listing.py).

Every page of a list is of one snapshot (the first page's revision, carried by the token), in
etcd key order, with ``remainingItemCount`` when no selector filtered it; a token whose snapshot
was compacted is 410 with a token for the rest; ``resourceVersion=0`` is served from the watch
cache, whole; ``resourceVersionMatch`` is checked as ``ValidateListOptions`` does. The real
kubectl pages with ``--chunk-size``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.k8s import K8s, start_emulator, stop

SECRETS = "/api/v1/secrets"
COUNT = 25


def make_ns(k8s: K8s, name: str | None = None) -> str:
    name = name or f"p-{uuid.uuid4().hex[:10]}"
    status, _, _ = k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201
    return name


def add(k8s: K8s, ns: str, name: str, **labels: str) -> None:
    status, body, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets",
                                  {"metadata": {"name": name, "labels": labels}})
    assert status == 201, body


@pytest.fixture
def ns(k8s: K8s) -> str:
    name = make_ns(k8s)
    for i in range(COUNT):
        add(k8s, name, f"s{i:03d}", half="even" if i % 2 == 0 else "odd")
    return name


def get(k8s: K8s, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    status, body, _ = k8s.request("GET", f"{path}?{query}" if query else path)
    return status, body


def names(body: dict[str, Any]) -> list[str]:
    return [i["metadata"]["name"] for i in body["items"]]


def pages(k8s: K8s, path: str, limit: int, token: str = "", **params: Any
          ) -> Iterator[dict[str, Any]]:
    while True:
        status, body = get(k8s, path, limit=limit, **({"continue": token} if token else {}),
                           **params)
        assert status == 200, body
        yield body
        token = body["metadata"].get("continue") or ""
        if not token:
            return


def test_limit_and_continue_walk_one_snapshot_in_key_order(k8s: K8s, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/secrets"
    status, first = get(k8s, path, limit=10)
    assert status == 200 and len(first["items"]) == 10
    assert first["metadata"]["remainingItemCount"] == COUNT - 10
    token = first["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded == {"v": "meta.k8s.io/v1", "rv": int(first["metadata"]["resourceVersion"]),
                       "start": "s009\x00"}
    # changes after the first page are not in the later ones: one snapshot
    k8s.request("DELETE", f"{path}/s015")
    add(k8s, ns, "s0125")
    k8s.request("PATCH", f"{path}/s020", {"metadata": {"labels": {"changed": "yes"}}},
                content_type="application/merge-patch+json")
    rest = list(pages(k8s, path, 10, token))
    assert [len(p["items"]) for p in rest] == [10, 5]
    assert rest[0]["metadata"]["remainingItemCount"] == 5
    assert "remainingItemCount" not in rest[-1]["metadata"]
    assert {p["metadata"]["resourceVersion"] for p in rest} == {
        first["metadata"]["resourceVersion"]}
    walked = names(first) + [n for p in rest for n in names(p)]
    assert walked == [f"s{i:03d}" for i in range(COUNT)]
    s020 = next(i for p in rest for i in p["items"] if i["metadata"]["name"] == "s020")
    assert "changed" not in s020["metadata"]["labels"]
    # a new list sees the changes
    now = [n for p in pages(k8s, path, 7) for n in names(p)]
    assert "s015" not in now and "s0125" in now and len(now) == COUNT


def test_across_namespaces_the_order_is_the_etcd_key_order(k8s: K8s) -> None:
    base = f"o{uuid.uuid4().hex[:6]}"
    # "a-b" sorts before "a" as a key prefix: "a-b/…" < "a/…" ('-' < '/')
    first, second = make_ns(k8s, base), make_ns(k8s, f"{base}-b")
    assert sorted([first, second]) == [first, second]
    for ns in (first, second):
        for i in range(3):
            add(k8s, ns, f"x{i}", batch=base)
    got = [(i["metadata"]["namespace"], i["metadata"]["name"])
           for p in pages(k8s, SECRETS, 2, labelSelector=f"batch={base}") for i in p["items"]]
    keys = [f"{n}/{m}" for n, m in got]
    assert keys == sorted(keys) and len(got) == 6
    assert got[0][0] == second
    _, whole = get(k8s, SECRETS, labelSelector=f"batch={base}")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in whole["items"]] == got


def test_a_selector_pages_over_matches_without_a_remaining_count(k8s: K8s, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/secrets"
    got = list(pages(k8s, path, 5, labelSelector="half=odd"))
    assert [len(p["items"]) for p in got] == [5, 5, 2]
    assert all("remainingItemCount" not in p["metadata"] for p in got)
    assert [n for p in got for n in names(p)] == [f"s{i:03d}" for i in range(1, COUNT, 2)]


def test_resource_version_0_is_served_whole_from_the_watch_cache(k8s: K8s, ns: str) -> None:
    status, body = get(k8s, f"/api/v1/namespaces/{ns}/secrets", limit=5, resourceVersion="0")
    assert status == 200 and len(body["items"]) == COUNT
    assert "continue" not in body["metadata"]
    # a NotOlderThan version without a limit: the cache too, all of it
    rv = body["metadata"]["resourceVersion"]
    status, body = get(k8s, f"/api/v1/namespaces/{ns}/secrets", resourceVersion=rv,
                       resourceVersionMatch="NotOlderThan")
    assert status == 200 and len(body["items"]) == COUNT


def test_exact_and_legacy_paged_reads_are_of_the_version_asked(k8s: K8s, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/secrets"
    _, before = get(k8s, path)
    rv = before["metadata"]["resourceVersion"]
    k8s.request("DELETE", f"{path}/s000")
    for params in ({"resourceVersion": rv, "resourceVersionMatch": "Exact"},
                   {"resourceVersion": rv, "limit": 100}):
        status, body = get(k8s, path, **params)
        assert status == 200, (params, body)
        assert body["metadata"]["resourceVersion"] == rv
        assert names(body) == names(before)
    status, body = get(k8s, path, resourceVersion=rv, resourceVersionMatch="NotOlderThan",
                       limit=100)
    assert status == 200 and "s000" not in names(body)
    status, body = get(k8s, path, resourceVersion=str(10**9), resourceVersionMatch="Exact")
    assert status == 504 and body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


@pytest.mark.parametrize(("params", "message"), [
    ({"resourceVersionMatch": "Exact"},
     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
     "resourceVersion is provided"),
    ({"resourceVersionMatch": "Exact", "resourceVersion": "0"},
     'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for '
     'resourceVersion "0"'),
    ({"resourceVersionMatch": "Newest", "resourceVersion": "5"},
     'resourceVersionMatch: Unsupported value: "Newest"'),
])
def test_resource_version_match_rules_are_422(k8s: K8s, params: dict[str, str],
                                              message: str) -> None:
    status, body = get(k8s, SECRETS, **params)
    assert status == 422 and body["reason"] == "Invalid", body
    assert body["details"]["kind"] == "ListOptions" and body["details"]["group"] == "meta.k8s.io"
    assert message in body["message"]


def test_continue_refuses_a_resource_version_and_malformed_tokens(k8s: K8s, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/secrets"
    _, first = get(k8s, path, limit=5)
    token = first["metadata"]["continue"]
    status, body = get(k8s, path, limit=5, resourceVersion="5", **{"continue": token})
    assert status == 400 and body["message"] == (
        "specifying resource version is not allowed when using continue")
    status, body = get(k8s, path, limit=5, resourceVersionMatch="NotOlderThan",
                       resourceVersion="5", **{"continue": token})
    assert status == 422 and "forbidden when continue is provided" in body["message"]
    assert get(k8s, path, limit=5, resourceVersion="0", **{"continue": token})[0] == 200

    def encoded(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    for bad, why in [
        ("not base64!", ""),
        (encoded({"v": "meta.k8s.io/v2", "rv": 5, "start": "a"}),
         ": server does not recognize this encoded version"),
        (encoded({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
         ": incorrect encoded start resourceVersion"),
        (encoded({"v": "meta.k8s.io/v1", "rv": 5, "start": ""}), ": encoded start key empty"),
        (encoded({"v": "meta.k8s.io/v1", "rv": 5, "start": "../other/x"}), ": ../other/x"),
    ]:
        status, body = get(k8s, path, limit=5, **{"continue": bad})
        assert status == 400 and body["reason"] == "BadRequest", body
        assert body["message"].startswith(
            f"invalid continue token: continue key is not valid{why}"), body["message"]


def test_a_compacted_continue_token_is_410_with_a_token_for_the_rest(tmp_path: Path) -> None:
    proc, small = start_emulator(tmp_path, "--history", "5")
    try:
        path = "/api/v1/namespaces/default/configmaps"
        for i in range(6):
            small.request("POST", path, {"metadata": {"name": f"c{i:02d}"}})
        status, first = get(small, path, limit=2)
        assert status == 200 and names(first) == ["c00", "c01"]
        _, old = get(small, path)
        for i in range(6, 12):  # more writes than the history keeps
            small.request("POST", path, {"metadata": {"name": f"c{i:02d}"}})
        status, body = get(small, path, limit=2, **{"continue": first["metadata"]["continue"]})
        assert status == 410 and body["reason"] == "Expired", body
        assert body["message"].startswith("The provided continue parameter is too old")
        # the rest, at the newest version (no longer one snapshot: c6..c11 show up)
        rest = [n for p in pages(small, path, 4, body["metadata"]["continue"])
                for n in names(p)]
        assert rest == [f"c{i:02d}" for i in range(2, 12)]
        status, body = get(small, path, limit=2, resourceVersion=old["metadata"][
            "resourceVersion"])
        assert status == 410 and body["message"] == (
            "The resourceVersion for the provided list is too old.")
    finally:
        small.close()
        stop(proc)


def test_kubectl_chunk_size_pages_through_every_namespace(k8s: K8s, ns: str) -> None:
    proc = k8s.kubectl("get", "secrets", "-A", "--chunk-size=10", "-o", "name", "-v=6")
    shown = [ln for ln in proc.stdout.splitlines() if ln.startswith("secret/")]
    status, whole = get(k8s, SECRETS)
    assert status == 200 and len(shown) == len(whole["items"]) > 10
    requests = re.findall(r'verb="GET" url="[^"]*/api/v1/secrets\?([^"]*)"', proc.stderr)
    assert len(requests) == -(-len(whole["items"]) // 10), proc.stderr[-2000:]
    assert all("limit=10" in r for r in requests)
    assert sum("continue=" in r for r in requests) == len(requests) - 1


def test_a_full_page_has_a_token_while_any_key_follows_then_an_empty_page(
        k8s: K8s, ns: str) -> None:
    """etcd3's GetList: a full page ends before the next key, matching or not, and has a token
    if there is one; the rest may hold no match: a last page of zero items, no token."""
    path = f"/api/v1/namespaces/{ns}/secrets"
    got = list(pages(k8s, path, 6, labelSelector="half=odd"))  # s001..s023; s024 follows
    assert [len(p["items"]) for p in got] == [6, 6, 0]
    assert [bool(p["metadata"].get("continue")) for p in got] == [True, True, False]
    whole = list(pages(k8s, path, 13, labelSelector="half=even"))  # s024 is the last key
    assert [len(p["items"]) for p in whole] == [13]


def test_a_sparse_selector_may_get_short_and_empty_pages_with_a_token(
        k8s: K8s, ns: str) -> None:
    """``limit`` is a maximum: a page may hold fewer items, even none, and still a token
    (ListOptions.limit); the ``list_scan`` fault makes the emulator serve such pages. Only the
    token says whether more remain."""
    path = f"/api/v1/namespaces/{ns}/secrets"
    k8s.short_pages(4)
    try:
        got = list(pages(k8s, path, 3, labelSelector="half=odd"))
        sparse = list(pages(k8s, path, 3, fieldSelector="metadata.name=s024"))
        unselected = list(pages(k8s, path, 10))
    finally:
        k8s.clear_faults()
    assert [len(p["items"]) for p in got] == [2, 2, 2, 2, 2, 2, 0]
    assert [n for p in got for n in names(p)] == [f"s{i:03d}" for i in range(1, COUNT, 2)]
    assert [len(p["items"]) for p in sparse] == [0, 0, 0, 0, 0, 0, 1]
    assert all(p["metadata"].get("continue") for p in sparse[:-1])
    assert [len(p["items"]) for p in unselected] == [10, 10, 5]  # a selector's only
