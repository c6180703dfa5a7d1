"""The controller under test: ``python -m secretops_controller`` as a child process.

It runs exactly as in a cluster — kopf, the key ring, the HTTP endpoints — against the module's
fresh emulator (``k8s_emulator``), with the CRD from ``crds/`` applied by kubectl, short retry
delays instead of kopf's 60 s, and its own free port. Its stderr goes to a log file.

When the module's controllers are stopped (by their PIDs), :func:`scan_for_canary` looks for the
canary plaintext — and its reverse, other cases, slices, base64 and SHA-256
(:func:`tests.helpers.canary_forms`) — in every controller log, every HTTP response a test got
through :meth:`Controller.request`, and the emulator's Events and statuses in all namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.k8s import K8s, free_port
from tests.helpers import assert_no_canary, stop_process
from tests.k8s.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "sealedsecret.yaml"
SYSTEM_NS = "secretops-system"
FAST = ("--retry-base-delay", "0.1s", "--retry-max-delay", "1s", "--max-retries", "5",
        "--watch-timeout", "30s")


@dataclass
class Controller:
    """One running controller process."""

    k8s: K8s
    directory: Path
    args: tuple[str, ...] = ()
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)
    env: dict[str, str] = field(default_factory=dict)  # e.g. POD_NAME (the Lease holder name)
    # every HTTP response body read through request(), for the canary scan
    responses: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Controller:
        self.port = free_port()
        self.log = self.directory / f"controller-{self.port}.log"
        env = {**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, **self.env}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "secretops_controller",
                 "--kubeconfig", str(self.k8s.kubeconfig), "--namespace", SYSTEM_NS,
                 "--http-host", "127.0.0.1", "--http-port", str(self.port), *FAST, *self.args],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.get("/healthz")[0] != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited {self.proc.returncode}:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"controller not healthy after {timeout} s:\n{self.logs()}")
            time.sleep(0.05)  # polling interval of a loop with a deadline
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=15)

    def kill(self) -> None:
        """SIGKILL: no chance to release the Lease (a crashed Pod, a lost node)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10
                ) -> tuple[int, str]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, ""
        self.responses.append(f"{status} {text}")
        return status, text

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        return self.request("GET", path, timeout=timeout)


# What the controller writes where a tenant or anyone can read it (statuses; Events are
# listed separately): every one of these in every namespace is scanned.
STATUS_LISTS = ("/apis/secretops.dev/v1alpha1/sealedsecrets",
                "/apis/secretops.dev/v1alpha1/externalsecrets",
                "/apis/secretops.dev/v1alpha1/secretstores",
                "/apis/secretops.dev/v1alpha1/clustersecretstores")


def scan_for_canary(k8s: K8s, controllers: list[Controller]) -> None:
    """No form of the canary in any controller's log or HTTP responses, nor in any Event or
    status the emulator holds (all namespaces)."""
    for ctl in controllers:
        assert_no_canary(ctl.logs(), f"the controller log {ctl.log}")
        assert_no_canary("\n".join(ctl.responses), f"an HTTP response of {ctl.url}")
    status, body, _ = k8s.request("GET", "/api/v1/events")
    assert status == 200, body
    for e in body.get("items") or []:
        assert_no_canary(json.dumps(e), f"Event {e.get('metadata', {}).get('name')}")
    for path in STATUS_LISTS:
        # a CRD served moments ago answers 429 while its storage initialises, as the
        # apiserver's cacher does: asked again, as any client would
        status, body, _ = wait_for(lambda p=path: (r := k8s.request("GET", p))[0] != 429 and r,
                                   what=f"{path} past its storage's initialisation")
        if status == 404:
            continue  # that CRD is not installed in this module's cluster
        assert status == 200, body
        for obj in body.get("items") or []:
            meta = obj.get("metadata") or {}
            assert_no_canary(json.dumps(obj.get("status") or {}),
                             f"the status of {obj.get('kind')} {meta.get('namespace')}/"
                             f"{meta.get('name')}")


def prepare_cluster(k8s: K8s, *namespaces: str) -> None:
    """The CRD (applied with the real kubectl, validated by the emulator) and namespaces."""
    k8s.kubectl("apply", "-f", str(CRD))
    k8s.kubectl("wait", "--for=condition=Established", "crd/sealedsecrets.secretops.dev")
    for ns in (SYSTEM_NS, *namespaces):
        if k8s.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404:
            k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})


def prepare_external(k8s: K8s, *namespaces: str) -> None:
    """:func:`prepare_cluster`, and the external half's CRDs (stores, ExternalSecrets) applied
    with the real kubectl and established."""
    prepare_cluster(k8s, *namespaces)
    for f in ("secretstore.yaml", "clustersecretstore.yaml", "externalsecret.yaml"):
        k8s.kubectl("apply", "-f", str(CRD.parent / f))
    for crd in ("secretstores", "clustersecretstores", "externalsecrets"):
        k8s.kubectl("wait", "--for=condition=Established", f"crd/{crd}.secretops.dev")


@pytest.fixture(scope="module")
def start_controller(k8s_emulator: K8s, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[Any]:
    """``start_controller(*flags, env={...})`` → a running :class:`Controller`; all stopped at
    the end, and none of their logs may contain the canary plaintext."""
    started: list[Controller] = []
    directory = tmp_path_factory.mktemp("controller")

    def start(*args: str, env: dict[str, str] | None = None) -> Controller:
        ctl = Controller(k8s_emulator, directory, args, env=dict(env or {})).start()
        started.append(ctl)
        return ctl

    try:
        yield start
    finally:
        for ctl in started:
            ctl.stop()
        scan_for_canary(k8s_emulator, started)
        # Nothing the controller sent may rely on a leniency: a real apiserver refuses these.
        assert k8s_emulator.malformed() == [], "the controller sent malformed requests"
