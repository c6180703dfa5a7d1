"""The ExternalSecret controller at scale: ``./scripts/bench --external [--count N --keys K
--stores S]``.

Issue 8's benchmark: 1,000 ExternalSecrets over 100 distinct OpenBao KV keys. Goal: at most one
provider request per distinct key per refresh cycle (≤ 100 for 100 keys), every HTTP request
counted at the provider side, logins and metadata included.

``--stores S`` (issue 20): the common ESO set-up, one SecretStore in each of S namespaces
(``bench-0`` …) with the same AppRole credentials, the ExternalSecrets spread over them in
blocks of K (so every store uses every key). The goal stays ≤ K reads per interval: stores
with one read identity share one cache (per-store caches would read S × K). The controller's
``secretops_externalsecret_cache_entries`` and ``secretops_externalsecret_store_refs`` gauges
are reported beside the count.

What runs, all on 127.0.0.1 and stopped by PID at the end:

* the real OpenBao dev server (``bao server -dev``, as ``tests/fixtures/openbao.py`` starts it)
  with KV v2 at ``secret/``, K keys ``bench/kNNN`` and an AppRole limited to them;
* a **counting HTTP proxy** (``tests/controller/external/proxy.py``) in front of OpenBao: the
  store's ``server`` is the proxy, so every request the controller makes is recorded;
* the Kubernetes API emulator with the CRDs from ``crds/``, as ``bench/sealed_controller.py``;
* the controller as in a cluster (``python -m secretops_controller``), short retry delays.

This process creates the AppRole secret-id Secret and one SecretStore per namespace, waits
until the stores are ``Valid`` (their logins are counted apart), opens a watch on Secrets, then
POSTs N ExternalSecrets (``es0000`` reads ``bench/k000`` property ``value``, ``es0001``
``bench/k001`` …, key ``i mod K``, namespace ``(i div K) mod S``) with ``--refresh`` as their
interval, ``--concurrency`` in flight.

Measured:

* **time to first sync**: from the first POST to the watch event of the N-th distinct Secret
  (every value checked), and until every ExternalSecret reports ``Ready=True``;
* **provider requests during the first sync** (all of them: reads, logins, anything);
* **provider requests per refresh cycle**: after the first sync, every request over
  ``--cycles`` × ``--refresh`` seconds. **The verdict is on requests per refresh interval**
  (window requests / cycles, wall clock) ≤ K: the strict reading of "one read per key per
  refresh window". Shown beside it: the requests per *round* (window requests divided by the
  number of times every key was read on average: K when every request is a coalesced KV read,
  more with logins, metadata or token calls), the breakdown by kind, the effective refresh
  period per key and the gaps between two reads of one key (from the proxy's timestamps). The
  scheduler refreshes each key's first time a little early (``interval × (1 − 0.1 U)``, its
  phase), and a due batch pulls along entries due within its coalescing span, so the first
  intervals after the first sync are counted apart (``--settle-cycles``);
* the controller's **peak RSS** (``VmHWM``) and CPU seconds.

Results: ``bench/results/external-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.controllerkit import (
    SYSTEM_NS,
    SecretArrivals,
    approle_secret,
    call,
    clean_up,
    common_args,
    get_json,
    install_crds,
    post_all,
    proc_cpu,
    proc_status,
    seed_openbao,
    start_controller,
    start_openbao,
    vault_store,
    wait_for,
)
from tests.controller.external.proxy import CountingProxy
from tests.fixtures.k8s import start_emulator
from tests.helpers import stop_process

API = "/apis/secretops.dev/v1alpha1"
ALL_ES = f"{API}/externalsecrets"
ALL_SECRETS = "/api/v1/secrets"
KV_PREFIX = "bench"


def value_of(key: int) -> str:
    return f"external-bench-value-{key:03d}"


def key_path(k: int) -> str:
    return f"{KV_PREFIX}/k{k:03d}"


def namespaces(stores: int) -> list[str]:
    """One namespace per store: ``bench`` alone, else ``bench-0`` …"""
    return ["bench"] if stores == 1 else [f"bench-{n}" for n in range(stores)]


def namespace_of(i: int, keys: int, stores: int) -> str:
    """ExternalSecret ``i``'s namespace: blocks of ``keys`` in turn, so each store uses every
    key."""
    return namespaces(stores)[(i // keys) % stores]


def setup_cluster(url: str, proxy_url: str, role_id: str, secret_id: str, stores: int) -> None:
    install_crds(url)
    for ns in (SYSTEM_NS, *namespaces(stores)):
        assert call(url, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}}) == 201
    for ns in namespaces(stores):  # the same AppRole credentials in every namespace
        assert call(url, "POST", f"/api/v1/namespaces/{ns}/secrets",
                    approle_secret(ns, secret_id)) == 201
        assert call(url, "POST", f"{API}/namespaces/{ns}/secretstores",
                    vault_store(ns, proxy_url, role_id)) == 201


def external_secret(i: int, keys: int, refresh: str, stores: int = 1) -> dict[str, Any]:
    return {"apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": f"es{i:04d}", "namespace": namespace_of(i, keys, stores)},
            "spec": {"secretStoreRef": {"name": "vault", "kind": "SecretStore"},
                     "refreshInterval": refresh,
                     "data": [{"secretKey": "value",
                               "remoteRef": {"key": key_path(i % keys),
                                             "property": "value"}}]}}


def classify(path: str) -> str:
    if path.startswith("/v1/auth/token/"):
        return "token"
    if path.startswith("/v1/auth/"):
        return "login"
    if path.startswith("/v1/secret/data/"):
        return "read"
    if path.startswith("/v1/secret/metadata/"):
        return "metadata"
    return "other"


def breakdown(requests: list[tuple[str, str, str]]) -> dict[str, int]:
    return dict(Counter(classify(p) for _, p, _ in requests))


def read_gaps(requests: list[tuple[str, str, str]], stamps: list[float]) -> dict[str, Any]:
    """Time between consecutive reads of the same key in the window: the refresh period each
    key really gets (shorter than the interval = an early read)."""
    last: dict[str, float] = {}
    gaps: list[float] = []
    for (_, p, _), t in zip(requests, stamps, strict=False):
        if classify(p) != "read":
            continue
        if p in last:
            gaps.append(t - last[p])
        last[p] = t
    if not gaps:
        return {}
    gaps.sort()
    return {"min": round(gaps[0], 3), "p10": round(gaps[len(gaps) // 10], 3),
            "median": round(statistics.median(gaps), 3), "max": round(gaps[-1], 3),
            "count": len(gaps)}


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


async def gauges(session: aiohttp.ClientSession, ctl_url: str) -> dict[str, float]:
    """The controller's cache gauges (``/metrics``)."""
    async with session.get(ctl_url + "/metrics") as r:
        text = await r.text()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("secretops_externalsecret_cache_entries",
                    "secretops_externalsecret_store_refs"):
            out[name.removeprefix("secretops_externalsecret_")] = float(value)
    return out


async def measure(url: str, ctl_url: str, proxy: CountingProxy, pid: int, count: int,
                  keys: int, refresh_s: float, cycles: int, concurrency: int,
                  timeout: float, settle_cycles: int = 12, stores: int = 1) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def stores_valid() -> bool:
            for ns in namespaces(stores):
                _, body = await get_json(session, url, f"{API}/namespaces/{ns}/secretstores/vault")
                if not any(c.get("type") == "Ready" and c.get("reason") == "Valid"
                           for c in ((body or {}).get("status") or {}).get("conditions")
                           or []):
                    return False
            return True

        await wait_for(stores_valid, 60, "the SecretStores to be Valid")
        store_requests = breakdown(proxy.requests)
        proxy.reset()
        idle_rss = proc_status(pid, "VmRSS")

        names = {f"es{i:04d}" for i in range(count)}
        arrivals = SecretArrivals(names, need_value=True, path=ALL_SECRETS)
        await arrivals.start(session, url)
        seen = arrivals.seen
        refresh = f"{refresh_s:g}s"
        objects = [external_secret(i, keys, refresh, stores) for i in range(count)]
        cpu0 = proc_cpu(pid)
        started = time.perf_counter()
        for ns in namespaces(stores):
            await post_all(session, url, f"{API}/namespaces/{ns}/externalsecrets",
                           [o for o in objects if o["metadata"]["namespace"] == ns],
                           concurrency)
        create_s = time.perf_counter() - started
        await arrivals.wait_all(timeout, count)
        first_sync_s = max(seen.values()) - started
        first_requests = list(proxy.requests)
        cpu_first = proc_cpu(pid) - cpu0

        async def all_ready() -> bool:
            _, body = await get_json(session, url, ALL_ES)
            return sum(1 for o in body["items"] if _ready(o)) == count

        await wait_for(all_ready, timeout, "every ExternalSecret Ready=True")
        ready_s = time.perf_counter() - started

        _, body = await get_json(session, url, ALL_SECRETS)
        wrong = [s["metadata"]["name"] for s in body["items"]
                 if s["metadata"]["name"] in names and base64.b64decode(s["data"]["value"])
                 != value_of(int(s["metadata"]["name"][2:]) % keys).encode()]

        # the phases of the keys' refreshes merge into one batch over the first intervals
        # (entries due within the jitter span are pulled into a due batch and keep its phase):
        # counted apart, then the steady state
        proxy.reset()
        await asyncio.sleep(settle_cycles * refresh_s)  # a measurement window, not a wait
        settling = list(proxy.requests)
        # steady state: every request over `cycles` refresh intervals
        proxy.reset()
        cpu1 = proc_cpu(pid)
        window_s = cycles * refresh_s
        await asyncio.sleep(window_s)  # the measurement window itself, not a wait for a state
        window = list(proxy.requests)
        gaps = read_gaps(window, list(proxy.stamps))
        cpu_window = proc_cpu(pid) - cpu1
        per_key = Counter(p for _, p, _ in window if classify(p) == "read")
        reads_of_key = [per_key.get(f"/v1/secret/data/{KV_PREFIX}/k{k:03d}", 0)
                        for k in range(keys)]
        rounds = sum(reads_of_key) / keys  # refreshes of every key, on average, in the window
        per_cycle = len(window) / rounds if rounds else float("inf")
        times = sorted(t - started for t in seen.values())
        return {
            "count": count, "keys": keys, "stores": stores, "refresh_interval_s": refresh_s,
            "cache": await gauges(session, ctl_url),
            "concurrency": concurrency,
            "store_validation_requests": store_requests,
            "create_s": round(create_s, 3),
            "first_sync_all_secrets_s": round(first_sync_s, 3),
            "p50_secret_s": round(times[len(times) // 2], 3),
            "all_ready_s": round(ready_s, 3),
            "first_sync_requests": len(first_requests),
            "first_sync_breakdown": breakdown(first_requests),
            "window_s": window_s,
            "window_requests": len(window),
            "window_breakdown": breakdown(window),
            "refreshes_per_key_in_window": {"min": min(reads_of_key),
                                            "median": statistics.median(reads_of_key),
                                            "max": max(reads_of_key)},
            "effective_refresh_period_s": round(window_s / rounds, 2) if rounds else None,
            "distinct_keys_read_in_window": sum(1 for n in reads_of_key if n),
            "requests_per_round": round(per_cycle, 1),
            "requests_per_interval_s": round(len(window) / cycles, 1),
            "settling_cycles": settle_cycles,
            "settling_requests_per_interval": (round(len(settling) / settle_cycles, 1)
                                               if settle_cycles else None),
            "controller_cpu_s_first_sync": round(cpu_first, 2),
            "controller_cpu_s_window": round(cpu_window, 2),
            "controller_vmhwm_mib": round(proc_status(pid, "VmHWM"), 1),
            "controller_vmrss_mib_idle": round(idle_rss, 1),
            "controller_vmrss_mib_end": round(proc_status(pid, "VmRSS"), 1),
            "wrong_values": wrong,
            "read_gap_s": gaps,
        }


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="external-bench-"))
    bao: subprocess.Popen[bytes] | None = None
    emu = None
    proxy: CountingProxy | None = None
    ctl: subprocess.Popen[bytes] | None = None
    try:
        bao, bao_url = start_openbao(directory)
        role_id, secret_id = seed_openbao(
            bao_url, [key_path(k) for k in range(args.keys)],
            [value_of(k) for k in range(args.keys)], KV_PREFIX)
        proxy = CountingProxy(bao_url).start()
        emu, k8s = start_emulator(directory, log_requests=False)
        setup_cluster(k8s.url, proxy.url, role_id, secret_id, args.stores)
        log = directory / "controller.log"
        ctl, ctl_url = start_controller(k8s.kubeconfig, log, "--key-renew-period", "0",
                                        log_level=args.log_level)
        result = asyncio.run(measure(k8s.url, ctl_url, proxy, ctl.pid,
                                     args.count, args.keys, args.refresh, args.cycles,
                                     args.concurrency, args.timeout, args.settle_cycles,
                                     args.stores))
        result["emulator_cpu_s_total"] = round(proc_cpu(emu.pid), 2)
        # what a real kube-apiserver would have refused as malformed (400, 415): must be none
        result["refused_as_malformed"] = [f"{m['code']} {m['method']} {m['path']}: "
                                          f"{m['message'][:200]}" for m in k8s.malformed()]
        result["log_level"] = args.log_level
        result["log_lines"] = len(log.read_bytes().splitlines())
        result["value_in_log"] = any(value_of(k).encode() in log.read_bytes()
                                     for k in range(args.keys))
        return result
    finally:
        if ctl is not None:
            stop_process(ctl, grace=15)
        clean_up(directory, args.keep, emu, proxy, bao)


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench --external")
    parser.add_argument("--count", type=int, default=1_000, help="ExternalSecrets")
    parser.add_argument("--keys", type=int, default=100, help="distinct OpenBao KV keys")
    parser.add_argument("--stores", type=int, default=1,
                        help="SecretStores, one per namespace, all with the same credentials")
    parser.add_argument("--refresh", type=float, default=5.0,
                        help="refreshInterval of every ExternalSecret, seconds")
    parser.add_argument("--cycles", type=int, default=6,
                        help="refresh intervals in the steady-state window")
    parser.add_argument("--settle-cycles", type=int, default=12,
                        help="refresh intervals counted apart before the steady-state window, "
                             "while the keys' refresh phases merge into one batch")
    common_args(parser, timeout=180.0)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    r = run(args)
    r["loadavg_1m_start_end"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    n, k = r["count"], r["keys"]
    ok = r["requests_per_interval_s"] <= k
    r["verdict"] = {"requests_per_refresh_interval": "PASS" if ok else "FAIL"}
    print(f"store validation (before the clock)  {r['store_validation_requests']}")
    print(f"POSTed {n:,} ExternalSecrets ({r['concurrency']} in flight)  {r['create_s']:.2f} s")
    print(f"first sync: all {n:,} Secrets exist      {r['first_sync_all_secrets_s']:.2f} s "
          f"(median Secret {r['p50_secret_s']:.2f} s)")
    print(f"first sync: all {n:,} Ready=True         {r['all_ready_s']:.2f} s")
    print(f"provider requests, first sync        {r['first_sync_requests']} "
          f"{r['first_sync_breakdown']}")
    if r.get("settling_requests_per_interval") is not None:
        print(f"provider requests per interval while phases merge ({r['settling_cycles']} "
              f"intervals)  {r['settling_requests_per_interval']}")
    print(f"provider requests, {r['window_s']:g} s window      {r['window_requests']} "
          f"{r['window_breakdown']}; refreshes per key "
          f"{r['refreshes_per_key_in_window']}")
    print(f"provider requests per refresh interval ({r['refresh_interval_s']:g} s)  "
          f"{r['requests_per_interval_s']:g}   goal <= {k} for {k} keys: "
          f"{r['verdict']['requests_per_refresh_interval']}")
    cache = r["cache"]
    print(f"stores (one per namespace, same credentials)  {r['stores']}: cache entries "
          f"{cache.get('cache_entries', 0):g}, (store, key) pairs {cache.get('store_refs', 0):g}"
          f" (per-store caches would read {cache.get('store_refs', 0):g} per interval)")
    print(f"  per round (every key read once)    {r['requests_per_round']:g}; each key read "
          f"every {r['effective_refresh_period_s']} s on average")
    print(f"gap between two reads of one key     {r['read_gap_s']}")
    print(f"controller peak RSS (VmHWM)          {r['controller_vmhwm_mib']:.1f} MiB "
          f"(idle {r['controller_vmrss_mib_idle']:.1f}, end {r['controller_vmrss_mib_end']:.1f})")
    print(f"controller CPU                       {r['controller_cpu_s_first_sync']:.2f} s first "
          f"sync, {r['controller_cpu_s_window']:.2f} s in the window")
    refused = r["refused_as_malformed"]
    print(f"requests refused as malformed  {len(refused)}"
          + "".join(f"\n  {m}" for m in refused[:5]))
    checked = "all right" if not r["wrong_values"] else "WRONG: " + ", ".join(
        r["wrong_values"][:5])
    print(f"values checked                       {checked}; a value in the controller log: "
          f"{r['value_in_log']}")
    out = Path(__file__).parent / "results" / "external-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n")
    sys.exit(0 if ok and not r["wrong_values"] and not r["value_in_log"]
             and not refused else 1)


if __name__ == "__main__":
    main()
