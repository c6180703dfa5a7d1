"""Helpers for the controller's tests: seal with the CLI, apply with kubectl, read state."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.fixtures.k8s import K8s
from tests.helpers import CANARY, assert_no_canary, secretops
from tests.k8s.helpers import wait_for

SEALED = "/apis/secretops.dev/v1alpha1/namespaces/{ns}/sealedsecrets"
MERGE = "application/merge-patch+json"

__all__ = ["CANARY", "wait_for"]


def seal(cert: Path, *args: str) -> str:
    """``secretops seal --cert CERT ARGS`` → the SealedSecret YAML (asserts success)."""
    r = secretops("seal", "--cert", str(cert), *args)
    assert r.code == 0, r.err
    assert_no_canary(r.err, "seal's stderr")
    return r.text


def apply(k8s: K8s, manifest: str) -> None:
    k8s.kubectl("apply", "-f", "-", input=manifest)


def secret(k8s: K8s, ns: str, name: str) -> dict[str, Any] | None:
    status, body, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/{name}")
    return body if status == 200 else None


def values(obj: dict[str, Any] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}


def sealed(k8s: K8s, ns: str, name: str) -> dict[str, Any] | None:
    status, body, _ = k8s.request("GET", SEALED.format(ns=ns) + f"/{name}")
    return body if status == 200 else None


def synced(k8s: K8s, ns: str, name: str) -> dict[str, Any] | None:
    """The Synced condition, once it is for the current generation."""
    obj = sealed(k8s, ns, name) or {}
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj.get("metadata", {}).get("generation"):
        return None
    for c in status.get("conditions") or []:
        if c.get("type") == "Synced":
            return dict(c)
    return None


def events(k8s: K8s, ns: str, name: str | None = None, reason: str | None = None
           ) -> list[dict[str, Any]]:
    selectors = []
    if name:
        selectors.append(f"involvedObject.name={name}")
    if reason:
        selectors.append(f"reason={reason}")
    path = f"/api/v1/namespaces/{ns}/events"
    if selectors:
        path += "?fieldSelector=" + quote(",".join(selectors))
    status, body, _ = k8s.request("GET", path)
    assert status == 200, body
    return list(body["items"])


def no_canary_in_cluster(k8s: K8s, *namespaces: str) -> None:
    """No form of the canary (:func:`tests.helpers.canary_forms`) in an Event or a
    SealedSecret status of these namespaces."""
    for ns in namespaces:
        assert_no_canary(json.dumps(events(k8s, ns)), f"the Events of {ns}")
        _, body, _ = k8s.request("GET", SEALED.format(ns=ns))
        assert_no_canary(json.dumps([i.get("status") for i in body.get("items") or []]),
                         f"the SealedSecret statuses of {ns}")


def load(text: str) -> dict[str, Any]:
    return dict(yaml.safe_load(text))


def dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def metrics(ctl: Any) -> dict[str, float]:
    """A controller's ``/metrics`` as ``{"name{labels}": value}``."""
    status, text = ctl.get("/metrics")
    assert status == 200
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
            if ln and not ln.startswith("#")}


def leads(ctl: Any) -> bool | None:
    """``True``/``False`` from ``/healthz?verbose`` (None: not answering or not healthy)."""
    status, text = ctl.get("/healthz?verbose")
    if status != 200:
        return None
    return "leader: true" in text.splitlines()


def lease(k8s: K8s, ns: str, name: str = "secretops-controller") -> dict[str, Any] | None:
    status, body, _ = k8s.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/"
                                         f"leases/{name}")
    return body if status == 200 else None


def healthy_throughout(ctl: Any, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread while polling ``/healthz`` with a 1 s client timeout; every
    poll must answer 200 (a hang guard: the loop was never blocked for a second)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as e:  # re-raised below, in the test's thread
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    polls = []
    while thread.is_alive() or not polls:
        polls.append(ctl.get("/healthz", timeout=1)[0])
        time.sleep(0.1)  # the polling interval of a loop bounded by the work's own end
    thread.join()
    assert set(polls) == {200}, f"/healthz did not answer within 1 s: {polls}"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
