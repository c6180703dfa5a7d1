"""The SealedSecret controller at scale: ``./scripts/bench --sealed [--count N]``.

Issue 7's goal: 1,000 SealedSecrets applied at once, all 1,000 Secrets exist within 5 s
(stretch 3 s), and the controller process stays at or below 120 MiB.

What runs, all on 127.0.0.1 and stopped by PID at the end:

* the Kubernetes API emulator (``tests/k8s/emulator``, plain HTTP, no request log) with the
  CRD from ``crds/sealedsecret.yaml`` and the namespaces;
* the controller as in a cluster: ``python -m secretops_controller`` (kopf, INFO logs to a
  file, default settings apart from short retry delays), all namespaces;
* this process: seals N SealedSecrets (one value each, for the controller's key from
  ``GET /v1/cert``) **before** the clock starts, waits until one warm-up SealedSecret has
  become a Secret (so the controller's watches are up), opens a watch on Secrets, then POSTs
  the N SealedSecrets over keep-alive HTTP with ``--concurrency`` requests in flight.

Measured: **time** from the first POST to the watch event of the N-th distinct Secret; the time
until every SealedSecret reports ``Synced=True`` (polled); the controller's **peak RSS**
(``VmHWM`` from ``/proc/<pid>/status``, start-up included) and CPU seconds during the run
(``/proc/<pid>/stat``). Every Secret's value is checked. Results:
``bench/results/sealed-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.controllerkit import (
    SecretArrivals,
    call,
    common_args,
    get_json,
    post,
    post_all,
    proc_cpu,
    proc_status,
    start_controller,
    wait_for,
)
from secretops.sealing import parse_recipients_file, seal_secret
from tests.fixtures.k8s import start_emulator, stop
from tests.helpers import stop_process

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "crds" / "sealedsecret.yaml"
SYSTEM_NS, NS = "secretops-system", "bench"
SEALED = f"/apis/secretops.dev/v1alpha1/namespaces/{NS}/sealedsecrets"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
GOAL_S, STRETCH_S, GOAL_MIB = 5.0, 3.0, 120.0


def value_of(i: int) -> str:
    return f"bench-value-{i:05d}"


def sealed_objects(recipients: list[str], count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count + 1):  # index `count` is the warm-up object
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": f"s{i:05d}", "namespace": NS},
                  "stringData": {"value": value_of(i)}}
        out.append(seal_secret(secret, recipients))
    return out


async def measure(url: str, ctl_url: str, pid: int, count: int, concurrency: int,
                  timeout: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def healthy() -> bool:
            try:
                async with session.get(ctl_url + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(healthy, 60, "the controller's /healthz")

        async def cert() -> str | None:
            async with session.get(ctl_url + "/v1/cert") as r:
                return await r.text() if r.status == 200 else None

        recipients = parse_recipients_file(await wait_for(cert, 60, "GET /v1/cert"))
        idle_rss = proc_status(pid, "VmRSS")
        t = time.perf_counter()
        objects = sealed_objects(recipients, count)
        seal_s = time.perf_counter() - t

        # warm-up: one SealedSecret → Secret proves kopf's watches are established
        warm = objects.pop()
        await post(session, url, SEALED, warm)
        warm_name = warm["metadata"]["name"]
        await wait_for(lambda: _exists(session, url, warm_name), 60, "the warm-up Secret")

        # the watch on Secrets, from now on (resourceVersion of a fresh list)
        names = {o["metadata"]["name"] for o in objects}
        arrivals = SecretArrivals(names, path=SECRETS)
        await arrivals.start(session, url)
        seen = arrivals.seen
        cpu0 = proc_cpu(pid)
        started = time.perf_counter()
        await post_all(session, url, SEALED, objects, concurrency)
        created_s = time.perf_counter() - started
        await arrivals.wait_all(timeout, count)
        all_secrets_s = max(seen.values()) - started
        cpu_secrets = proc_cpu(pid) - cpu0

        async def all_synced() -> bool:
            _, body = await get_json(session, url, SEALED)
            return sum(1 for o in body["items"]
                       for c in (o.get("status") or {}).get("conditions") or []
                       if c.get("type") == "Synced" and c.get("status") == "True") == count + 1

        await wait_for(all_synced, timeout, "every SealedSecret Synced=True")
        synced_s = time.perf_counter() - started
        cpu_synced = proc_cpu(pid) - cpu0

        _, body = await get_json(session, url, SECRETS)
        wrong = [s["metadata"]["name"] for s in body["items"]
                 if s["metadata"]["name"] in names and base64.b64decode(s["data"]["value"])
                 != value_of(int(s["metadata"]["name"][1:])).encode()]
        times = sorted(t - started for t in seen.values())
        return {
            "count": count, "concurrency": concurrency,
            "seal_s": round(seal_s, 3),
            "create_s": round(created_s, 3),
            "all_secrets_s": round(all_secrets_s, 3),
            "p50_secret_s": round(times[len(times) // 2], 3),
            "all_synced_s": round(synced_s, 3),
            "controller_cpu_s_to_last_secret": round(cpu_secrets, 2),
            "controller_cpu_s_to_all_synced": round(cpu_synced, 2),
            "controller_vmhwm_mib": round(proc_status(pid, "VmHWM"), 1),
            "controller_vmrss_mib_idle": round(idle_rss, 1),
            "controller_vmrss_mib_end": round(proc_status(pid, "VmRSS"), 1),
            "wrong_values": wrong,
        }


async def _exists(session: aiohttp.ClientSession, url: str, name: str) -> bool:
    return (await get_json(session, url, f"{SECRETS}/{name}"))[0] == 200


def _setup(url: str) -> None:
    assert call(url, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                yaml.safe_load(CRD.read_text())) == 201
    for ns in (SYSTEM_NS, NS):
        assert call(url, "POST", "/api/v1/namespaces", {"metadata": {"name": ns}}) == 201


def run(count: int, concurrency: int, log_level: str, timeout: float,
        keep: bool) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="sealed-bench-"))
    emu, k8s = start_emulator(directory, log_requests=False)
    ctl: subprocess.Popen[bytes] | None = None
    try:
        _setup(k8s.url)
        log = directory / "controller.log"
        ctl, ctl_url = start_controller(k8s.kubeconfig, log, log_level=log_level)
        result = asyncio.run(measure(k8s.url, ctl_url, ctl.pid, count, concurrency, timeout))
        result["emulator_cpu_s_total"] = round(proc_cpu(emu.pid), 2)
        # what a real kube-apiserver would have refused as malformed (400, 415): must be none
        result["refused_as_malformed"] = [f"{m['code']} {m['method']} {m['path']}: "
                                          f"{m['message'][:200]}" for m in k8s.malformed()]
        result["log_level"] = log_level
        result["log_lines"] = len(log.read_bytes().splitlines())
        return result
    finally:
        if ctl is not None:
            stop_process(ctl, grace=15)
        stop(emu)
        if keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench --sealed")
    parser.add_argument("--count", type=int, default=1_000)
    common_args(parser, timeout=120.0)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    r = run(args.count, args.concurrency, args.log_level, args.timeout, args.keep)
    r["loadavg_1m_start_end"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    t, mib = r["all_secrets_s"], r["controller_vmhwm_mib"]
    time_ok, mem_ok = t <= GOAL_S, mib <= GOAL_MIB
    r["verdict"] = {"time": "PASS (stretch too)" if t <= STRETCH_S else
                    "PASS" if time_ok else "FAIL",
                    "memory": "PASS" if mem_ok else "FAIL"}
    n = r["count"]
    print(f"sealed {n:,} SealedSecrets (before the clock)  {r['seal_s']:.2f} s")
    print(f"POSTed {n:,} SealedSecrets ({r['concurrency']} in flight)  {r['create_s']:.2f} s")
    print(f"all {n:,} Secrets exist           {t:.2f} s   goal <= {GOAL_S:.0f} s "
          f"(stretch {STRETCH_S:.0f} s): {r['verdict']['time']}")
    print(f"  median Secret                {r['p50_secret_s']:.2f} s")
    print(f"all {n:,} Synced=True             {r['all_synced_s']:.2f} s")
    print(f"controller CPU                 {r['controller_cpu_s_to_last_secret']:.2f} s to the "
          f"last Secret, {r['controller_cpu_s_to_all_synced']:.2f} s to all Synced")
    print(f"controller peak RSS (VmHWM)    {mib:.1f} MiB   goal <= {GOAL_MIB:.0f} MiB: "
          f"{r['verdict']['memory']}")
    print(f"controller RSS idle / at end   {r['controller_vmrss_mib_idle']:.1f} / "
          f"{r['controller_vmrss_mib_end']:.1f} MiB")
    print(f"emulator CPU (whole run)       {r['emulator_cpu_s_total']:.2f} s   load average "
          f"{r['loadavg_1m_start_end'][0]:.2f} -> {r['loadavg_1m_start_end'][1]:.2f} (2 cores: "
          f"other work stretches the wall time)")
    refused = r["refused_as_malformed"]
    print(f"requests refused as malformed  {len(refused)}"
          + "".join(f"\n  {m}" for m in refused[:5]))
    checked = "all right" if not r["wrong_values"] else "WRONG: " + ", ".join(
        r["wrong_values"][:5])
    print(f"values checked                 {checked}")
    out = Path(__file__).parent / "results" / "sealed-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n")
    sys.exit(0 if time_ok and mem_ok and not r["wrong_values"] and not refused else 1)


if __name__ == "__main__":
    main()
