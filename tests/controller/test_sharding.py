"""Shards on Leases (issue 20): three controller processes, ``--shards 6``, one emulator.

Each replica runs as a service account of its own, so the emulator's audit log says which
replica made each call. What is checked:

* the replicas share the six shard Leases 2/2/2 (the first one alone takes all six, then gives
  up its surplus as the others come);
* every SealedSecret and ExternalSecret, in many namespaces, is written exactly once (one
  Secret write, one status write), and — once balanced — every write in a namespace (ours and
  kopf's: Secrets, statuses, Events) comes from the replica holding that namespace's shard;
* after ``kill -9`` of one replica, its shards' Leases are taken over once they expire (not
  before: the dead one might still be writing for all the others know) and the objects of its
  namespaces, new ones included, are handled; the old ones are not written again;
* the write guard refuses, before sending anything, a write to a namespace whose shard is not
  held.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from secretops_controller import kube
from secretops_controller.shardelect import write_guard
from secretops_controller.shards import Ownership, lease_name, shard_of

from secretops.sealing import parse_recipients_file, seal_secret
from tests.controller.conftest import SYSTEM_NS, Controller, prepare_external, scan_for_canary
from tests.controller.helpers import CANARY, metrics, secret, synced, values, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

SHARDS = 6
LEASE, RENEW, RETRY = 3.0, 2.0, 0.2
# --workers 2: kopf takes at most workers / 0.1 s objects a second (an idle per-object worker
# keeps its place 0.1 s), so a replica's listing of a cluster with a few hundred objects lasts
# seconds, as it does at ten thousand objects with the default 64
FLAGS = ("--shards", str(SHARDS), "--lease-duration", f"{LEASE}s", "--renew-deadline",
         f"{RENEW}s", "--retry-period", f"{RETRY}s", "--key-renew-period", "0",
         "--key-refresh-interval", "0.5s", "--workers", "2")
NAMESPACES = [f"tenant-{i:02d}" for i in range(18)]
ES_API = "/apis/secretops.dev/v1alpha1"
WRITES = ("create", "update", "patch", "delete")
REPLICAS: dict[str, Controller] = {}
EXTERNAL: list[str] = []  # the namespaces with an ExternalSecret "es" (one of each shard)
FILLER = "a-filler"  # listed before every tenant namespace (the API lists in key order)


@pytest.fixture(scope="module")
def cluster(k8s_emulator: K8s, tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8s]:
    prepare_external(k8s_emulator, *NAMESPACES, FILLER)
    try:
        yield k8s_emulator
    finally:
        for ctl in REPLICAS.values():
            ctl.stop()
        scan_for_canary(k8s_emulator, list(REPLICAS.values()))
        assert k8s_emulator.malformed() == [], "the controller sent malformed requests"


def start(k8s: K8s, directory: Path, name: str) -> Controller:
    """A replica as service account ``name`` (its calls are audited as such)."""
    kubeconfig = k8s.kubeconfig_for(SYSTEM_NS, name, directory / f"{name}.kubeconfig")
    ctl = Controller(k8s, directory, ("--kubeconfig", str(kubeconfig), *FLAGS),
                     env={"POD_NAME": name})
    REPLICAS[name] = ctl
    return ctl.start()


def holders(k8s: K8s) -> dict[int, str]:
    out = {}
    for i in range(SHARDS):
        status, body, _ = k8s.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NS}/leases/"
                   f"{lease_name('secretops-controller', i)}")
        out[i] = str((body.get("spec") or {}).get("holderIdentity") or "") if status == 200 \
            else ""
    return out


def balanced(k8s: K8s, names: list[str]) -> dict[int, str] | None:
    h = holders(k8s)
    counts = Counter(h.values())
    share = -(-SHARDS // len(names))
    return h if set(counts) == set(names) and max(counts.values()) <= share else None


def sealed_objects(cert: str, prefix: str, namespaces: list[str], each: int
                   ) -> list[dict[str, Any]]:
    recipients = parse_recipients_file(cert)
    return [seal_secret({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": f"{prefix}-{j}", "namespace": ns},
                         "stringData": {"v": f"{CANARY}-{ns}-{prefix}-{j}"}}, recipients)
            for ns in namespaces for j in range(each)]


def post(k8s: K8s, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        ns = obj["metadata"]["namespace"]
        status, out, _ = k8s.request("POST", f"{ES_API}/namespaces/{ns}/sealedsecrets", obj)
        assert status == 201, out


def unsealed(k8s: K8s, objs: list[dict[str, Any]]) -> bool:
    for obj in objs:
        meta = obj["metadata"]
        want = f"{CANARY}-{meta['namespace']}-{meta['name']}"
        if values(secret(k8s, meta["namespace"], meta["name"])) != {"v": want.encode()} or \
                (synced(k8s, meta["namespace"], meta["name"]) or {}).get("status") != "True":
            return False
    return True


def replica_of(record: dict[str, Any]) -> str:
    return str(record.get("serviceAccount") or "").rsplit("/", 1)[-1]


def writes(k8s: K8s, after: int = 0) -> list[dict[str, Any]]:
    """Every write a replica sent to a tenant namespace (failed ones too) after seq ``after``."""
    return [r for r in k8s.audit() if r["verb"] in WRITES and r["namespace"] in NAMESPACES
            and r["seq"] > after]


def per_object(records: list[dict[str, Any]], resource: str, ok_only: bool
               ) -> Counter[tuple[str, str]]:
    """Writes per object; a create (POST to the collection: no name in the path) counts as
    ``(namespace, "+")``."""
    return Counter((r["namespace"], r["name"] or "+") for r in records
                   if r["resource"] == resource and (not ok_only or (r["code"] or 0) < 400))


def expected(objs: list[dict[str, Any]], resource: str) -> Counter[tuple[str, str]]:
    """Once each: a Secret by a create per object, a status by a patch of its name."""
    if resource == "secrets":
        return Counter((o["metadata"]["namespace"], "+") for o in objs)
    return Counter((o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs)


def test_objects_are_handled_once_by_the_holder_of_their_shard(
        cluster: K8s, tmp_path_factory: pytest.TempPathFactory, openbao: OpenBao) -> None:
    k8s = cluster
    directory = tmp_path_factory.mktemp("sharding")
    a = start(k8s, directory, "replica-a")
    wait_for(lambda: set(holders(k8s).values()) == {"replica-a"}, timeout=15,
             what="replica-a, alone, holding all six shards")
    assert metrics(a)["secretops_shards_held"] == 6
    status, cert = a.get("/v1/cert")
    assert status == 200
    first = sealed_objects(cert, "early", NAMESPACES, 2)
    late = sealed_objects(cert, "late", NAMESPACES, 1)
    steady = sealed_objects(cert, "steady", NAMESPACES, 1)
    k8s.reset_audit()
    post(k8s, first)  # while replica-a handles them, the others come and take shards over
    start(k8s, directory, "replica-b")
    start(k8s, directory, "replica-c")
    post(k8s, late)
    names = ["replica-a", "replica-b", "replica-c"]
    wait_for(lambda: balanced(k8s, names), timeout=30, what="six shards shared 2/2/2")
    wait_for(lambda: unsealed(k8s, first + late), timeout=60, what="every Secret unsealed")
    for ctl in REPLICAS.values():
        wait_for(lambda c=ctl: metrics(c)["secretops_shards_held"] == 2,
                 what="each replica counting two shards")
    # through the hand-over: each object's Secret and status written once, by whoever
    handed = writes(k8s)
    for resource in ("secrets", "sealedsecrets/status"):
        assert per_object(handed, resource, ok_only=True) == expected(first + late, resource)

    # balanced: every write in a namespace (ours and kopf's) by its shard's holder, once
    owner = holders(k8s)
    mark = max((r["seq"] for r in k8s.audit()), default=0)
    post(k8s, steady)
    external = _external_secrets(k8s, openbao)
    wait_for(lambda: unsealed(k8s, steady), timeout=30, what="the steady batch unsealed")
    wait_for(lambda: all(values(secret(k8s, ns, "es")) == {"p": f"{CANARY}-{ns}".encode()}
                         for ns in external), timeout=60, what="every ExternalSecret synced")
    assert holders(k8s) == owner  # no shard moved meanwhile
    records = writes(k8s, after=mark)
    wrong = [(r["verb"], r["path"], replica_of(r)) for r in records
             if replica_of(r) != owner[shard_of(r["namespace"], SHARDS)]]
    assert not wrong, wrong
    for resource in ("secrets", "sealedsecrets/status"):
        want = expected(steady, resource)
        if resource == "secrets":  # the ExternalSecrets' Secrets: one create each too
            want.update((ns, "+") for ns in external)
        # attempts, not just successes: no replica even tried twice
        assert per_object(records, resource, ok_only=False) == want, resource
    assert {replica_of(r) for r in records} == set(names)  # all three worked


def _external_secrets(k8s: K8s, openbao: OpenBao) -> list[str]:
    """One ExternalSecret (with its SecretStore) in one namespace of each shard."""
    chosen = {}
    for ns in NAMESPACES:
        chosen.setdefault(shard_of(ns, SHARDS), ns)
    assert len(chosen) == SHARDS
    token = base64.b64encode(openbao.token.encode()).decode()
    for ns in chosen.values():
        openbao.client().secrets.kv.v2.create_or_update_secret(
            path=f"sharding/{ns}", secret={"p": f"{CANARY}-{ns}"}, mount_point="secret")
        for path, body in (
                (f"/api/v1/namespaces/{ns}/secrets",
                 {"metadata": {"name": "bao-token"}, "data": {"token": token}}),
                (f"{ES_API}/namespaces/{ns}/secretstores",
                 {"apiVersion": "secretops.dev/v1alpha1", "kind": "SecretStore",
                  "metadata": {"name": "bao"}, "spec": {"provider": {"vault": {
                      "server": openbao.url, "auth": {"tokenSecretRef": {
                          "name": "bao-token", "key": "token"}}}}}}),
                (f"{ES_API}/namespaces/{ns}/externalsecrets",
                 {"apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
                  "metadata": {"name": "es"}, "spec": {
                      "secretStoreRef": {"name": "bao", "kind": "SecretStore"},
                      "refreshInterval": "1h",
                      "data": [{"secretKey": "p", "remoteRef": {
                          "key": f"sharding/{ns}", "property": "p"}}]}})):
            status, out, _ = k8s.request("POST", path, body)
            assert status == 201, out
    EXTERNAL[:] = chosen.values()
    return list(chosen.values())


def test_sigkill_its_shards_are_taken_over_once_the_leases_expire(cluster: K8s,
                                                                  openbao: OpenBao) -> None:
    k8s = cluster
    names = ["replica-a", "replica-b", "replica-c"]
    if set(REPLICAS) != set(names):
        pytest.skip("needs the three replicas of the previous test")
    owner = wait_for(lambda: balanced(k8s, names), what="balanced")
    victim = next(n for n in names if owner[0] != n)  # its shards' objects need a survivor
    lost = {s for s, n in owner.items() if n == victim}
    orphans = [ns for ns in NAMESPACES if shard_of(ns, SHARDS) in lost]
    status, cert = REPLICAS[owner[0]].get("/v1/cert")
    assert status == 200 and orphans
    fresh = sealed_objects(cert, "orphan", orphans, 2)
    its_external = [ns for ns in EXTERNAL if shard_of(ns, SHARDS) in lost]
    assert its_external
    # ExternalSecrets that kopf lists before the tenants' (each replica's listing of the
    # cluster then takes seconds: FLAGS); handled (refused: no such store) before the kill
    filler = [{"apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
               "metadata": {"name": f"f{i:03d}", "namespace": FILLER},
               "spec": {"secretStoreRef": {"name": "none", "kind": "SecretStore"},
                        "refreshInterval": "1h",
                        "data": [{"secretKey": "k", "remoteRef": {"key": "none"}}]}}
              for i in range(200)]
    for obj in filler:
        assert k8s.request("POST", f"{ES_API}/namespaces/{FILLER}/externalsecrets", obj)[0] == 201
    wait_for(lambda: all(ready_status(k8s, FILLER, f"f{i:03d}") for i in range(200)),
             timeout=120, what="the filler handled")
    mark = max((r["seq"] for r in k8s.audit()), default=0)

    killed = time.monotonic()
    REPLICAS[victim].kill()  # no release: its Leases still name it
    post(k8s, fresh)  # objects of its shards, with no one to handle them until the takeover
    for ns in its_external:  # and its ExternalSecrets change: a new remote value, read now
        openbao.client().secrets.kv.v2.create_or_update_secret(
            path=f"sharding/{ns}", secret={"p": f"{CANARY}-{ns}-after"}, mount_point="secret")
        status, out, _ = k8s.request(
            "PATCH", f"{ES_API}/namespaces/{ns}/externalsecrets/es",
            {"metadata": {"annotations": {"secretops.dev/force-sync": "after-the-kill"}}},
            content_type="application/merge-patch+json")
        assert status == 200, out
    taken = wait_for(lambda: all(holders(k8s)[s] not in ("", victim) for s in lost) or None,
                     timeout=LEASE + 10, what="the dead replica's shards taken over")
    lease_s = time.monotonic() - killed
    # the new holders catch up with the shards they gained first, ahead of their listing of
    # the whole cluster (the filler first): within a lease time and a retry period
    wait_for(lambda: all(values(secret(k8s, ns, "es")) == {"p": f"{CANARY}-{ns}-after".encode()}
                         for ns in its_external), timeout=LEASE + RETRY,
             what="its ExternalSecrets synced by the new holders")
    external_s = time.monotonic() - killed
    wait_for(lambda: unsealed(k8s, fresh), timeout=LEASE + 20, what="its objects handled")
    resume_s = time.monotonic() - killed
    print(f"kill -9: shards re-held after {lease_s:.2f} s, its ExternalSecrets synced after "
          f"{external_s:.2f} s, its new objects handled after {resume_s:.2f} s (lease "
          f"{LEASE} s, retry {RETRY} s)")
    assert taken
    # not before the Leases expired on the survivors' clocks (renewed up to the kill)
    assert lease_s >= LEASE - RETRY - 0.5
    survivors = [n for n in names if n != victim]
    wait_for(lambda: balanced(k8s, survivors), timeout=15, what="3/3 between the survivors")
    records = writes(k8s, after=mark)
    assert not [r for r in records if replica_of(r) == victim]
    owner = holders(k8s)
    changed = [r for r in records if r["namespace"] in its_external and r["resource"] ==
               "secrets" and r["name"] == "es"]  # by the shard's new holder
    assert all(replica_of(r) == owner[shard_of(r["namespace"], SHARDS)] for r in changed)
    # one create per new object, not even a second attempt (the catch-up of the gained shards
    # and kopf's listing met on each); the old objects were looked at, not written again
    for resource in ("secrets", "sealedsecrets/status"):
        want = expected(fresh, resource)
        if resource == "secrets":  # and one write per changed ExternalSecret's Secret
            want.update((ns, "es") for ns in its_external)
        assert per_object(records, resource, ok_only=False) == want, resource


def ready_status(k8s: K8s, ns: str, name: str) -> str | None:
    """The status of an ExternalSecret's Ready condition (None: not reported yet)."""
    status, body, _ = k8s.request("GET", f"{ES_API}/namespaces/{ns}/externalsecrets/{name}")
    conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
    return next((str(c.get("status")) for c in conditions if c.get("type") == "Ready"), None)


def test_the_write_guard_refuses_before_sending() -> None:
    ours = next(ns for ns in NAMESPACES if shard_of(ns, SHARDS) == 1)
    theirs = next(ns for ns in NAMESPACES if shard_of(ns, SHARDS) == 2)
    ownership = Ownership(SHARDS, SYSTEM_NS, held=frozenset({1}))
    refusal = write_guard(ownership)
    assert refusal("POST", kube.secrets(ours)) is None
    assert "shard 2 is not held" in str(refusal("PUT", kube.secrets(theirs, "x")))
    assert refusal("GET", kube.secrets(theirs, "x")) is None  # reads are not guarded
    assert refusal("PATCH", f"{ES_API}/clustersecretstores/s/status")  # shard 0's
    assert refusal("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NS}/leases/"
                          "secretops-controller-shard-2") is None
    assert refusal("POST", f"/api/v1/namespaces/{theirs}/serviceaccounts/sa/token") is None
    assert refusal("POST", kube.secrets(SYSTEM_NS)) is None  # the key ring's namespace

    def never() -> Any:
        raise AssertionError("the guard let the request through to the network")

    async def attempt() -> kube.ApiError:
        api = kube.Kube(never)
        api.write_guard = refusal
        try:
            await api.create(kube.secrets(theirs), {"metadata": {"name": "x"}})
        except kube.ApiError as e:
            return e
        finally:
            await api.close()
        raise AssertionError("not refused")

    error = asyncio.run(attempt())
    assert (error.status, error.reason) == (403, "ShardNotHeld") and not error.transient
