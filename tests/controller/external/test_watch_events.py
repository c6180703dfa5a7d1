"""Stores and ExternalSecrets are handled from watch events, with no kopf state on them (issue 20).

The controller runs as a service account of its own, so the emulator's audit log has every call
it makes. What is checked:

* a cold start over existing ExternalSecrets writes nothing to them but their status (kopf's
  create/update/resume handlers PATCHed a ``last-handled-configuration`` annotation onto each),
  and a restart over objects that are all up to date writes nothing at all: no status, no
  Secret, no annotation;
* an upgrade: objects carrying the annotations the previous version's kopf kept its state in
  (diffbase, marker, a retrying handler's progress record) lose them with one PATCH each, are
  handled once (no Secret and no status written again: the removal's echo is not a change),
  and their user annotations stay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from secretops_controller import events, kube
from secretops_controller.conditions import Outcome
from secretops_controller.config import Config
from secretops_controller.context import Context
from secretops_controller.external import status
from secretops_controller.external.names import EsReason
from secretops_controller.keyring import KeyRing
from secretops_controller.metrics import Metrics

from tests.controller.conftest import SYSTEM_NS, Controller, prepare_external, scan_for_canary
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.test_reconcile import (
    API,
    create,
    es_status,
    external,
    item,
    ready,
    token_store,
)
from tests.controller.helpers import CANARY, metrics, secret, values, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

COUNT = 12  # ExternalSecrets per test: enough that a per-object write shows as a pattern
WRITES = ("create", "update", "patch", "delete")
MERGE = "application/merge-patch+json"
# what the previous version's kopf left: its diffbase and marker on every object it handled,
# and a progress record on one whose handler was still retrying
DIFFBASE = "secretops.dev/last-handled-configuration"
MARKER = "secretops.dev/kopf-managed"
PROGRESS = "secretops.dev/register._locals_.external_secret"
STORE_PROGRESS = "secretops.dev/register._locals_.store"


@pytest.fixture(scope="module")
def cluster(k8s_emulator: K8s, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[K8s, list[Controller]]]:
    prepare_external(k8s_emulator)
    started: list[Controller] = []
    try:
        yield k8s_emulator, started
    finally:
        for ctl in started:
            ctl.stop()
        scan_for_canary(k8s_emulator, started)
        assert k8s_emulator.malformed() == [], "the controller sent malformed requests"


def start(k8s: K8s, started: list[Controller], directory: Path) -> Controller:
    """The controller as service account ``secretops-controller`` (its calls are audited)."""
    kubeconfig = k8s.kubeconfig_for(SYSTEM_NS, "secretops-controller",
                                    directory / "controller.kubeconfig")
    ctl = Controller(k8s, directory, ("--kubeconfig", str(kubeconfig), "--no-leader-elect",
                                      "--key-renew-period", "0", "--rollout-window", "0.2s",
                                      "--rollout-timeout", "1s"))
    started.append(ctl)
    return ctl.start()


def objects(k8s: K8s, openbao: OpenBao, tenant: Tenant, ns: str) -> list[str]:
    """A namespace with a token SecretStore and COUNT ExternalSecrets (refreshed hourly: no
    refresh during the test), each of its own remote key."""
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    token_store(k8s, openbao, tenant, ns)
    names = [f"es{i:02d}" for i in range(COUNT)]
    for name in names:
        put(openbao, f"{tenant.prefix}/{name}", {"p": f"{CANARY}-{name}"})
        obj = external(ns, name, "vault", [item("p", f"{tenant.prefix}/{name}", "p")],
                       interval="1h")
        obj["metadata"]["annotations"] = {"team": "payments"}
        create(k8s, obj)
    return names


def all_synced(k8s: K8s, ns: str, names: list[str]) -> bool:
    return all(values(secret(k8s, ns, n)) == {"p": f"{CANARY}-{n}".encode()}
               and ready(k8s, ns, "externalsecrets", n).get("reason") == "SecretSynced"
               for n in names) and ready(k8s, ns, "secretstores", "vault").get(
        "reason") == "Valid"


def all_reported(ctl: Controller, ns: str, names: list[str]) -> bool:
    """Every ExternalSecret's condition set again in this controller's metrics: each was
    synced and its status decided on (written or found the same)."""
    series = metrics(ctl)
    return all(series.get(f'secretops_externalsecret_status_condition{{condition="Ready",'
                          f'name="{n}",namespace="{ns}",status="True"}}') == 1.0
               for n in names)


def writes(k8s: K8s, ns: str, after: int = 0) -> list[tuple[str, str, str]]:
    """(verb, resource, name) of every write the controller sent to namespace ``ns``, failed
    ones too, Events apart."""
    return [(r["verb"], r["resource"], r["name"]) for r in k8s.audit()
            if r["verb"] in WRITES and r["namespace"] == ns and r["seq"] > after
            and r["resource"] != "events"]


def last_seq(k8s: K8s) -> int:
    return max((r["seq"] for r in k8s.audit()), default=0)


def annotations(k8s: K8s, ns: str, plural: str, name: str) -> dict[str, str]:
    _, body, _ = k8s.request("GET", f"{API}/namespaces/{ns}/{plural}/{name}")
    return dict(body["metadata"].get("annotations") or {})


def test_a_cold_start_writes_only_statuses_and_a_restart_nothing(
        cluster: tuple[K8s, list[Controller]], openbao: OpenBao, tenant: Tenant,
        tmp_path: Path) -> None:
    k8s, started = cluster
    ns = "cold"
    names = objects(k8s, openbao, tenant, ns)
    before = last_seq(k8s)
    ctl = start(k8s, started, tmp_path)
    wait_for(lambda: all_synced(k8s, ns, names), timeout=60, what="every ExternalSecret synced")
    wait_for(lambda: all_reported(ctl, ns, names), what="every condition reported")
    done = writes(k8s, ns, before)
    # the product's writes only: each Secret created, each status written; not one PATCH of
    # an ExternalSecret or a store themselves
    assert sorted(w for w in done if w[1] in ("externalsecrets", "secretstores")) == []
    assert sorted(w for w in done if w[1] == "secrets") == [
        ("create", "secrets", "") for _ in names]
    assert {w[2] for w in done if w[1] == "externalsecrets/status"} == set(names)
    assert {w[2] for w in done if w[1] == "secretstores/status"} == {"vault"}
    for name in names:
        assert annotations(k8s, ns, "externalsecrets", name) == {"team": "payments"}
    assert annotations(k8s, ns, "secretstores", "vault") == {}

    # a restart (a new leader) over objects that are all up to date: reads only
    ctl.stop()
    before = last_seq(k8s)
    ctl = start(k8s, started, tmp_path)
    wait_for(lambda: all_reported(ctl, ns, names), timeout=30,
             what="every ExternalSecret looked at again")
    assert writes(k8s, ns, before) == []
    ctl.stop()


def test_an_upgrade_removes_kopfs_annotations_once_and_handles_each_object_once(
        cluster: tuple[K8s, list[Controller]], openbao: OpenBao, tenant: Tenant,
        tmp_path: Path) -> None:
    k8s, started = cluster
    ns = "upgrade"
    names = objects(k8s, openbao, tenant, ns)
    ctl = start(k8s, started, tmp_path)
    wait_for(lambda: all_synced(k8s, ns, names), timeout=60, what="every ExternalSecret synced")
    wait_for(lambda: all_reported(ctl, ns, names), what="every condition reported")
    ctl.stop()
    # the objects as the previous version leaves them: its kopf's state in annotations
    for plural, name in [("secretstores", "vault"), *(("externalsecrets", n) for n in names)]:
        p = f"{API}/namespaces/{ns}/{plural}/{name}"
        _, obj, _ = k8s.request("GET", p)
        diffbase = {"spec": obj["spec"],
                    "metadata": {"annotations": obj["metadata"].get("annotations") or {}}}
        old = {DIFFBASE: json.dumps(diffbase, separators=(",", ":")), MARKER: "yes"}
        if name in ("vault", names[0]):
            old[STORE_PROGRESS if name == "vault" else PROGRESS] = json.dumps(
                {"started": "2026-12-01T10:00:00.000000+00:00", "retries": 1,
                 "delayed": "2026-12-01T10:00:01.000000+00:00", "success": False,
                 "failure": False, "message": "ExternalSecret: 503"})
        status, out, _ = k8s.request("PATCH", p, {"metadata": {"annotations": old}}, MERGE)
        assert status == 200, out
    statuses = {n: es_status(k8s, ns, n) for n in names}

    before = last_seq(k8s)
    ctl = start(k8s, started, tmp_path)
    wait_for(lambda: all(set(annotations(k8s, ns, "externalsecrets", n)) == {"team"}
                         for n in names), timeout=30, what="kopf's annotations removed")
    wait_for(lambda: annotations(k8s, ns, "secretstores", "vault") == {},
             what="kopf's annotations removed from the store")
    wait_for(lambda: all_reported(ctl, ns, names), timeout=30,
             what="every ExternalSecret looked at")
    # one PATCH of each object (the removal); no Secret and no status written again: the
    # removal's echo is no change, and what was synced is still what the status says
    assert sorted(writes(k8s, ns, before)) == sorted(
        [("patch", "secretstores", "vault"), *(("patch", "externalsecrets", n) for n in names)])
    assert {n: es_status(k8s, ns, n) for n in names} == statuses
    ctl.stop()


def test_api_errors_are_retried_with_backoff_then_left_for_the_next_event(
        cluster: tuple[K8s, list[Controller]], openbao: OpenBao, tenant: Tenant,
        tmp_path: Path) -> None:
    """An ExternalSecret's handling retries transient API errors (here: reading its store, one
    not watched: it does not exist yet) at most --max-retries times (5 in the tests), then waits
    for the object's next event."""
    k8s, started = cluster
    ns = "faults"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    token_store(k8s, openbao, tenant, ns)
    ctl = start(k8s, started, tmp_path)
    wait_for(lambda: ready(k8s, ns, "secretstores", "vault").get("reason") == "Valid",
             what="SecretStore Valid")
    store_get = {"verb": "get", "resource": "secretstores", "namespace": ns, "name": "later",
                 "serviceAccount": f"{SYSTEM_NS}/secretops-controller"}

    def refused(name: str) -> bool:  # its store read (after the faults): not found
        return ready(k8s, ns, "externalsecrets", name).get("reason") == "StoreNotReady"

    def es(name: str) -> dict[str, object]:
        return external(ns, name, "later", [item("p", f"{tenant.prefix}/{name}", "p")],
                        interval="1h")

    k8s.fail_next(3, 503, match=store_get)  # fewer than the retries: no one notices
    create(k8s, es("flaky"))
    wait_for(lambda: refused("flaky"), timeout=30, what="flaky handled through the retries")

    before = last_seq(k8s)
    k8s.fail_next(1000, 503, match=store_get)
    create(k8s, es("stuck"))
    wait_for(lambda: "ExternalSecret faults/stuck: " in ctl.logs(), timeout=30,
             what="stuck given up after its retries")
    attempts = [r for r in k8s.audit() if r["seq"] > before and r["verb"] == "get"
                and r["resource"] == "secretstores" and r["namespace"] == ns]
    assert len(attempts) == 1 + 5
    assert ready(k8s, ns, "externalsecrets", "stuck") == {}
    k8s.clear_faults()
    k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/stuck",
                {"metadata": {"annotations": {"touched": "1"}}}, MERGE)
    wait_for(lambda: refused("stuck"), timeout=30, what="stuck handled at its next event")
    ctl.stop()


def test_a_cold_start_makes_few_requests_per_external_secret(
        cluster: tuple[K8s, list[Controller]], openbao: OpenBao, tenant: Tenant,
        tmp_path: Path) -> None:
    """Issue 20: at a cold start each ExternalSecret costs at most one read of itself, the
    create of its Secret (not read first: it never synced) and its status; each store one read
    of its credentials (its validation; one more at most if an ExternalSecret came first), at
    most one of itself (an ExternalSecret listed before it) and its status — not a read of the
    store and of its credentials per ExternalSecret, a read of each target Secret, nor a second
    read of each ExternalSecret."""
    k8s, started = cluster
    stores, per_store = 4, 3
    spaces = [f"req-{i}" for i in range(stores)]
    names: dict[str, list[str]] = {}
    for ns in spaces:
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        token_store(k8s, openbao, tenant, ns)
        names[ns] = [f"es{i}" for i in range(per_store)]
        for name in names[ns]:
            put(openbao, f"{tenant.prefix}/{ns}-{name}", {"p": f"{CANARY}-{name}"})
            create(k8s, external(ns, name, "vault",
                                 [item("p", f"{tenant.prefix}/{ns}-{name}", "p")],
                                 interval="1h"))
    before = last_seq(k8s)
    ctl = start(k8s, started, tmp_path)
    for ns in spaces:
        wait_for(lambda ns=ns: all(values(secret(k8s, ns, n)) == {"p": f"{CANARY}-{n}".encode()}
                                   and ready(k8s, ns, "externalsecrets", n).get("reason")
                                   == "SecretSynced" for n in names[ns]),
                 timeout=60, what=f"every ExternalSecret of {ns} synced")
        wait_for(lambda ns=ns: all_reported(ctl, ns, names[ns]), what="every condition reported")
    calls = [r for r in k8s.audit() if r["seq"] > before and r["namespace"] in spaces
             and r["resource"] != "events"]
    ctl.stop()
    counts: dict[tuple[str, str], int] = {}
    for r in calls:
        counts[(r["verb"], r["resource"])] = counts.get((r["verb"], r["resource"]), 0) + 1
    es_count = stores * per_store
    targets = {(ns, n) for ns in spaces for n in names[ns]}
    assert [r["name"] for r in calls if r["verb"] == "get" and r["resource"] == "secrets"
            and (r["namespace"], r["name"]) in targets] == [], "a target Secret read first"
    assert counts.get(("get", "secrets"), 0) <= 2 * stores, counts  # the credentials
    assert counts.get(("get", "secretstores"), 0) <= stores, counts
    assert counts.get(("get", "externalsecrets"), 0) <= es_count, counts
    assert counts.get(("create", "secrets"), 0) == es_count, counts
    assert counts.get(("patch", "externalsecrets/status"), 0) == es_count, counts
    assert counts.get(("patch", "secretstores/status"), 0) == stores, counts
    assert set(counts) <= {("get", "secrets"), ("get", "secretstores"),
                           ("get", "externalsecrets"), ("create", "secrets"),
                           ("patch", "externalsecrets/status"),
                           ("patch", "secretstores/status")}, counts


def test_a_status_written_from_a_watched_body_is_refused_once_the_object_changed(
        cluster: tuple[K8s, list[Controller]], tmp_path: Path) -> None:
    """A sync that takes the ExternalSecret from its watch event (not read) writes its status
    with that body's resourceVersion as a precondition: an ExternalSecret changed since (a
    user's edit, another status write) refuses it with 409 — the sync then reads it afresh —
    and an unchanged one takes it."""
    k8s, _ = cluster
    ns = "guard"
    for plural in ("secretstores", "clustersecretstores", "externalsecrets"):  # served (no 429)
        wait_for(lambda plural=plural: k8s.request("GET", f"{API}/{plural}")[0] == 200,
                 what=f"{plural} listed")
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    create(k8s, external(ns, "es", "vault", [item("p", "k", "p")], interval="1h"))
    p = f"{API}/namespaces/{ns}/externalsecrets/es"
    _, watched, _ = k8s.request("GET", p)
    k8s.request("PATCH", p, {"metadata": {"annotations": {"touched": "1"}}}, MERGE)
    _, current, _ = k8s.request("GET", p)
    kubeconfig = k8s.kubeconfig_for(SYSTEM_NS, "secretops-controller",
                                    tmp_path / "controller.kubeconfig")
    config = Config(kubeconfig=str(kubeconfig))
    api = kube.Kube(lambda: kube.login(config.kubeconfig))
    metrics = Metrics()
    ctx = Context(config, api, KeyRing(api, config, metrics), metrics)
    outcome = Outcome(True, EsReason.SYNCED, "Secret guard/es created (keys: p)", wrote=True)

    async def report(body: dict[str, object]) -> int:
        try:
            await status.report(ctx, body, outcome,
                                guard=str(body["metadata"]["resourceVersion"]))  # type: ignore[index]
        except kube.ApiError as e:
            return e.status
        return 200

    async def main() -> tuple[int, int]:
        events.post_events_from_this_task(api, config)
        try:
            return await report(watched), await report(current)
        finally:
            await api.close()

    assert asyncio.run(main()) == (409, 200)
    assert ready(k8s, ns, "externalsecrets", "es")["reason"] == "SecretSynced"
