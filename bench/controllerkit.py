"""What the controller benchmarks share: the processes, the emulator calls, the measurements.

``bench/sealed_controller.py`` (``--sealed``), ``bench/external_controller.py`` (``--external``)
and ``bench/scale.py`` (``--scale``) all run the same pieces, on 127.0.0.1 and stopped by PID:

* the controller as in a cluster (:func:`start_controller`: ``python -m secretops_controller``
  with the emulator's kubeconfig, logs to a file, short retry delays);
* the real OpenBao dev server (:func:`start_openbao`) seeded with KV keys and an AppRole
  (:func:`seed_openbao`), behind the counting proxy of the tests;
* JSON calls to the emulator before the clock starts (:func:`call`), concurrent POSTs over
  keep-alive HTTP (:func:`post_all`), a watch that times each Secret's arrival
  (:class:`SecretArrivals`);
* the controller process's peak RSS and CPU from ``/proc`` (:func:`proc_status`,
  :func:`proc_cpu`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.fixtures.k8s import free_port
from tests.fixtures.k8s import stop as stop_emulator
from tests.fixtures.openbao import ROOT_TOKEN, BaoMissing, start_server
from tests.fixtures.openbao import _stop as stop_openbao

REPO = Path(__file__).resolve().parent.parent
SYSTEM_NS = "secretops-system"
API = "/apis/secretops.dev/v1alpha1"
CRD_POST = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRDS = [REPO / "crds" / f for f in ("sealedsecret.yaml", "secretstore.yaml",
                                    "clustersecretstore.yaml", "externalsecret.yaml")]
CLK_TCK = os.sysconf("SC_CLK_TCK")
APPROLE = "approle"


def proc_status(pid: int, field: str) -> float:
    """A ``kB`` field of /proc/<pid>/status in MiB (VmHWM: peak RSS, VmRSS: current)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def call(url: str, method: str, path: str, body: Any) -> int:
    """One JSON request to the emulator before the clock starts: its status code."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def install_crds(url: str, crds: Sequence[Path] = CRDS) -> None:
    """The CRDs (default: all of ``crds/``), before the clock starts."""
    import yaml

    for crd in crds:
        assert call(url, "POST", CRD_POST, yaml.safe_load(crd.read_text())) == 201, crd


async def post(session: aiohttp.ClientSession, url: str, path: str, body: Any) -> None:
    """POST one object; 409 (it exists) counts as done."""
    async with session.post(url + path, data=json.dumps(body),
                            headers={"Content-Type": "application/json"}) as r:
        text = await r.text()
        if r.status not in (200, 201, 409):
            raise RuntimeError(f"POST {path}: {r.status} {text[:300]}")


async def get_json(session: aiohttp.ClientSession, url: str, path: str) -> tuple[int, Any]:
    async with session.get(url + path) as r:
        return r.status, (await r.json()) if r.status == 200 else None


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float, what: str,
                   interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something true, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)  # polling interval of a loop with a deadline


async def post_all(session: aiohttp.ClientSession, url: str, path: str | None,
                   objects: Sequence[dict[str, Any]], concurrency: int) -> None:
    """POST every object with ``concurrency`` requests in flight; ``path`` None: each to its
    own namespace's collection (:func:`collection_of`)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for o in objects:
        queue.put_nowait(o)

    async def creator() -> None:
        while not queue.empty():
            o = queue.get_nowait()
            await post(session, url, path or collection_of(o), o)

    await asyncio.gather(*(creator() for _ in range(concurrency)))


_PLURALS = {"Secret": "secrets", "SealedSecret": "sealedsecrets",
            "ExternalSecret": "externalsecrets", "SecretStore": "secretstores"}


def collection_of(obj: dict[str, Any]) -> str:
    """The collection path an object is POSTed to (its kind and namespace)."""
    ns = obj["metadata"]["namespace"]
    prefix = "/api/v1" if obj.get("apiVersion", "v1") == "v1" else API
    return f"{prefix}/namespaces/{ns}/{_PLURALS[obj['kind']]}"


class SecretArrivals:
    """When each named Secret first appears, from a watch opened on a fresh list's version.

    ``names``: Secret names (or ``(namespace, name)`` pairs when ``namespaced``);
    ``need_value``: count a Secret only once its ``data.value`` is set (an external Secret may
    be created before its value is written).
    """

    def __init__(self, names: set[Any], need_value: bool = False, path: str = "/api/v1/secrets",
                 namespaced: bool = False, query: str = "") -> None:
        self.names = names
        self.path = path
        self.need_value = need_value
        self.namespaced = namespaced
        self.query = query
        self.seen: dict[Any, float] = {}
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, session: aiohttp.ClientSession, url: str) -> None:
        # the list only for its resourceVersion (limit=1: the emulator ignores limit, an
        # apiserver would page; either way the version is the collection's)
        _, listing = await get_json(session, url, self.path + "?limit=1"
                                    + (f"&{self.query}" if self.query else ""))
        rv = listing["metadata"]["resourceVersion"]
        ready = asyncio.Event()

        async def watch() -> None:
            query = f"?watch=true&resourceVersion={rv}&allowWatchBookmarks=false"
            if self.query:
                query += "&" + self.query
            async with session.get(url + self.path + query,
                                   timeout=aiohttp.ClientTimeout(total=None)) as r:
                ready.set()
                async for line in r.content:
                    ev = json.loads(line)
                    obj = ev["object"]
                    meta = obj["metadata"]
                    key = (meta.get("namespace"), meta["name"]) if self.namespaced \
                        else meta["name"]
                    if ev["type"] in ("ADDED", "MODIFIED") and key in self.names \
                            and key not in self.seen \
                            and (not self.need_value or (obj.get("data") or {}).get("value")):
                        self.seen[key] = time.perf_counter()
                        if len(self.seen) == len(self.names):
                            self.done.set()
                            return

        self._task = asyncio.create_task(watch())
        await asyncio.wait_for(ready.wait(), 10)

    async def wait_all(self, timeout: float, count: int) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            if self._task is not None:
                self._task.cancel()
            raise TimeoutError(f"only {len(self.seen)} of {count} Secrets after "
                               f"{timeout:.0f} s") from None


def controller_env() -> dict[str, str]:
    """The environment of the controller: ours, without a kubeconfig or Vault settings."""
    return {k: v for k, v in os.environ.items()
            if k != "KUBECONFIG" and not k.startswith(("VAULT_", "BAO_"))}


def start_controller(kubeconfig: Path, log: Path, *flags: str, log_level: str = "INFO",
                     pod_name: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m secretops_controller`` as in a cluster, all namespaces, short retry delays;
    the process and its HTTP URL. ``pod_name``: its ``POD_NAME`` (a Lease holder's name)."""
    port = free_port()
    env = controller_env() | ({"POD_NAME": pod_name} if pod_name else {})
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secretops_controller", "--kubeconfig", str(kubeconfig),
             "--namespace", SYSTEM_NS, "--http-host", "127.0.0.1", "--http-port", str(port),
             "--retry-base-delay", "0.1s", "--retry-max-delay", "1s", "--log-level", log_level,
             *flags],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def start_openbao(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The OpenBao dev server exactly as the tests start it; its URL."""
    try:
        proc, server = start_server(directory)
    except BaoMissing as e:
        raise SystemExit(f"bench: {e}") from None
    return proc, server.url


def seed_openbao(url: str, paths: Sequence[str], values: Sequence[str], prefix: str
                 ) -> tuple[str, str]:
    """KV v2 keys ``paths`` (each with property ``value``), a read policy for ``prefix/*`` and
    an AppRole; returns (role id, secret id)."""
    import hvac

    client = hvac.Client(url=url, token=ROOT_TOKEN, timeout=10)
    for p, v in zip(paths, values, strict=True):
        client.secrets.kv.v2.create_or_update_secret(path=p, secret={"value": v},
                                                     mount_point="secret")
    client.sys.create_or_update_policy(name="bench-read", policy=f"""
path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list"] }}
""")
    client.sys.enable_auth_method("approle", path=APPROLE)
    client.auth.approle.create_or_update_approle(
        "controller", token_policies=["bench-read"], token_ttl="1h", token_max_ttl="24h",
        mount_point=APPROLE)
    role_id = client.auth.approle.read_role_id("controller", mount_point=APPROLE)["data"][
        "role_id"]
    secret_id = client.auth.approle.generate_secret_id("controller", mount_point=APPROLE)[
        "data"]["secret_id"]
    return str(role_id), str(secret_id)


def vault_store(namespace: str, server: str, role_id: str) -> dict[str, Any]:
    """A SecretStore ``vault`` reading KV v2 at ``secret/`` with AppRole auth (its secret id in
    Secret ``approle``)."""
    return {"apiVersion": "secretops.dev/v1alpha1", "kind": "SecretStore",
            "metadata": {"name": "vault", "namespace": namespace},
            "spec": {"provider": {"vault": {
                "server": server, "path": "secret", "version": "v2",
                "auth": {"appRole": {"path": APPROLE, "roleId": role_id,
                                     "secretRef": {"name": "approle", "key": "secret-id"}}}}}}}


def approle_secret(namespace: str, secret_id: str) -> dict[str, Any]:
    import base64

    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "approle", "namespace": namespace},
            "data": {"secret-id": base64.b64encode(secret_id.encode()).decode()}}


def ready(obj: dict[str, Any], kind: str = "Ready") -> bool:
    """``status.conditions[type=kind]`` is True."""
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def common_args(parser: argparse.ArgumentParser, timeout: float) -> None:
    """The options every controller benchmark takes."""
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--timeout", type=float, default=timeout)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")


def lease_args(parser: argparse.ArgumentParser, duration: float, renew: float,
               retry: float) -> None:
    """The controllers' Lease timings (``--lease-duration``, ``--renew-deadline``,
    ``--retry-period``), seconds."""
    parser.add_argument("--lease-duration", type=float, default=duration)
    parser.add_argument("--renew-deadline", type=float, default=renew)
    parser.add_argument("--retry-period", type=float, default=retry)


def lease_flags(args: argparse.Namespace) -> list[str]:
    """The controller flags for :func:`lease_args`' options."""
    return ["--lease-duration", f"{args.lease_duration:g}s", "--renew-deadline",
            f"{args.renew_deadline:g}s", "--retry-period", f"{args.retry_period:g}s"]


def clean_up(directory: Path, keep: bool, emulator: subprocess.Popen[bytes] | None = None,
             proxy: Any = None, openbao: subprocess.Popen[bytes] | None = None) -> None:
    """Stop what a run started (each by its PID; ``proxy``: a ``CountingProxy``), then remove
    ``directory`` unless ``keep`` (its logs)."""
    if emulator is not None:
        stop_emulator(emulator)
    if proxy is not None:
        proxy.stop()
    if openbao is not None:
        stop_openbao(openbao)
    if keep:
        print(f"kept {directory}", file=sys.stderr)
    else:
        shutil.rmtree(directory, ignore_errors=True)
