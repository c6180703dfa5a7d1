"""``./scripts/bench --scale --replicas 3 [--shards 6]``: the scale run with replicas sharding.

What :mod:`bench.scale` adds when ``--replicas`` > 1 (the pieces of the shards themselves —
who holds which Lease, whose write an audit record is — are :mod:`bench.sharded_controller`'s):

* ``--replicas`` controllers with ``--shards``, spawned together for the cold start, each as a
  service account and Pod of its own (``replica-a``, ``replica-b``, …), so the emulator's audit
  log says which replica made each request; the Lease timings are ``--lease-duration``,
  ``--renew-deadline`` and ``--retry-period`` (default 15 / 10 / 2 s, the controller's);
* **each object handled once** (:func:`writes_once`), from the audit log of the cold start:
  in every namespace as many Secret creates as objects (the creates refused with 409, an
  attempt on a Secret that exists, listed apart), no object written by more than one replica
  (but an ExternalSecret's status, which a new holder after a hand-over reports again with its
  own read: counted apart);
* **kill -9** (:func:`kill_one`) of one replica (not shard 0's holder) once the window is
  over: at once one new SealedSecret and one new ExternalSecret in each namespace of its
  shards; measured are the time until the survivors hold its shards' Leases and until every
  new object's Secret holds its value, against the lease duration; no write from the dead
  replica after its death, the new objects' Secrets created once.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from collections import Counter, defaultdict
from typing import Any

import aiohttp
from secretops_controller.shards import shard_of

from bench.controllerkit import SYSTEM_NS, SecretArrivals, lease_flags, post_all
from bench.scale import WRITES, audit, external_object, is_lease, namespace, sealed_object
from bench.sharded_controller import balanced, holders, replica_of


def names(replicas: int) -> list[str]:
    return [f"replica-{chr(ord('a') + i)}" for i in range(replicas)]


def flags(args: argparse.Namespace) -> list[str]:
    return ["--shards", str(args.shards), *lease_flags(args)]


def writes_once(items: list[dict[str, Any]], want: Counter[str]) -> dict[str, Any]:
    """Each object handled once, by one replica (``want``: Secrets per namespace)."""
    mine = [r for r in items if r["verb"] in WRITES and not is_lease(r)
            and r["namespace"] not in (None, SYSTEM_NS)]
    secrets = [r for r in mine if r["resource"] == "secrets"]
    creates = Counter(r["namespace"] for r in secrets
                      if r["verb"] == "create" and (r["code"] or 0) < 400)
    writers: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in mine:
        if r["name"] and r["verb"] != "create":
            writers[(r["resource"], r["namespace"], r["name"])].add(replica_of(r))
    # an ExternalSecret's status names its last read: a new holder after a hand-over reads
    # the remote values again and reports that, while its Secret, unchanged, is not written
    shared = sorted(f"{k[0]} {k[1]}/{k[2]}: {sorted(v)}" for k, v in writers.items()
                    if len(v) > 1 and k[0] != "externalsecrets/status")
    reread = sum(1 for k, v in writers.items() if len(v) > 1 and k[0] == "externalsecrets/status")
    failed = [f"{r['code']} {r['verb']} {r['path']} by {replica_of(r)}" for r in secrets
              if r["verb"] == "create" and (r["code"] or 0) >= 400]
    return {
        "secret_creates_as_expected": creates == want,
        "failed_secret_creates": failed[:10],
        "other_secret_writes": sum(1 for r in secrets if r["verb"] != "create"),
        "objects_written_by_two_replicas": shared[:10],
        "external_statuses_reported_again_by_a_new_holder": reread,
        "writes_by_replica": dict(Counter(replica_of(r) for r in mine)),
        "status_writes_by_resource": dict(Counter(r["resource"] for r in mine
                                                  if r["resource"].endswith("/status"))),
    }


def once(w: dict[str, Any]) -> bool:
    """Each Secret created once and no object written by two replicas (a create refused with
    409, an attempt on a Secret that exists, is counted apart: ``failed_secret_creates``)."""
    return bool(w["secret_creates_as_expected"] and not w["objects_written_by_two_replicas"])


async def kill_one(session: aiohttp.ClientSession, url: str, args: argparse.Namespace,
                   ctls: dict[str, subprocess.Popen[bytes]], recipients: list[str],
                   keys: int) -> dict[str, Any]:
    """kill -9 of one replica; new objects in its shards; when they are handled."""
    owner = await asyncio.to_thread(holders, url, args.shards)
    victim = next(n for n in ctls if n != owner[0])
    lost = sorted(s for s, n in owner.items() if n == victim)
    orphans = sorted({namespace(i, args.namespaces) for i in range(args.namespaces)
                      if shard_of(namespace(i, args.namespaces), args.shards) in lost})
    # one of each kind in each of its namespaces (names apart from the cold start's)
    sealed = [sealed_object(recipients, ns, f"k{j:05d}", f"scale-sealed-value-k{j:05d}")
              for j, ns in enumerate(orphans)]
    external = [external_object(ns, f"ek{j:05d}", j % keys, f"{args.refresh:g}s")
                for j, ns in enumerate(orphans)]
    expected = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in sealed + external}
    arrivals = SecretArrivals(expected, need_value=True, namespaced=True)
    await arrivals.start(session, url)
    before, _, _ = await audit(session, url)
    mark = max((r["seq"] for r in before), default=0)
    killed = time.perf_counter()
    ctls[victim].kill()
    await asyncio.to_thread(ctls[victim].wait, 10)
    now, _, _ = await audit(session, url)
    dead = max((r["seq"] for r in now), default=mark)  # nothing of it can follow
    await post_all(session, url, None, sealed + external, args.concurrency)

    async def reheld() -> bool:
        h = await asyncio.to_thread(holders, url, args.shards)
        return all(h[s] not in ("", victim) for s in lost)

    while not await reheld():
        if time.perf_counter() - killed > args.lease_duration + 120:
            raise TimeoutError("the dead replica's shards were not taken over")
        await asyncio.sleep(0.05)  # polling interval of a loop with a deadline
    reheld_s = time.perf_counter() - killed
    await arrivals.wait_all(args.lease_duration + args.timeout, len(expected))
    resumed_s = max(arrivals.seen.values()) - killed
    by_kind = {kind: round(max(t for (_, name), t in arrivals.seen.items()
                               if name.startswith(prefix)) - killed, 2)
               for kind, prefix in (("SealedSecrets", "k"), ("ExternalSecrets", "ek"))}
    after, dropped, _ = await audit(session, url)
    after = [r for r in after if r["seq"] > mark]
    survivors = [n for n in ctls if n != victim]
    final = await asyncio.to_thread(balanced, url, args.shards, survivors)
    fresh = Counter(o["metadata"]["namespace"] for o in sealed + external)
    return {
        "victim": victim, "its_shards": lost, "its_namespaces": len(orphans),
        "new_objects": len(expected), "lease_duration_s": args.lease_duration,
        "shards_reheld_s": round(reheld_s, 2), "new_objects_handled_s": round(resumed_s, 2),
        "new_objects_handled_s_by_kind": by_kind,
        "writes_by_the_dead_replica": sum(1 for r in after if replica_of(r) == victim
                                          and r["verb"] in WRITES and r["seq"] > dead),
        "writes": writes_once([r for r in after if r["namespace"] in fresh], fresh),
        "audit_dropped": dropped,
        "holders_after": None if final is None else {str(k): v for k, v in final.items()},
    }


def expected_per_namespace(count: int, namespaces: int) -> Counter[str]:
    """Secrets per namespace at the cold start: a SealedSecret's and an ExternalSecret's each."""
    return Counter(namespace(i, namespaces) for i in range(count) for _ in range(2))


def summary(r: dict[str, Any]) -> str:
    """The replicas' lines of the report."""
    w, k = r["handled_once"], r["kill"]
    return "\n".join([
        f"{r['count']:,}: {r['replicas']} replicas, {r['shards']} shards: peak RSS MiB "
        f"{r['peak_rss_mib_by_replica']}; CPU s to all Secrets {r['cpu_cold_start_s_by_replica']}",
        f"  each object once: {once(w)} (creates as expected {w['secret_creates_as_expected']}, "
        f"failed creates {len(w['failed_secret_creates'])}, by two replicas "
        f"{len(w['objects_written_by_two_replicas'])}); writes by replica "
        f"{w['writes_by_replica']}",
        f"  kill -9 {k['victim']} (shards {k['its_shards']}, {k['its_namespaces']} namespaces): "
        f"re-held after {k['shards_reheld_s']:.2f} s, its {k['new_objects']} new objects' "
        f"Secrets after {k['new_objects_handled_s']:.2f} s {k['new_objects_handled_s_by_kind']} "
        f"(lease {k['lease_duration_s']:g} s); "
        f"writes by the dead one {k['writes_by_the_dead_replica']}; new objects once "
        f"{once(k['writes'])}"])


__all__ = ["expected_per_namespace", "flags", "kill_one", "names", "once", "summary",
           "writes_once"]
