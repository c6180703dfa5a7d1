"""Sharded controllers: ``./scripts/bench --shards [--count N] [--replicas 3] [--shards 6]``.

Issue 20: several replicas split the namespaces between them through Leases, each object is
handled by exactly one replica, and after ``kill -9`` of one replica its shards resume within
the lease time. What runs, all on 127.0.0.1 and stopped by PID at the end:

* the Kubernetes API emulator (plain HTTP, no request log) with the CRD and ``--namespaces``
  namespaces;
* ``--replicas`` controllers (``python -m secretops_controller --shards N``), each as a service
  account of its own, so the emulator's audit log says which replica made each call; default
  Lease timings (15 s lease, 10 s renew deadline, 2 s retry period) unless given;
* this process: waits until the shards are shared out, seals ``--count`` SealedSecrets spread
  over the namespaces (before the clock), POSTs them with ``--concurrency`` in flight, and waits
  for every Secret (a cluster-wide watch) and every ``Synced=True``.

Measured and checked: the time until all Secrets exist and all are Synced; **each object written
once** (one Secret create, one status patch, from the audit log) and **by the holder of its
namespace's shard**; each replica's peak RSS (VmHWM) and CPU. Then ``kill -9`` of one replica
(not shard 0's) and one new SealedSecret in each of its namespaces: the time until its shards'
Leases are held by the survivors and until those new objects' Secrets exist; no write from the
dead replica, the old objects of its shards not written again. Results:
``bench/results/shards-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from secretops_controller.shards import lease_name, shard_of

from bench.controllerkit import (
    API,
    SYSTEM_NS,
    SecretArrivals,
    call,
    common_args,
    install_crds,
    lease_args,
    lease_flags,
    post,
    proc_cpu,
    proc_status,
    start_controller,
)
from secretops.sealing import parse_recipients_file, seal_secret
from tests.fixtures.k8s import K8s, start_emulator, stop
from tests.helpers import stop_process
from tests.k8s.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NS}/leases"
WRITES = ("create", "update", "patch", "delete")


def holders(url: str, shards: int) -> dict[int, str]:
    out = {}
    for i in range(shards):
        try:
            out[i] = str((_json(url, f"{LEASES}/{lease_name('secretops-controller', i)}")
                          .get("spec") or {}).get("holderIdentity") or "")
        except OSError:
            out[i] = ""
    return out


def _json(url: str, path: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=30) as r:
        return dict(json.loads(r.read()))


def balanced(url: str, shards: int, names: list[str]) -> dict[int, str] | None:
    h = holders(url, shards)
    counts = Counter(h.values())
    share = -(-shards // len(names))
    return h if set(counts) == set(names) and max(counts.values()) <= share else None


def start_replica(k8s: K8s, directory: Path, name: str, flags: list[str]
                  ) -> tuple[subprocess.Popen[bytes], str]:
    """A replica as service account ``name`` (the audit log names it) and Pod ``name``."""
    kubeconfig = k8s.kubeconfig_for(SYSTEM_NS, name, directory / f"{name}.kubeconfig")
    return start_controller(kubeconfig, directory / f"{name}.log", *flags, pod_name=name)


def sealed_objects(cert: str, names: list[tuple[str, str]]) -> list[dict[str, Any]]:
    recipients = parse_recipients_file(cert)
    return [seal_secret({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": name, "namespace": ns},
                         "stringData": {"value": f"bench-{ns}-{name}"}}, recipients)
            for ns, name in names]


async def post_all(url: str, objects: list[dict[str, Any]], concurrency: int) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for o in objects:
        queue.put_nowait(o)
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def creator() -> None:
            while not queue.empty():
                o = queue.get_nowait()
                ns = o["metadata"]["namespace"]
                await post(session, url, f"{API}/namespaces/{ns}/sealedsecrets", o)

        await asyncio.gather(*(creator() for _ in range(concurrency)))


async def post_and_wait(url: str, objects: list[dict[str, Any]], concurrency: int,
                        timeout: float) -> tuple[float, float]:
    """POST ``objects``; seconds until the last one's Secret appears, and until the last POST."""
    names = {o["metadata"]["name"] for o in objects}
    connector = aiohttp.TCPConnector(limit=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        arrivals = SecretArrivals(names, path="/api/v1/secrets")
        await arrivals.start(session, url)
        started = time.perf_counter()
        await post_all(url, objects, concurrency)
        posted = time.perf_counter() - started
        await arrivals.wait_all(timeout, len(names))
        return max(arrivals.seen.values()) - started, posted


def synced_count(url: str) -> int:
    items = _json(url, f"{API}/sealedsecrets").get("items") or []
    return sum(1 for i in items for c in (i.get("status") or {}).get("conditions") or []
               if c.get("type") == "Synced" and c.get("status") == "True")


def replica_of(record: dict[str, Any]) -> str:
    return str(record.get("serviceAccount") or "").rsplit("/", 1)[-1]


def check_writes(records: list[dict[str, Any]], objects: list[dict[str, Any]],
                 owner: dict[int, str] | None, shards: int) -> dict[str, Any]:
    """Once per object (a Secret create, a status patch), by the shard's holder (``owner``)."""
    namespaces = {o["metadata"]["namespace"] for o in objects}
    mine = [r for r in records if r["verb"] in WRITES and r["namespace"] in namespaces]
    creates = Counter(r["namespace"] for r in mine if r["resource"] == "secrets"
                      and r["verb"] == "create" and (r["code"] or 0) < 400)
    want = Counter(o["metadata"]["namespace"] for o in objects)
    other_secret_writes = [r for r in mine if r["resource"] == "secrets" and r["verb"] != "create"
                           and (r["code"] or 0) < 400]
    statuses = Counter(r["name"] for r in mine if r["resource"] == "sealedsecrets/status"
                       and (r["code"] or 0) < 400)
    names = {o["metadata"]["name"] for o in objects}
    wrong = [] if owner is None else [
        f"{replica_of(r)} {r['verb']} {r['path']}" for r in mine
        if replica_of(r) != owner[shard_of(r["namespace"], shards)]]
    return {
        "secret_creates_as_expected": creates == want,
        "other_secret_writes": len(other_secret_writes),
        "status_writes_once_each": set(statuses) == names and set(statuses.values()) == {1},
        "writes_by_a_replica_not_holding_the_shard": wrong[:10],
        "writes_by_replica": dict(Counter(replica_of(r) for r in mine)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="shards-bench-"))
    emu, k8s = start_emulator(directory, log_requests=False)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    result: dict[str, Any] = {"count": args.count, "replicas": args.replicas,
                              "shards": args.shards, "namespaces": args.namespaces,
                              "lease_duration_s": args.lease_duration}
    try:
        url = k8s.url
        install_crds(url)
        namespaces = [f"bench-{i:03d}" for i in range(args.namespaces)]
        for ns in (SYSTEM_NS, *namespaces):
            assert call(url, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}}) == 201
        flags = ["--shards", str(args.shards), *lease_flags(args), "--log-level", args.log_level]
        names = [f"replica-{chr(ord('a') + i)}" for i in range(args.replicas)]
        for name in names:
            procs[name], urls[name] = start_replica(k8s, directory, name, flags)
        started = time.monotonic()
        owner = wait_for(lambda: balanced(url, args.shards, names), 120, "the shards shared out")
        result["shared_out_s"] = round(time.monotonic() - started, 2)
        result["holders"] = {str(k): v for k, v in owner.items()}
        cert = wait_for(lambda: _cert(urls[owner[0]]), 60, "the certificate")
        spread = [(namespaces[i % len(namespaces)], f"s{i:05d}") for i in range(args.count)]
        t = time.perf_counter()
        objects = sealed_objects(cert, spread)
        result["seal_s"] = round(time.perf_counter() - t, 2)
        victim = next(n for n in names if n != owner[0])
        lost = sorted(s for s, n in owner.items() if n == victim)
        orphans = [ns for ns in namespaces if shard_of(ns, args.shards) in lost]
        fresh = sealed_objects(cert, [(ns, f"o{i:05d}") for i, ns in enumerate(orphans)])
        rss_idle = {n: round(proc_status(p.pid, "VmRSS"), 1) for n, p in procs.items()}
        k8s.reset_audit()
        all_secrets, posted = asyncio.run(post_and_wait(url, objects, args.concurrency,
                                                        args.timeout))
        result["post_s"] = round(posted, 2)
        result["all_secrets_s"] = round(all_secrets, 2)
        t0 = time.perf_counter() - all_secrets
        wait_for(lambda: synced_count(url) >= args.count, args.timeout, "every Synced=True")
        result["all_synced_s"] = round(time.perf_counter() - t0, 2)
        assert holders(url, args.shards) == owner, "a shard moved during the run"
        records = k8s.audit()
        result["writes"] = check_writes(records, objects, owner, args.shards)
        result["rss_idle_mib"] = rss_idle
        result["peak_rss_mib"] = {n: round(proc_status(p.pid, "VmHWM"), 1)
                                  for n, p in procs.items()}
        result["cpu_s"] = {n: round(proc_cpu(p.pid), 2) for n, p in procs.items()}

        # ---- kill -9 of one replica (not shard 0's): its shards resume -------------------
        mark = max((r["seq"] for r in records), default=0)
        killed = time.monotonic()
        procs[victim].kill()
        procs[victim].wait(10)
        dead = max((r["seq"] for r in k8s.audit()), default=0)  # nothing of it can follow
        asyncio.run(post_all(url, fresh, args.concurrency))
        wait_for(lambda: all(holders(url, args.shards)[s] not in ("", victim) for s in lost),
                 args.lease_duration + 60, "the dead replica's shards re-held")
        reheld = time.monotonic() - killed
        fresh_names = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in fresh}

        def resumed() -> bool:
            items = _json(url, "/api/v1/secrets").get("items") or []
            have = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items}
            return fresh_names <= have

        wait_for(resumed, args.lease_duration + 120, "its objects handled")
        resumed_s = time.monotonic() - killed
        after = [r for r in k8s.audit() if r["seq"] > mark]
        survivors = [n for n in names if n != victim]
        final = wait_for(lambda: balanced(url, args.shards, survivors), 60,
                         "survivors balanced")
        result["kill"] = {
            "victim": victim, "its_shards": lost, "its_namespaces": len(orphans),
            "new_objects": len(fresh),
            "shards_reheld_s": round(reheld, 2), "objects_resumed_s": round(resumed_s, 2),
            "writes_by_the_dead_replica": sum(1 for r in after if replica_of(r) == victim
                                              and r["verb"] in WRITES and r["seq"] > dead),
            "writes": check_writes(after, fresh, None, args.shards),
            "holders_after": {str(k): v for k, v in final.items()},
        }
        result["refused_as_malformed"] = [f"{m['code']} {m['method']} {m['path']}"
                                          for m in k8s.malformed()]
        return result
    finally:
        for p in procs.values():
            stop_process(p, grace=15)
        stop(emu)
        if args.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _cert(url: str) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/v1/cert", timeout=5) as r:
            return str(r.read().decode()) if r.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def main() -> None:
    p = argparse.ArgumentParser(prog="scripts/bench --shards")
    p.add_argument("--count", type=int, default=1_800)
    p.add_argument("--namespaces", type=int, default=60)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--shards", type=int, default=6)
    lease_args(p, 15.0, 10.0, 2.0)
    common_args(p, timeout=300.0)
    args = p.parse_args()
    load_start = os.getloadavg()
    r = run(args)
    r["loadavg_start_end"] = [list(load_start), list(os.getloadavg())]
    r["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    w, k = r["writes"], r["kill"]
    once = w["secret_creates_as_expected"] and not w["other_secret_writes"] and \
        w["status_writes_once_each"] and not w["writes_by_a_replica_not_holding_the_shard"]
    r["verdict"] = {
        "each_object_written_once_by_its_shard": "PASS" if once else "FAIL",
        "resumed_within_the_lease_time": "PASS" if k["shards_reheld_s"] <= args.lease_duration
        + 2 * args.retry_period + 1 else "FAIL",
        "dead_replica_silent": "PASS" if not k["writes_by_the_dead_replica"] else "FAIL",
    }
    print(f"{r['replicas']} replicas, {r['shards']} shards, {r['count']:,} SealedSecrets in "
          f"{r['namespaces']} namespaces; shards shared out in {r['shared_out_s']:.2f} s")
    print(f"all Secrets exist {r['all_secrets_s']:.2f} s, all Synced {r['all_synced_s']:.2f} s "
          f"(POSTs {r['post_s']:.2f} s)")
    print(f"writes by replica {w['writes_by_replica']}; once each, by the holder: "
          f"{r['verdict']['each_object_written_once_by_its_shard']}")
    print(f"peak RSS (MiB) {r['peak_rss_mib']}; CPU (s) {r['cpu_s']}")
    print(f"kill -9 {k['victim']} (shards {k['its_shards']}, {k['its_namespaces']} namespaces): "
          f"re-held after {k['shards_reheld_s']:.2f} s, its {k['new_objects']} new objects "
          f"handled after {k['objects_resumed_s']:.2f} s (lease {args.lease_duration:.0f} s); "
          f"writes by the dead one {k['writes_by_the_dead_replica']}; new objects once: "
          f"{k['writes']['secret_creates_as_expected'] and not k['writes']['other_secret_writes']}")
    print(f"malformed requests {len(r['refused_as_malformed'])}; {r['uptime']}")
    out = REPO / "bench" / "results" / "shards-latest.json"
    out.write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    sys.exit(0 if all(v == "PASS" for v in r["verdict"].values()) else 1)


if __name__ == "__main__":
    main()
