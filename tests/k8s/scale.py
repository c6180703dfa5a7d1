"""Throughput of the emulator: ``python -m tests.k8s.scale [--stored N] [--creates M]``.

Starts an emulator process, stores N custom resources (schema validation on), attaches one
watcher to that resource, then POSTs M more from this process over keep-alive HTTP with a few
concurrent requests, and reports creates/s for the preload and for the measured batch; the
ratio shows whether per-request cost depends on how many objects are stored.
(The issue's benchmark belongs in ``bench/``; this is the emulator's own check.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.fixtures.k8s import start_emulator, stop

CRD = Path(__file__).parents[1] / "testdata" / "k8s" / "example-crd.yaml"
PATH = "/apis/example.secretops.dev/v1/namespaces/default/secretrequests"


async def _create(
    session: aiohttp.ClientSession, url: str, names: range, concurrency: int
) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in names:
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {
                "apiVersion": "example.secretops.dev/v1",
                "kind": "SecretRequest",
                "metadata": {"name": f"o{i}", "labels": {"n": str(i % 10)}},
                "spec": {"secretName": f"s{i}", "data": {"k": "v"}, "replicas": 1},
            }
            async with session.post(
                url + PATH, data=json.dumps(body), headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 201, await r.text()
                await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(names) / (time.perf_counter() - started)


async def _watch(session: aiohttp.ClientSession, url: str, counter: list[int]) -> None:
    async with session.get(url + PATH + "?watch=true") as r:
        async for _ in r.content:
            counter[0] += 1


async def measure(url: str, stored: int, creates: int, concurrency: int,
                  watchers: int = 1) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency + watchers + 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        crd = yaml.safe_load(CRD.read_text())
        async with session.post(
            url + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd
        ) as r:
            assert r.status == 201
        while True:
            async with session.get(url + PATH) as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.01)
        preload = await _create(session, url, range(stored), concurrency)
        counters = [[0] for _ in range(watchers)]
        tasks = [asyncio.create_task(_watch(session, url, c)) for c in counters]
        total = stored + creates
        deadline = time.monotonic() + 30
        while min(c[0] for c in counters) < stored and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # every watcher has received the initial list
        rate = await _create(session, url, range(stored, total), concurrency)
        done = time.perf_counter()
        deadline = time.monotonic() + 10
        while min(c[0] for c in counters) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        catchup = time.perf_counter() - done
        for task in tasks:
            task.cancel()
        return {
            "stored": stored,
            "creates": creates,
            "preload_per_s": round(preload),
            "creates_per_s": round(rate),
            "watchers": watchers,
            "watch_events": min(c[0] for c in counters),
            "watch_catchup_s": round(catchup, 3),
        }


def run(stored: int, creates: int, concurrency: int = 4, watchers: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        proc, k8s = start_emulator(Path(d), log_requests=False)
        try:
            result = asyncio.run(measure(k8s.url, stored, creates, concurrency, watchers))
            result["startup_s"] = round(k8s.startup_seconds, 3)
            return result
        finally:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s.scale")
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--watchers", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.stored, args.creates, args.concurrency, args.watchers)))


if __name__ == "__main__":
    main()
