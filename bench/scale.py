"""The controller at ten thousand objects: ``./scripts/bench --scale [--sizes 1000,5000,10000]``.

Issue 20's benchmark. For each size N: N SealedSecrets and N ExternalSecrets (over N / 10
remote OpenBao keys) spread over 500 namespaces, each namespace with its own SecretStore (the
same AppRole credentials in every one, as ESO users set it up). Goals at N = 10,000: all 2 N
Secrets within 60 s of a cold start, controller peak RSS ≤ 250 MiB, provider reads per refresh
round ≤ distinct remote keys, zero API writes in a round where nothing changed. Running 1k, 5k
and 10k shows the cost per object (MiB per 1,000 objects).

What runs, for each size, all on 127.0.0.1 and stopped by PID at the end (the pieces are
:mod:`bench.controllerkit`'s):

* OpenBao dev with N / 10 KV keys ``scale/kNNNN`` and an AppRole, behind the counting proxy;
* the Kubernetes API emulator with the CRDs, 500 namespaces ``scale-NNN`` (each: the AppRole
  Secret and a SecretStore ``vault``), the key ring (one sealing key, made here as the
  controller would, so the SealedSecrets can be sealed before it starts), then the N
  SealedSecrets (``sNNNNN``, one value) and N ExternalSecrets (``esNNNNN``, key ``i mod K``,
  ``refreshInterval`` = ``--refresh``), POSTed with ``--concurrency`` in flight — all before
  the clock starts;
* a watch on all Secrets (this process), then **the controller, cold**: ``python -m
  secretops_controller`` authenticated as a service account (so the emulator's audit log
  records each of its requests), ``--resync-period`` = ``--refresh`` (a refresh round holds
  one SealedSecret resync too).

Measured:

* **cold start**: from the controller's spawn to the watch event of the last of the 2 N
  Secrets holding its value; then until every object reports Ready / Synced;
* **peak RSS** (``VmHWM``, the whole run) and RSS at the end;
* after ``--settle-rounds`` refresh rounds, a window of ``--rounds`` rounds: controller **CPU
  seconds per round**, **API requests per round** (the audit log, by verb; the Lease renewals
  of leader election apart), **API writes** in the window (nothing changed: must be 0),
  **provider reads per round** (KV reads at the proxy) against the distinct remote keys, and
  every provider request by kind.

Results: ``bench/results/scale-latest.json`` (with ``--replicas``: ``scale-shards-latest.json``,
see :mod:`bench.scale_shards`) and a table; the growth in MiB per 1,000 objects
(SealedSecrets and ExternalSecrets together) between consecutive sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.controllerkit import (
    API,
    SYSTEM_NS,
    SecretArrivals,
    approle_secret,
    clean_up,
    common_args,
    get_json,
    install_crds,
    lease_args,
    loadavg,
    post_all,
    proc_cpu,
    proc_status,
    ready,
    seed_openbao,
    start_controller,
    start_openbao,
    vault_store,
    wait_for,
)
from bench.external_controller import breakdown, classify
from secretops.sealing import seal_secret
from secretops.sealing.keyring import keyring_secret
from tests.controller.external.proxy import CountingProxy
from tests.fixtures.k8s import K8s, start_emulator
from tests.helpers import stop_process

PREFIX = "scale"
SERVICE_ACCOUNT = "secretops-controller"
GOAL_S, GOAL_MIB = 60.0, 250.0
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def key_path(k: int) -> str:
    return f"{PREFIX}/k{k:04d}"


def remote_value(k: int) -> str:
    return f"scale-remote-value-{k:04d}"


def sealed_value(i: int) -> str:
    return f"scale-sealed-value-{i:05d}"


def namespace(i: int, namespaces: int) -> str:
    return f"{PREFIX}-{i % namespaces:03d}"


def sealing_key() -> tuple[dict[str, Any], list[str]]:
    """A key-ring Secret for a fresh age key (what the controller makes on an empty ring) and
    its recipient."""
    from pyrage import x25519

    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    secret = keyring_secret(str(ident), recipient, datetime.now(UTC), SYSTEM_NS)
    secret["metadata"]["namespace"] = SYSTEM_NS
    return secret, [recipient]


def sealed_object(recipients: list[str], ns: str, name: str, value: str) -> dict[str, Any]:
    return seal_secret({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "namespace": ns},
                        "stringData": {"value": value}}, recipients)


def sealed_objects(recipients: list[str], count: int, namespaces: int) -> list[dict[str, Any]]:
    return [sealed_object(recipients, namespace(i, namespaces), f"s{i:05d}", sealed_value(i))
            for i in range(count)]


def external_object(ns: str, name: str, key: int, refresh: str) -> dict[str, Any]:
    return {"apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"secretStoreRef": {"name": "vault", "kind": "SecretStore"},
                     "refreshInterval": refresh,
                     "data": [{"secretKey": "value",
                               "remoteRef": {"key": key_path(key), "property": "value"}}]}}


def external_objects(count: int, keys: int, namespaces: int, refresh: str
                     ) -> list[dict[str, Any]]:
    return [external_object(namespace(i, namespaces), f"es{i:05d}", i % keys, refresh)
            for i in range(count)]


def expected_values(count: int, keys: int, namespaces: int) -> dict[tuple[str, str], str]:
    out = {}
    for i in range(count):
        ns = namespace(i, namespaces)
        out[(ns, f"s{i:05d}")] = sealed_value(i)
        out[(ns, f"es{i:05d}")] = remote_value(i % keys)
    return out


async def setup(session: aiohttp.ClientSession, url: str, proxy_url: str, role_id: str,
                secret_id: str, namespaces: int, concurrency: int) -> None:
    install_crds(url)
    names = [f"{PREFIX}-{n:03d}" for n in range(namespaces)]
    await post_all(session, url, "/api/v1/namespaces",
                   [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                    for n in [SYSTEM_NS, *names]], concurrency)
    await post_all(session, url, None, [approle_secret(n, secret_id) for n in names],
                   concurrency)
    await post_all(session, url, None, [vault_store(n, proxy_url, role_id) for n in names],
                   concurrency)


Counts = dict[str, dict[str, int]]  # {verb: {resource: requests}}


async def audit(session: aiohttp.ClientSession, url: str, clear: bool = False
                ) -> tuple[list[dict[str, Any]], int, Counts]:
    """The controller's requests since the last clear (the newest the log keeps, and how many
    it dropped) and all of them counted by verb and resource (the emulator's counters drop
    none); then ``clear`` empties both (the few requests between the calls are lost)."""
    async with session.get(url + "/_emulator/audit/counts") as r:
        counts = (await r.json())["counts"]
    async with session.get(url + "/_emulator/audit") as r:
        body = await r.json()
    if clear:
        async with session.delete(url + "/_emulator/audit") as r:
            await r.read()
    return body["items"], body["dropped"], counts


def merged(a: Counts, b: Counts) -> Counts:
    return {v: dict(Counter(a.get(v, {})) + Counter(b.get(v, {}))) for v in sorted({*a, *b})}


def without_leases(counts: Counts) -> Counts:
    """The counts but the Lease's (leader election renews it all the time)."""
    out = {v: {k: n for k, n in c.items() if k != "leases"} for v, c in counts.items()}
    return {v: c for v, c in out.items() if c}


def total(counts: Counts, verbs: set[str] | None = None) -> int:
    return sum(n for v, c in counts.items() if verbs is None or v in verbs for n in c.values())


def is_lease(r: dict[str, Any]) -> bool:
    return bool(r["resource"] == "leases")


async def count_ready(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    _, es = await get_json(session, url, f"{API}/externalsecrets")
    _, ss = await get_json(session, url, f"{API}/sealedsecrets")
    return (sum(1 for o in es["items"] if ready(o)),
            sum(1 for o in ss["items"] if ready(o, "Synced")))


async def measure(k8s: K8s, proxy: CountingProxy, args: argparse.Namespace, count: int,
                  keys: int, role_id: str, secret_id: str, directory: Path) -> dict[str, Any]:
    from bench import scale_shards  # it builds on this module

    url = k8s.url
    ns_count = args.namespaces
    refresh = args.refresh
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    result: dict[str, Any] = {"count": count, "keys": keys, "namespaces": ns_count,
                              "refresh_s": refresh, "replicas": args.replicas,
                              "load_start": loadavg()}
    if args.replicas > 1:
        result.update(shards=args.shards, lease_duration_s=args.lease_duration,
                      retry_period_s=args.retry_period)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t = time.perf_counter()
        await setup(session, url, proxy.url, role_id, secret_id, ns_count, args.concurrency)
        ring, recipients = sealing_key()
        await post_all(session, url, None, [ring], 1)
        sealed = sealed_objects(recipients, count, ns_count)
        result["seal_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        await post_all(session, url, None, sealed, args.concurrency)
        del sealed
        await post_all(session, url, None,
                       external_objects(count, keys, ns_count, f"{refresh:g}s"),
                       args.concurrency)
        result["create_s"] = round(time.perf_counter() - t, 2)
        result["creates_per_s"] = round(2 * count / result["create_s"])

        expected = expected_values(count, keys, ns_count)
        arrivals = SecretArrivals(set(expected), need_value=True, namespaced=True)
        await arrivals.start(session, url)
        proxy.reset()
        await audit(session, url, clear=True)
        sharded = args.replicas > 1
        names = scale_shards.names(args.replicas) if sharded else [SERVICE_ACCOUNT]
        # one controller: a Lease that survives a loaded machine: with the defaults (renewal
        # every 2 s, given up after 10 s) a controller starved of CPU for 10 s loses
        # leadership, stops kopf and starts over, as it should in a cluster, but that measures
        # the machine's load (the replicas keep the given timings: their takeover is measured)
        election = scale_shards.flags(args) if sharded else [
            "--lease-duration", "90s", "--renew-deadline", "60s", "--retry-period", "5s"]
        print(f"  {count:,}: objects created; starting {len(names)} controller(s)",
              file=sys.stderr)
        ctls: dict[str, subprocess.Popen[bytes]] = {}
        logs = [directory / f"{name}.log" for name in names]
        started = time.perf_counter()
        try:
            for name, log in zip(names, logs, strict=True):
                kubeconfig = k8s.kubeconfig_for(SYSTEM_NS, name, directory / f"{name}.kubeconfig")
                ctls[name], _ = start_controller(
                    kubeconfig, log, "--key-renew-period", "0", "--resync-period",
                    f"{refresh:g}s", *election, log_level=args.log_level,
                    pod_name=name if sharded else None)

            def cpu() -> float:
                return sum(proc_cpu(p.pid) for p in ctls.values())

            def rss(field: str, key: str) -> None:
                """The largest replica's in ``key``, each one's in ``key_by_replica``."""
                each = {n: round(proc_status(p.pid, field), 1) for n, p in ctls.items()}
                result[key] = max(each.values())
                if sharded:
                    result[f"{key}_by_replica"] = each

            await arrivals.wait_all(args.timeout, len(expected))
            result["cold_start_s"] = round(max(arrivals.seen.values()) - started, 2)
            result["cpu_cold_start_s"] = round(cpu(), 2)
            if sharded:
                result["cpu_cold_start_s_by_replica"] = {
                    n: round(proc_cpu(p.pid), 2) for n, p in ctls.items()}
            rss("VmRSS", "rss_mib_at_all_secrets")
            print(f"  {count:,}: all {len(expected):,} Secrets after "
                  f"{result['cold_start_s']} s", file=sys.stderr)

            async def all_ready() -> bool:
                es, ss = await count_ready(session, url)
                return es == count and ss == count

            await wait_for(all_ready, args.timeout, "every object Ready / Synced", interval=2)
            result["all_ready_s"] = round(time.perf_counter() - started, 2)
            # then until the controller writes nothing for a while (Events still queued)
            items, dropped, counts = await audit(session, url, clear=True)
            while True:
                await asyncio.sleep(args.quiet)  # a window, not a wait for a state
                more, more_dropped, more_counts = await audit(session, url, clear=True)
                items += more
                counts = merged(counts, more_counts)
                dropped += more_dropped
                if not total(without_leases(more_counts), WRITES):
                    break
                if time.perf_counter() - started > args.timeout:
                    raise TimeoutError("the controller kept writing")
            result["quiet_s"] = round(time.perf_counter() - started - args.quiet, 2)
            result["cold_start_api"] = {"requests": total(counts), "dropped": dropped,
                                        "by_verb": counts}
            result["cold_start_provider"] = breakdown(proxy.requests)
            rss("VmRSS", "rss_mib_quiet")
            if sharded:  # every write of the cold start is in the records (see run_size)
                result["handled_once"] = scale_shards.writes_once(
                    items, scale_shards.expected_per_namespace(count, ns_count))
            del items

            # settle: the keys' refresh phases merge into one batch per round
            await asyncio.sleep(args.settle_rounds * refresh)  # a window, not a wait
            proxy.reset()
            await audit(session, url, clear=True)
            cpu0 = cpu()
            await asyncio.sleep(args.rounds * refresh)  # the measurement window itself
            used = cpu() - cpu0
            items, dropped, counts = await audit(session, url, clear=True)
            window = list(proxy.requests)
            rounds = args.rounds
            leases = sum(c.get("leases", 0) for c in counts.values())
            others = without_leases(counts)
            writes = [r for r in items if r["verb"] in WRITES and not is_lease(r)]
            reads = sum(1 for _, p, _ in window if classify(p) == "read")
            result.update({
                "rounds": rounds,
                "cpu_s_per_round": round(used / rounds, 2),
                "api_requests_per_round": round(total(others) / rounds, 1),
                "api_by_verb_window": others,
                "api_writes_window": total(others, WRITES),
                "api_writes_sample": [f"{r['verb']} {r['path']}" for r in writes[:5]],
                "lease_requests_window": leases,
                "audit_dropped": dropped,
                "provider_reads_per_round": round(reads / rounds, 1),
                "provider_requests_window": breakdown(window),
            })
            rss("VmHWM", "peak_rss_mib")
            rss("VmRSS", "rss_mib_end")
            # every value right (one list of all Secrets, after the window)
            _, body = await get_json(session, url, "/api/v1/secrets")
            got = {(s["metadata"]["namespace"], s["metadata"]["name"]):
                   base64.b64decode((s.get("data") or {}).get("value", "")).decode()
                   for s in body["items"]
                   if (s["metadata"]["namespace"], s["metadata"]["name"]) in expected}
            result["wrong_values"] = sorted(f"{k[0]}/{k[1]}" for k, v in expected.items()
                                            if got.get(k) != v)[:10]
            if sharded:
                result["kill"] = await scale_shards.kill_one(session, url, args, ctls,
                                                             recipients, keys)
            result["value_in_log"] = any(remote_value(k).encode() in log.read_bytes()
                                         for k in range(min(keys, 50)) for log in logs)
        finally:
            for p in ctls.values():
                stop_process(p, grace=15)
            result["log_lines"] = sum(len(log.read_bytes().splitlines())
                                      for log in logs if log.exists())
    result["load_end"] = loadavg()
    return result


def run_size(args: argparse.Namespace, count: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    keys = max(1, count // args.per_key)
    bao: subprocess.Popen[bytes] | None = None
    emu = None
    proxy: CountingProxy | None = None
    try:
        bao, bao_url = start_openbao(directory)
        role_id, secret_id = seed_openbao(bao_url, [key_path(k) for k in range(keys)],
                                          [remote_value(k) for k in range(keys)], PREFIX)
        proxy = CountingProxy(bao_url).start()
        # one controller: the records only sample the writes, the counts (every request) are
        # exact anyway; replicas: each object's writers are read from the records, so they
        # must hold every request of the cold start (~7 per object)
        limit = 10_000 if args.replicas <= 1 else 20 * count + 100_000
        emu, k8s = start_emulator(directory, "--audit-limit", str(limit), log_requests=False)
        result = asyncio.run(measure(k8s, proxy, args, count, keys, role_id, secret_id,
                                     directory))
        result["emulator_cpu_s"] = round(proc_cpu(emu.pid), 2)
        result["emulator_peak_rss_mib"] = round(proc_status(emu.pid, "VmHWM"), 1)
        result["refused_as_malformed"] = [f"{m['code']} {m['method']} {m['path']}: "
                                          f"{m['message'][:200]}" for m in k8s.malformed()]
        return result
    finally:
        clean_up(directory, args.keep, emu, proxy, bao)


def growth(results: list[dict[str, Any]], field: str) -> list[float | None]:
    """MiB per 1,000 objects (both kinds together) from the previous size to each size."""
    out: list[float | None] = [None]
    for a, b in itertools.pairwise(results):
        objects = 2 * (b["count"] - a["count"]) / 1000
        out.append(round((b[field] - a[field]) / objects, 2) if objects else None)
    return out


def table(results: list[dict[str, Any]]) -> str:
    peak, end = growth(results, "peak_rss_mib"), growth(results, "rss_mib_end")
    rows = ["| each kind | cold start: all Secrets | all Ready | peak RSS MiB | RSS end MiB | "
            "MiB / 1k objects (peak, end) | CPU s / round | API requests / round | "
            "API writes, unchanged rounds | provider reads / round (keys) | load start→end |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, gp, ge in zip(results, peak, end, strict=True):
        g = "–" if gp is None else f"{gp:+.2f}, {ge:+.2f}"
        rows.append(
            f"| {r['count']:,} | {r['cold_start_s']:.1f} s | {r['all_ready_s']:.1f} s | "
            f"{r['peak_rss_mib']:.0f} | {r['rss_mib_end']:.0f} | {g} | "
            f"{r['cpu_s_per_round']:.2f} | {r['api_requests_per_round']:g} | "
            f"{r['api_writes_window']} in {r['rounds']} | "
            f"{r['provider_reads_per_round']:g} ({r['keys']:,}) | "
            f"{r['load_start'][0]:.1f}→{r['load_end'][0]:.1f} |")
    return "\n".join(rows)


def verdicts(r: dict[str, Any]) -> dict[str, str]:
    from bench import scale_shards  # it builds on this module

    def ok(b: bool) -> str:
        return "PASS" if b else "FAIL"
    out = {"cold_start": ok(r["cold_start_s"] <= GOAL_S),
           "peak_rss": ok(r["peak_rss_mib"] <= GOAL_MIB),
           # each replica reads the keys its shards' objects use: replicas x keys at most
           "provider_reads": ok(r["provider_reads_per_round"] <= r["keys"] * r["replicas"]),
           "unchanged_writes": ok(r["api_writes_window"] == 0),
           "values": ok(not r["wrong_values"] and not r["value_in_log"]),
           "malformed": ok(not r["refused_as_malformed"])}
    if "kill" in r:
        k = r["kill"]
        out["handled_once"] = ok(scale_shards.once(r["handled_once"]))
        out["kill_resumed_within_the_lease_time"] = ok(
            k["shards_reheld_s"] <= k["lease_duration_s"] + 2 * r["retry_period_s"] + 1)
        out["kill_new_objects_once"] = ok(scale_shards.once(k["writes"]))
        out["kill_dead_replica_silent"] = ok(not k["writes_by_the_dead_replica"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench --scale")
    parser.add_argument("--sizes", default="1000,5000,10000",
                        help="SealedSecrets (and as many ExternalSecrets) per run")
    parser.add_argument("--namespaces", type=int, default=500)
    parser.add_argument("--per-key", type=int, default=10,
                        help="ExternalSecrets per distinct remote key (keys = size / this)")
    parser.add_argument("--refresh", type=float, default=30.0,
                        help="refreshInterval of every ExternalSecret and the controller's "
                             "--resync-period, seconds: one refresh round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in the window")
    parser.add_argument("--settle-rounds", type=int, default=1,
                        help="rounds after all are Ready and before the window")
    parser.add_argument("--quiet", type=float, default=5.0,
                        help="after all are Ready: wait until a span this long (seconds) "
                             "has no API write but the Lease's")
    parser.add_argument("--replicas", type=int, default=1,
                        help="controllers; more than one: sharding (--shards) and kill -9")
    parser.add_argument("--shards", type=int, default=6, help="with --replicas > 1")
    lease_args(parser, 15.0, 10.0, 2.0)  # with --replicas > 1 (one controller: 90 / 60 / 5)
    common_args(parser, timeout=2400.0)
    args = parser.parse_args()
    from bench import scale_shards  # it builds on this module

    # SIGTERM ends the run through the finally blocks: every server stopped by its PID
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = []
    out = Path(__file__).parent / "results" / (
        "scale-latest.json" if args.replicas == 1 else "scale-shards-latest.json")
    out.parent.mkdir(exist_ok=True)
    for n in sizes:
        print(f"scale: {n:,} SealedSecrets + {n:,} ExternalSecrets ...", file=sys.stderr)
        r = run_size(args, n)
        r["verdict"] = verdicts(r)
        results.append(r)
        out.write_text(json.dumps({"results": results}, indent=2) + "\n")
        print(json.dumps({k: v for k, v in r.items() if k != "cold_start_api"}),
              file=sys.stderr)
    summary = {"results": results,
               "growth_mib_per_1k_objects": {"peak": growth(results, "peak_rss_mib"),
                                             "end": growth(results, "rss_mib_end")}}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(table(results))
    for r in results:
        print(f"{r['count']:,}: {r['verdict']}; API per round {r['api_by_verb_window']}; "
              f"provider {r['provider_requests_window']}; lease requests "
              f"{r['lease_requests_window']}; writes {r['api_writes_sample']}")
        if "kill" in r:
            print(scale_shards.summary(r))
    failed = any(v != "PASS" for r in results for v in r["verdict"].values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
