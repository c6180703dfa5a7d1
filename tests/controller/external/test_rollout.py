"""Calm rollouts, each rule against the controller process and the emulator
(docs/external-secrets.md, "Rollout of workloads"): Secrets that change together roll a
workload once; a Secret changed twice within the window rolls it once; at most
``--rollout-concurrency`` workloads roll at once, the others queue (and a queued roll takes
later changes in); a roll is one Event and one metric; the roll is not drift for Argo CD's or
Flux's diff, nor undone by their apply.

The emulator runs no Deployment controller: a roll stays in progress until the test reports it
done (:func:`.rollouts.report_done`), as the Deployment controller would. Restarts and leader
changes: ``test_rollout_leader.py``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.rollouts import (
    DATA_HASH,
    PENDING,
    RESTARTED,
    carries,
    deployment,
    generation,
    live,
    namespace,
    report_done,
    rolled_for,
    secret_notes,
    started_events,
    template_notes,
)
from tests.controller.external.test_reconcile import (
    API,
    MERGE,
    create,
    create_workload,
    external,
    has,
    item,
    token_store,
)
from tests.controller.helpers import metrics, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

WINDOW = 4.0  # s: long enough for two force-synced changes, short enough to wait for


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_external(k8s_emulator)
    # one workload rolls at a time; a roll that is never reported done holds its place long
    ctl: Controller = start_controller("--key-renew-period", "0", "--rollout-window",
                                       f"{WINDOW}s", "--rollout-concurrency", "1",
                                       "--rollout-timeout", "300s")
    return ctl


def gauge(ctl: Controller, name: str) -> float:
    return metrics(ctl).get(f"secretops_{name}", 0.0)


def rolls(ctl: Controller, result: str) -> float:
    return metrics(ctl).get(
        f'secretops_rollouts_total{{kind="Deployment",result="{result}"}}', 0.0)


def force_sync(k8s: K8s, ns: str, name: str, value: str) -> None:
    status, body, _ = k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/{name}", {
        "metadata": {"annotations": {"secretops.dev/force-sync": value}}}, MERGE)
    assert status == 200, body


def idle(ctl: Controller) -> bool:
    return gauge(ctl, "rollouts_in_progress") == 0 and gauge(ctl, "rollouts_queued") == 0


def test_secrets_that_change_together_roll_a_workload_once(
        k8s: K8s, controller: Controller, openbao: OpenBao, tenant: Tenant) -> None:
    ns = namespace(k8s)
    key = f"{tenant.prefix}/shared"
    put(openbao, key, {"user": "app", "password": "one"})
    token_store(k8s, openbao, tenant, ns)
    # two ExternalSecrets over one remote key: one read changes both Secrets together
    create(k8s, external(ns, "db", "vault", [item("password", key, "password")]))
    create(k8s, external(ns, "api", "vault", [item("user", key, "user"),
                                              item("password", key, "password")]))
    create_workload(k8s, deployment(ns, "web", "db", "api"))
    wait_for(lambda: has(k8s, ns, "db", {"password": b"one"}) and has(
        k8s, ns, "api", {"user": b"app", "password": b"one"}), what="both Secrets")
    before = generation(k8s, ns, "web")
    started = rolls(controller, "started")
    # first creation: no mark on the Secrets, nothing asked to roll
    assert PENDING not in secret_notes(k8s, ns, "db") | secret_notes(k8s, ns, "api")

    put(openbao, key, {"user": "app", "password": "two"})
    wait_for(lambda: rolled_for(k8s, ns, "web", "db", "api"), timeout=WINDOW + 10,
             what="web rolled for both Secrets' new data")
    assert generation(k8s, ns, "web") == before + 1  # one roll, not two
    [ev] = started_events(k8s, ns, "web")
    assert "db (reload-on-change)" in ev["message"] and "api (reload-on-change)" in ev["message"]
    assert rolls(controller, "started") == started + 1
    report_done(k8s, ns, "web")
    wait_for(lambda: idle(controller), what="the budget free again")
    assert rolls(controller, "done") >= 1
    assert generation(k8s, ns, "web") == before + 1


def test_a_secret_changed_twice_within_the_window_rolls_once(
        k8s: K8s, controller: Controller, openbao: OpenBao, tenant: Tenant) -> None:
    ns = namespace(k8s)
    key = f"{tenant.prefix}/twice"
    put(openbao, key, {"password": "one"})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, external(ns, "db", "vault", [item("password", key, "password")],
                         interval="1h"))
    create_workload(k8s, deployment(ns, "web", "db"))
    wait_for(lambda: has(k8s, ns, "db", {"password": b"one"}), what="Secret")
    before = generation(k8s, ns, "web")
    for n, value in enumerate(("two", "three"), 1):  # force-synced: well within the window
        put(openbao, key, {"password": value})
        force_sync(k8s, ns, "db", str(n))
        wait_for(lambda v=value: has(k8s, ns, "db", {"password": v.encode()}),
                 what=f"Secret holds {value}")
    wait_for(lambda: rolled_for(k8s, ns, "web", "db"), timeout=WINDOW + 10,
             what="web rolled for the last data")
    assert generation(k8s, ns, "web") == before + 1
    assert len(started_events(k8s, ns, "web")) == 1
    report_done(k8s, ns, "web")
    wait_for(lambda: idle(controller), what="the budget free again")


def test_the_budget_rolls_one_workload_at_a_time_and_a_queued_roll_takes_later_changes(
        k8s: K8s, controller: Controller, openbao: OpenBao, tenant: Tenant) -> None:
    """--rollout-concurrency 1: two workloads of one Secret roll one after the other; the one
    waiting takes a second change in, and still rolls once."""
    ns = namespace(k8s)
    key = f"{tenant.prefix}/budget"
    put(openbao, key, {"password": "one"})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, external(ns, "db", "vault", [item("password", key, "password")],
                         interval="1h"))
    for name in ("first", "second"):
        create_workload(k8s, deployment(ns, name, "db"))
    wait_for(lambda: has(k8s, ns, "db", {"password": b"one"}), what="Secret")
    before = {n: generation(k8s, ns, n) for n in ("first", "second")}

    put(openbao, key, {"password": "two"})
    force_sync(k8s, ns, "db", "1")
    wait_for(lambda: gauge(controller, "rollouts_in_progress") == 1
             and gauge(controller, "rollouts_queued") == 1, timeout=WINDOW + 10,
             what="one rolling, one queued")
    [rolling] = [n for n in before if RESTARTED in template_notes(k8s, ns, n)]
    [waiting] = [n for n in before if n != rolling]
    assert generation(k8s, ns, waiting) == before[waiting]  # queued: not patched
    assert PENDING in secret_notes(k8s, ns, "db")  # not every workload rolled yet

    # a second change while it waits: its queued roll takes it in
    put(openbao, key, {"password": "three"})
    force_sync(k8s, ns, "db", "2")
    wait_for(lambda: has(k8s, ns, "db", {"password": b"three"}), what="Secret holds three")
    # its window closed: the waiting workload's roll took it in, the rolling one queues again
    wait_for(lambda: gauge(controller, "rollouts_queued") == 2, timeout=WINDOW + 10,
             what="two rolls queued")
    report_done(k8s, ns, rolling)  # the first roll is over: its place goes to the second
    wait_for(lambda: carries(k8s, ns, waiting, "db"), timeout=WINDOW + 10,
             what=f"{waiting} rolled for the last data")
    assert generation(k8s, ns, waiting) == before[waiting] + 1
    assert len(started_events(k8s, ns, waiting)) == 1
    assert PENDING in secret_notes(k8s, ns, "db")  # the first one has yet to roll again
    # the first one rolls again for the third value, once the budget lets it
    report_done(k8s, ns, waiting)
    wait_for(lambda: rolled_for(k8s, ns, rolling, "db"), timeout=WINDOW + 10,
             what=f"{rolling} rolled for the last data")
    assert generation(k8s, ns, rolling) == before[rolling] + 2
    report_done(k8s, ns, rolling)
    wait_for(lambda: idle(controller), what="the budget free again")


# ---- Argo CD and Flux ---------------------------------------------------------------------------
def kubectl(k8s: K8s, *args: str) -> subprocess.CompletedProcess[str]:
    return k8s.kubectl(*args, check=False)


def test_a_roll_is_no_drift_for_argo_cd_or_flux(
        k8s: K8s, controller: Controller, openbao: OpenBao, tenant: Tenant,
        tmp_path: Path) -> None:
    """The workload comes from Git (kubectl apply, as Argo CD's sync does); after a roll:
    the client-side three-way diff (Argo CD's default) and a server-side dry-run apply as
    kustomize-controller (Flux's drift detection) find nothing; Flux's and Argo CD's apply
    leave the roll's annotations alone; they belong to our own field manager, which neither
    Flux (kubectl*, before-first-apply) nor an ignoreDifferences rule confuses."""
    ns = namespace(k8s)
    key = f"{tenant.prefix}/gitops"
    put(openbao, key, {"password": "one"})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, external(ns, "db", "vault", [item("password", key, "password")],
                         interval="1h"))
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(deployment(ns, "web", "db")))
    k8s.kubectl("apply", "-f", str(manifest))
    wait_for(lambda: has(k8s, ns, "db", {"password": b"one"}), what="Secret")
    put(openbao, key, {"password": "two"})
    force_sync(k8s, ns, "db", "1")
    wait_for(lambda: rolled_for(k8s, ns, "web", "db"), timeout=WINDOW + 10, what="rolled")
    rolled = template_notes(k8s, ns, "web")

    owners = {(m["manager"], m["operation"]) for m in live(k8s, ns, "web")["metadata"][
        "managedFields"] if RESTARTED in json.dumps(m.get("fieldsV1"))}
    assert owners == {("secretops-controller", "Update")}
    assert not "secretops-controller".startswith("kubectl")  # Flux takes those fields over

    assert kubectl(k8s, "diff", "-f", str(manifest)).returncode == 0  # Argo CD (three-way)
    flux = ("--server-side", "--force-conflicts", "--field-manager=kustomize-controller")
    flux_diff = kubectl(k8s, "diff", *flux, "-f", str(manifest))
    assert flux_diff.returncode == 0, flux_diff.stdout  # Flux: no drift
    changed = json.loads(manifest.read_text())
    changed["spec"]["replicas"] = 3  # a real change in Git: drift both ways (the check works)
    other = tmp_path / "changed.json"
    other.write_text(json.dumps(changed))
    assert kubectl(k8s, "diff", "-f", str(other)).returncode == 1
    assert kubectl(k8s, "diff", *flux, "-f", str(other)).returncode == 1

    for apply in (("apply", *flux), ("apply",)):
        out = kubectl(k8s, *apply, "-f", str(manifest))
        assert out.returncode == 0, out.stderr
        notes = template_notes(k8s, ns, "web")
        assert {k: notes.get(k) for k in rolled} == rolled, apply  # the roll is kept
    assert DATA_HASH in secret_notes(k8s, ns, "db")
    report_done(k8s, ns, "web")
    wait_for(lambda: idle(controller), what="the budget free again")
