"""Two writers of one Secret (issue 16, item 5), and conditions that say only what was checked
(item 8), against the running controller, the emulator and the real OpenBao.

A conflict must have one deterministic winner — the writer recorded on the Secret, else the
oldest ExternalSecret — while every other claimant writes nothing and says so (Ready=False,
reason ``SecretConflict``, a Warning Event naming the winner). Each Secret's every version is
recorded from a watch (:class:`~tests.controller.external.history.SecretHistory`), so a flip
between two polls cannot go unseen. Rotations upstream and force-syncs give the loser every
chance to write.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.history import SecretHistory
from tests.controller.external.test_reconcile import (
    API,
    MERGE,
    create,
    es_status,
    external,
    get,
    has,
    item,
    opaque,
    ready,
    token_store,
    vault_store,
)
from tests.controller.helpers import (
    CANARY,
    apply,
    dump,
    events,
    load,
    metrics,
    seal,
    secret,
    synced,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao
from tests.helpers import secretops

CONFLICT = "SecretConflict"


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_external(k8s_emulator)
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


@pytest.fixture
def ns(controller: Controller, k8s: K8s) -> Iterator[str]:
    name = f"cf-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    assert CANARY not in json.dumps(events(k8s, name))
    for plural in ("externalsecrets", "sealedsecrets"):
        _, body, _ = k8s.request("GET", f"{API}/namespaces/{name}/{plural}")
        assert CANARY not in json.dumps([i.get("status") for i in body.get("items") or []])
    assert CANARY not in controller.logs()


@pytest.fixture
def cert(controller: Controller, tmp_path: Path) -> Path:
    status, text = controller.get("/v1/cert")
    assert status == 200
    path = tmp_path / "cluster.txt"
    path.write_text(text)
    return path


def conflicted(k8s: K8s, ns: str, name: str) -> dict[str, Any]:
    """The Ready condition once it reports the conflict (asserting it is not Ready)."""
    cond = wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", name)).get("reason")
                    == CONFLICT and c, what=f"{name}: {CONFLICT}")
    assert cond["status"] == "False"
    [ev] = wait_for(lambda: [e for e in events(k8s, ns, name, CONFLICT)
                             if e["message"] == cond["message"]], what=f"{name}: Event")
    assert ev["type"] == "Warning"
    return dict(cond)


def syncs(ctl: Controller, reason: str | None = None) -> float:
    """ExternalSecret syncs finished, with ``reason`` (None: any)."""
    return sum(v for k, v in metrics(ctl).items()
               if k.startswith("secretops_externalsecret_syncs_total{")
               and (reason is None or f'reason="{reason}"' in k))


def force_sync(k8s: K8s, ns: str, *names: str) -> None:
    for name in names:
        k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/{name}", {"metadata": {
            "annotations": {"secretops.dev/force-sync": uuid.uuid4().hex}}}, MERGE)


# ---- item 5: one Secret, two writers ---------------------------------------------------------
def test_two_orphans_on_one_secret_the_first_writer_keeps_it_through_rotations(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, controller: Controller) -> None:
    a_key, b_key = f"{tenant.prefix}/a", f"{tenant.prefix}/b"
    put(openbao, a_key, {"v": CANARY})
    put(openbao, b_key, {"v": "b-1"})
    token_store(k8s, openbao, tenant, ns)
    with SecretHistory(k8s, ns, "shared") as history:
        create(k8s, external(ns, "a", "vault", [item("v", a_key, "v")], name="shared",
                             creationPolicy="Orphan"))
        wait_for(lambda: ready(k8s, ns, "externalsecrets", "a").get("status") == "True",
                 what="a Ready")
        create(k8s, external(ns, "b", "vault", [item("v", b_key, "v")], name="shared",
                             creationPolicy="Orphan"))
        wait_for(lambda: ready(k8s, ns, "externalsecrets", "b"), what="b reported")

        # both remote values rotate, both are force-synced: still only a's values
        before = syncs(controller)
        put(openbao, a_key, {"v": "a-2"})
        put(openbao, b_key, {"v": "b-2"})
        force_sync(k8s, ns, "a", "b")
        wait_for(lambda: syncs(controller) >= before + 2, what="both synced again")
        assert history.seen() and all(v in ({"v": CANARY.encode()}, {"v": b"a-2"})
                                      for v in history.seen()), history.seen()
        wait_for(lambda: has(k8s, ns, "shared", {"v": b"a-2"}), timeout=10, what="a rotated")
        assert ready(k8s, ns, "externalsecrets", "a")["status"] == "True"
        cond = conflicted(k8s, ns, "b")
        assert f"Secret {ns}/shared was written by ExternalSecret a" in cond["message"]
        assert "dataHash" not in es_status(k8s, ns, "b")  # it wrote nothing: no fingerprint

        # the winner goes (Orphan: its Secret stays): the other takes the Secret over
        k8s.request("DELETE", f"{API}/namespaces/{ns}/externalsecrets/a")
        wait_for(lambda: has(k8s, ns, "shared", {"v": b"b-2"}), timeout=10, what="b took over")
        wait_for(lambda: ready(k8s, ns, "externalsecrets", "b").get("status") == "True",
                 what="b Ready")
        notes = (secret(k8s, ns, "shared") or {})["metadata"]["annotations"]
        assert notes["secretops.dev/external-secret"] == "b"


def test_without_a_writer_the_oldest_externalsecret_wins(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, controller: Controller) -> None:
    """Nobody has written the Secret yet: the younger ExternalSecret, though able to sync
    first (the older one's store does not exist yet), leaves it to the older one."""
    old_key, young_key = f"{tenant.prefix}/old", f"{tenant.prefix}/young"
    put(openbao, old_key, {"v": "old"})
    put(openbao, young_key, {"v": "young"})
    token_store(k8s, openbao, tenant, ns)
    with SecretHistory(k8s, ns, "race") as history:
        create(k8s, external(ns, "z-older", "late", [item("v", old_key, "v")], name="race",
                             creationPolicy="Orphan"))
        wait_for(lambda: ready(k8s, ns, "externalsecrets", "z-older").get("reason")
                 == "StoreNotReady", what="the older one waits for its store")
        older = get(k8s, f"{API}/namespaces/{ns}/externalsecrets/z-older")["metadata"][
            "creationTimestamp"]
        # creationTimestamp has whole seconds: the younger one is made in a later second
        wait_for(lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > older,
                 what="the next second")
        create(k8s, external(ns, "a-younger", "vault", [item("v", young_key, "v")],
                             name="race", creationPolicy="Orphan"))
        cond = conflicted(k8s, ns, "a-younger")
        assert "ExternalSecret z-older also writes the whole Secret" in cond["message"]
        assert "older" in cond["message"]
        assert secret(k8s, ns, "race") is None
        create(k8s, opaque(ns, "late-token", token=token_of(k8s, ns)))
        create(k8s, vault_store(ns, "late", openbao.url,
                                {"tokenSecretRef": {"name": "late-token", "key": "token"}}))
        wait_for(lambda: has(k8s, ns, "race", {"v": b"old"}), timeout=10, what="older wrote")
        force_sync(k8s, ns, "a-younger")
        assert ready(k8s, ns, "externalsecrets", "a-younger")["reason"] == CONFLICT
        put(openbao, old_key, {"v": "old-2"})
        wait_for(lambda: has(k8s, ns, "race", {"v": b"old-2"}), timeout=10, what="rotated")
        assert all(v in ({"v": b"old"}, {"v": b"old-2"}) for v in history.seen()), \
            history.seen()


def token_of(k8s: K8s, ns: str) -> str:
    return values(secret(k8s, ns, "vault-token"))["token"].decode()


def test_owner_and_merge_against_another_externalsecrets_secret(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, controller: Controller) -> None:
    keys = {n: f"{tenant.prefix}/{n}" for n in ("a", "b", "c", "d", "e")}
    for n, k in keys.items():
        put(openbao, k, {"v": f"{n}-1"})
    put(openbao, keys["a"], {"v": CANARY})
    token_store(k8s, openbao, tenant, ns)
    with SecretHistory(k8s, ns, "owned") as owned, SecretHistory(k8s, ns, "orphan") as orphan:
        create(k8s, external(ns, "a", "vault", [item("a", keys["a"], "v")], name="owned"))
        create(k8s, external(ns, "d", "vault", [item("d", keys["d"], "v")], name="orphan",
                             creationPolicy="Orphan"))
        wait_for(lambda: has(k8s, ns, "owned", {"a": CANARY.encode()})
                 and has(k8s, ns, "orphan", {"d": b"d-1"}), what="written")
        create(k8s, external(ns, "b", "vault", [item("b", keys["b"], "v")], name="owned"))
        create(k8s, external(ns, "c", "vault", [item("c", keys["c"], "v")], name="owned",
                             creationPolicy="Merge"))
        create(k8s, external(ns, "e", "vault", [item("e", keys["e"], "v")], name="orphan",
                             creationPolicy="Merge"))
        assert "is controlled by ExternalSecret a" in conflicted(k8s, ns, "b")["message"]
        assert "is controlled by ExternalSecret a" in conflicted(k8s, ns, "c")["message"]
        assert "was written by ExternalSecret d" in conflicted(k8s, ns, "e")["message"]
        before = syncs(controller, CONFLICT)
        for n in ("b", "c", "e"):
            put(openbao, keys[n], {"v": f"{n}-2"})
        force_sync(k8s, ns, "b", "c", "e")
        wait_for(lambda: syncs(controller, CONFLICT) >= before + 3, what="the losers synced")
        assert owned.seen() and all(v == {"a": CANARY.encode()} for v in owned.seen())
        assert orphan.seen() and all(v == {"d": b"d-1"} for v in orphan.seen())

        # a's Secret goes with a (ownerReference); b, the other whole writer, makes it again
        k8s.request("DELETE", f"{API}/namespaces/{ns}/externalsecrets/a")
        wait_for(lambda: has(k8s, ns, "owned", {"b": b"b-2"}), timeout=10, what="b wrote")
        assert "is controlled by ExternalSecret b" in conflicted(k8s, ns, "c")["message"]


def test_sealed_secret_and_external_secret_on_one_secret_name(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, controller: Controller,
        cert: Path) -> None:
    key = f"{tenant.prefix}/es"
    put(openbao, key, {"v": "from-vault"})
    token_store(k8s, openbao, tenant, ns)
    rivals = ("merge-in", "orphan-in", "owner-in")
    with SecretHistory(k8s, ns, "sealed-first") as first, \
            SecretHistory(k8s, ns, "es-first") as other:
        apply(k8s, seal(cert, "-n", ns, "--name", "sealed-first",
                        "--from-literal", f"pw={CANARY}"))
        wait_for(lambda: has(k8s, ns, "sealed-first", {"pw": CANARY.encode()}), what="sealed")
        for name, policy in zip(rivals, ("Merge", "Orphan", "Owner"), strict=True):
            create(k8s, external(ns, name, "vault", [item(name, key, "v")],
                                 name="sealed-first", creationPolicy=policy))
        create(k8s, external(ns, "es-first", "vault", [item("v", key, "v")],
                             creationPolicy="Orphan"))
        wait_for(lambda: has(k8s, ns, "es-first", {"v": b"from-vault"}), what="es wrote")
        apply(k8s, seal(cert, "-n", ns, "--name", "es-first", "--from-literal", "v=sealed"))
        cond = wait_for(lambda: synced(k8s, ns, "es-first"), what="Synced condition")
        assert (cond["status"], cond["reason"]) == ("False", "SecretNotOwned")
        for name in rivals:
            wait_for(lambda n=name: ready(k8s, ns, "externalsecrets", n), what=f"{name}")

        before = syncs(controller)
        put(openbao, key, {"v": "from-vault-2"})
        force_sync(k8s, ns, *rivals, "es-first")
        wait_for(lambda: syncs(controller) >= before + 4, what="all synced again")
        wait_for(lambda: has(k8s, ns, "es-first", {"v": b"from-vault-2"}), timeout=10,
                 what="es-first rotated")
        assert first.seen() and all(v == {"pw": CANARY.encode()} for v in first.seen()), \
            first.seen()
        assert all(v in ({"v": b"from-vault"}, {"v": b"from-vault-2"}) for v in other.seen())
        for name in rivals:
            cond = conflicted(k8s, ns, name)
            assert "is controlled by SealedSecret sealed-first" in cond["message"]


# ---- item 8: conditions say only what was checked --------------------------------------------
def test_a_condition_claims_a_kept_secret_only_when_there_is_one(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    token_store(k8s, openbao, tenant, ns)
    create(k8s, opaque(ns, "refused-token", token="not-a-token"))
    create(k8s, vault_store(ns, "refused", openbao.url,
                            {"tokenSecretRef": {"name": "refused-token", "key": "token"}}))
    kept = f"{tenant.prefix}/held"
    put(openbao, kept, {"v": CANARY})
    create(k8s, opaque(ns, "foreign", own="theirs"))
    cases = {
        # the remote key never existed (deletionPolicy Retain): no Secret to keep
        "never": external(ns, "never", "vault", [item("v", f"{tenant.prefix}/nowhere", "v")]),
        # the store's token is refused: nothing was ever read
        "refused": external(ns, "refused", "refused", [item("v", kept, "v")]),
        "refused-none": external(ns, "refused-none", "refused", [item("v", kept, "v")],
                                 creationPolicy="None"),
        # deletionPolicy Delete, nothing remote, and a Secret of that name that is not ours
        "foreign": external(ns, "foreign", "vault", [item("v", f"{tenant.prefix}/no", "v")],
                            deletionPolicy="Delete"),
        # synced, then the remote key is deleted (Retain): this one does keep its Secret
        "kept": external(ns, "kept", "vault", [item("v", kept, "v")]),
    }
    for es in cases.values():
        create(k8s, es)
    wait_for(lambda: has(k8s, ns, "kept", {"v": CANARY.encode()}), what="kept synced")
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(kept, mount_point="secret")

    def final(name: str) -> dict[str, Any]:
        return dict(wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", name)).get(
            "status") == "False" and c, timeout=10, what=f"{name}: not Ready"))

    never = final("never")
    assert never["reason"] == "SecretSyncedError"
    assert f"Secret {ns}/never does not exist and is not written" in never["message"]
    for name in ("refused",):
        cond = final(name)
        assert cond["reason"] == "SecretSyncedError" and "permission denied" in cond["message"]
        assert f"Secret {ns}/{name} does not exist and is not written" in cond["message"]
    assert "no Secret is written (creationPolicy None)" in final("refused-none")["message"]
    foreign = final("foreign")
    assert foreign["reason"] == "SecretDeleted"
    assert f"Secret {ns}/foreign exists but was not written by this ExternalSecret" in foreign[
        "message"]
    assert values(secret(k8s, ns, "foreign")) == {"own": b"theirs"}
    kept_cond = wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", "kept")).get(
        "reason") == "SecretSyncedError" and c, timeout=10, what="kept: remote gone")
    assert f"Secret {ns}/kept keeps the values this ExternalSecret last wrote" in kept_cond[
        "message"]
    assert has(k8s, ns, "kept", {"v": CANARY.encode()})

    for name in ("never", "refused", "refused-none", "foreign"):
        assert secret(k8s, ns, name) is None or name == "foreign"
        cond = ready(k8s, ns, "externalsecrets", name)
        assert "kept" not in cond["message"] and "keeps" not in cond["message"], cond
        # nothing was ever synced: no claim of a synced version or of written data
        status = es_status(k8s, ns, name)
        assert "syncedResourceVersion" not in status and "dataHash" not in status, status
        assert all("kept" not in e["message"] for e in events(k8s, ns, name))


def test_a_malformed_sealed_secret_does_not_claim_keys_were_tried(
        k8s: K8s, ns: str, controller: Controller, cert: Path) -> None:
    good = load(seal(cert, "-n", ns, "--name", "broken", "--from-literal", f"pw={CANARY}"))
    good["spec"]["encryptedData"]["pw"] = "U09TTQ=="  # the magic, cut short
    apply(k8s, dump(good))
    cond = wait_for(lambda: synced(k8s, ns, "broken"), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("False", "Malformed")
    assert "tried" not in cond["message"], cond["message"]
    # a value no key opens still lists the keys that were tried
    made = secretops("keygen", "-o", str(cert.parent / "other.key"))
    assert made.code == 0, made.err
    recipient = next(ln.split(": ", 1)[1] for ln in (cert.parent / "other.key").read_text()
                     .splitlines() if ln.startswith("# public key: "))
    other = cert.parent / "other.txt"
    other.write_text(recipient + "\n")
    apply(k8s, seal(other, "-n", ns, "--name", "foreign-key", "--from-literal", f"pw={CANARY}"))
    cond = wait_for(lambda: synced(k8s, ns, "foreign-key"), what="Synced condition")
    assert cond["reason"] == "NoKeyCouldUnseal" and "key-ring keys tried: sealing-key-" in cond[
        "message"]
