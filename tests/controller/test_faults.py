"""API faults (issue 7: "API faults (500s, dropped watches) → it recovers by itself").

The controller runs as a service account (``K8s.kubeconfig_for``), so the emulator's fault mode
can target its requests alone (``match={"serviceAccount": ...}``) while the test's own kubectl
and HTTP calls go through. Bursts of 500s and 429s (with ``Retry-After``) and dropped watch
streams hit everything it does — kopf's listing and watching, the handlers' writes, the Lease
renewals, the key-ring reads — and it must converge on its own: a SealedSecret applied during
or after the faults is unsealed, and a Secret deleted during them is restored. Retry delays are
flags (``--retry-base-delay 0.1s --retry-max-delay 1s``), so this takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import SYSTEM_NS, Controller, prepare_cluster
from tests.controller.helpers import (
    CANARY,
    apply,
    events,
    leads,
    seal,
    secret,
    synced,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s

APP = "faults"
SA = "secretops-controller"
ME = {"serviceAccount": f"{SYSTEM_NS}/{SA}"}


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Controller:
    prepare_cluster(k8s_emulator, APP)
    kubeconfig = k8s_emulator.kubeconfig_for(
        SYSTEM_NS, SA, tmp_path_factory.mktemp("sa") / "kubeconfig")
    ctl: Controller = start_controller(
        "--kubeconfig", str(kubeconfig), "--key-renew-period", "0",
        "--key-refresh-interval", "0.5s", "--resync-period", "1s",
        "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "0.2s")
    wait_for(lambda: leads(ctl), what="the controller leading")
    return ctl


@pytest.fixture
def cert(controller: Controller, tmp_path: Path) -> Path:
    status, text = controller.get("/v1/cert")
    assert status == 200
    path = tmp_path / "cert.txt"
    path.write_text(text)
    return path


def _apply(k8s: K8s, cert: Path, name: str) -> None:
    apply(k8s, seal(cert, "-n", APP, "--name", name, "--from-literal", f"v={CANARY}"))


def _unsealed(k8s: K8s, name: str, timeout: float = 20) -> None:
    wait_for(lambda: values(secret(k8s, APP, name)) == {"v": CANARY.encode()},
             timeout=timeout, what=f"Secret {name} unsealed")
    wait_for(lambda: (synced(k8s, APP, name) or {}).get("status") == "True", timeout=timeout,
             what=f"SealedSecret {name} Synced")


def test_recovers_from_500s_429s_and_dropped_watches(
        controller: Controller, k8s: K8s, cert: Path) -> None:
    _apply(k8s, cert, "before")
    _unsealed(k8s, "before")
    before = k8s.faults()["injected"]

    # A burst: the controller's next 30 requests fail with 500, the 6 after them with 429,
    # and every watch stream is cut.
    k8s.fail_next(30, 500, match=ME)
    k8s.fail_next(6, 429, match=ME, retry_after=1)
    k8s.drop_watches()
    _apply(k8s, cert, "during")
    status, _, _ = k8s.request("DELETE", f"/api/v1/namespaces/{APP}/secrets/before")
    assert status == 200
    k8s.drop_watches()

    _unsealed(k8s, "during")
    _unsealed(k8s, "before")  # deleted during the faults: restored
    wait_for(lambda: not k8s.faults()["rules"], what="the burst used up")
    assert k8s.faults()["injected"] - before == 36  # the faults did hit the controller

    _apply(k8s, cert, "after")
    _unsealed(k8s, "after")
    assert controller.proc is not None and controller.proc.poll() is None
    assert leads(controller)


def test_secret_deleted_while_watches_are_down_is_restored(
        controller: Controller, k8s: K8s, cert: Path) -> None:
    _apply(k8s, cert, "gap")
    _unsealed(k8s, "gap")
    # Every LIST/WATCH of the controller fails for a while: its watches stay down, so the
    # deletion is never seen as a watch event; the periodic resync (--resync-period) finds it.
    k8s.fail_next(25, 500, match={**ME, "verb": ["list", "watch"]})
    k8s.drop_watches()
    status, _, _ = k8s.request("DELETE", f"/api/v1/namespaces/{APP}/secrets/gap")
    assert status == 200
    _unsealed(k8s, "gap")
    wait_for(lambda: len(events(k8s, APP, "gap", "Unsealed")) >= 2,
             what="an Event for the restore")
    wait_for(lambda: not k8s.faults()["rules"], what="the burst used up")
