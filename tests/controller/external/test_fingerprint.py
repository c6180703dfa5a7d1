"""What a reader with the built-in ``view`` role learns of a synced Secret (issue 16, item 4).

``view`` cannot read Secrets, but it reads pod templates and Events. The fingerprint of a
Secret's data that the controller publishes — ``status.dataHash``, the Secret's
``secretops.dev/data-hash`` and the pod-template annotation ``secretops.dev/secret-hash-*`` of
rolled workloads — is keyed (HMAC-SHA-256 with a key the controller keeps in its namespace), so
a brute force over all 4-digit PINs, with plain SHA-256 and with the unkeyed scheme of earlier
versions, finds nothing; it still changes with the data, stays put across a restart (no
spurious rollout), and a lost key changes it once without rolling anything.

The controller runs as a child process against the emulator and the real OpenBao; every wait
polls with a deadline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from secretops_controller.external import fingerprint

from tests.controller.conftest import SYSTEM_NS, Controller
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.test_reconcile import (
    API,
    MERGE,
    PLURALS,
    create,
    create_workload,
    es_status,
    external,
    get,
    has,
    item,
    ready,
    template_annotations,
    token_store,
    workload,
)
from tests.controller.helpers import CANARY, events, metrics, secret, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

KEY_PATH = f"/api/v1/namespaces/{SYSTEM_NS}/secrets/{fingerprint.KEY_SECRET}"
HASH = "secretops.dev/data-hash"
ROLL_HASH = "secretops.dev/secret-hash-pin"


# ---- what a guesser can compute without the key ---------------------------------------------
def unkeyed_before(data: dict[str, bytes]) -> str:
    """The digest earlier versions published: SHA-256 of the length-prefixed data."""
    h = hashlib.sha256()
    for k in sorted(data):
        h.update(len(k).to_bytes(4, "big") + k.encode() + len(data[k]).to_bytes(8, "big"))
        h.update(data[k])
    return h.hexdigest()


@pytest.fixture(scope="module")
def guesses() -> dict[str, bytes]:
    """Every 4-digit PIN as a viewer would try it: digest → PIN (plain SHA-256 of the value,
    and the earlier scheme over the Secret's one key ``pin``)."""
    out: dict[str, bytes] = {}
    for n in range(10_000):
        pin = f"{n:04d}".encode()
        out[hashlib.sha256(pin).hexdigest()] = pin
        out[unkeyed_before({"pin": pin})] = pin
    return out


def brute_force(shown: str, table: dict[str, bytes]) -> bytes | None:
    return table.get(shown.rsplit(":", 1)[-1])


# ---- the pure part ---------------------------------------------------------------------------
def test_the_fingerprint_is_keyed_and_bound_to_the_secret() -> None:
    key, other = b"k" * 32, b"o" * 32
    data = {"pin": b"4821"}
    fp = fingerprint.fingerprint(key, "ns", "pin", data)
    assert fp.startswith(fingerprint.PREFIX) and len(fp) == len(fingerprint.PREFIX) + 64
    assert fp == fingerprint.fingerprint(key, "ns", "pin", dict(data))  # deterministic
    assert fp != fingerprint.fingerprint(other, "ns", "pin", data)  # keyed
    # equal data in another Secret: unrelated fingerprints (a viewer cannot tell they match)
    assert fp != fingerprint.fingerprint(key, "ns", "pin2", data)
    assert fp != fingerprint.fingerprint(key, "ns2", "pin", data)
    assert fp != fingerprint.fingerprint(key, "ns", "pin", {"pin": b"4822"})
    # no ambiguity between keys and values
    assert (fingerprint.fingerprint(key, "ns", "s", {"ab": b"c"})
            != fingerprint.fingerprint(key, "ns", "s", {"a": b"bc"}))
    assert fp.split(":")[1] not in (hashlib.sha256(b"4821").hexdigest(),
                                    unkeyed_before(data))


def test_an_unusable_key_secret_is_refused_without_showing_it() -> None:
    good = fingerprint.key_secret("sys", b"\x01" * 32)
    assert fingerprint.key_of(good) == b"\x01" * 32
    short = fingerprint.key_secret("sys", b"\x02" * 16)
    with pytest.raises(fingerprint.FingerprintKeyError) as info:
        fingerprint.key_of(short)
    assert "at least 32 bytes" in str(info.value) and "sys/secretops-fingerprint-key" in str(
        info.value)
    assert short["data"]["key"] not in str(info.value)
    with pytest.raises(fingerprint.FingerprintKeyError, match="not base64"):
        fingerprint.key_of({**good, "data": {"key": "%%%"}})


# ---- against the running controller ----------------------------------------------------------
@pytest.fixture
def ns(cluster: K8s) -> Iterator[str]:
    name = f"fp-{uuid.uuid4().hex[:8]}"
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    assert CANARY not in json.dumps(events(cluster, name))
    _, body, _ = cluster.request("GET", f"{API}/namespaces/{name}/externalsecrets")
    assert CANARY not in json.dumps([i.get("status") for i in body.get("items") or []])


def start(start_controller: Any) -> Controller:
    ctl: Controller = start_controller("--key-renew-period", "0", "--rollout-window", "0.2s",
                                       "--rollout-timeout", "1s")
    return ctl


def synced_in(ctl: Controller) -> float:
    """ExternalSecret syncs this controller process has finished (any outcome)."""
    return sum(v for k, v in metrics(ctl).items()
               if k.startswith("secretops_externalsecret_syncs_total{"))


def viewable(k8s: K8s, ns: str) -> str:
    """What the built-in ``view`` role may read in ``ns`` and the emulator serves: workloads
    (pod templates) and Events — not Secrets, not our custom resources (no aggregation)."""
    out = [get(k8s, f"/apis/apps/v1/namespaces/{ns}/{plural}") for plural in PLURALS.values()]
    out.append({"items": events(k8s, ns)})
    return json.dumps(out)


def generation(k8s: K8s, ns: str) -> int:
    return int(get(k8s, f"/apis/apps/v1/namespaces/{ns}/deployments/app")["metadata"][
        "generation"])


def test_a_viewer_cannot_guess_the_pin_and_nothing_rolls_without_a_change(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, start_controller: Any,
        guesses: dict[str, bytes]) -> None:
    ctl = start(start_controller)
    key = f"{tenant.prefix}/pin"
    put(openbao, key, {"pin": "4821", "other": CANARY})
    token_store(k8s, openbao, tenant, ns)
    create_workload(k8s, workload(ns, "Deployment", "app", {
        "secretops.dev/reload-on-change": "true"}, env_secret="pin"))
    create(k8s, external(ns, "pin", "vault", [item("pin", key, "pin")]))
    wait_for(lambda: has(k8s, ns, "pin", {"pin": b"4821"}), what="Secret created")
    first = str(wait_for(lambda: es_status(k8s, ns, "pin").get("dataHash"), what="dataHash"))
    assert brute_force(first, guesses) is None
    assert unkeyed_before({"pin": b"4821"}) in guesses  # the table does find an unkeyed PIN

    put(openbao, key, {"pin": "7315", "other": CANARY})  # rotated upstream: rolls the app
    wait_for(lambda: ROLL_HASH in template_annotations(k8s, ns, "Deployment", "app"),
             timeout=10, what="rolled")
    shown = template_annotations(k8s, ns, "Deployment", "app")[ROLL_HASH]
    wait_for(lambda: es_status(k8s, ns, "pin").get("dataHash") == shown, what="status")
    assert (secret(k8s, ns, "pin") or {})["metadata"]["annotations"][HASH] == shown
    assert shown != first  # it changes with the data
    assert brute_force(shown, guesses) is None
    # ... because it is keyed: with the key (which only the controller reads) it is reproduced
    status, key_secret, _ = k8s.request("GET", KEY_PATH)
    assert status == 200
    fp_key = fingerprint.key_of(key_secret)
    assert fingerprint.fingerprint(fp_key, ns, "pin", {"pin": b"7315"}) == shown
    # nothing a viewer reads holds an unkeyed digest of the PIN, nor the PIN's own Secret data
    seen = viewable(k8s, ns)
    for digest in re.findall(r"[0-9a-f]{64}", seen):
        assert brute_force(digest, guesses) is None, digest
    assert CANARY not in seen
    for text in (ctl.logs(), seen):  # the key itself goes nowhere
        assert key_secret["data"]["key"] not in text and fp_key.hex() not in text

    # a restart changes nothing: same key, no Secret write, no status write, no rollout
    rv = (secret(k8s, ns, "pin") or {})["metadata"]["resourceVersion"]
    gen = generation(k8s, ns)
    ctl.stop()
    ctl = start(start_controller)
    wait_for(lambda: synced_in(ctl) >= 1, what="the new controller synced")
    assert (secret(k8s, ns, "pin") or {})["metadata"]["resourceVersion"] == rv
    assert es_status(k8s, ns, "pin")["dataHash"] == shown
    assert "made the fingerprint key" not in ctl.logs()

    # the key Secret lost: the next leader makes a new key; every fingerprint changes once,
    # quietly (the Secret's annotation and the status), and no workload rolls for it
    assert k8s.request("DELETE", KEY_PATH)[0] == 200
    ctl.stop()
    ctl = start(start_controller)
    rekeyed = str(wait_for(lambda: (h := es_status(k8s, ns, "pin").get("dataHash")) != shown
                           and h, timeout=10, what="status fingerprint under the new key"))
    wait_for(lambda: (secret(k8s, ns, "pin") or {})["metadata"]["annotations"][HASH] == rekeyed,
             what="Secret annotation under the new key")
    assert "made the fingerprint key" in ctl.logs()
    assert has(k8s, ns, "pin", {"pin": b"7315"})
    assert brute_force(rekeyed, guesses) is None
    # the next real change rolls once: the fingerprint's own change rolled nothing
    put(openbao, key, {"pin": "0042", "other": CANARY})
    wait_for(lambda: template_annotations(k8s, ns, "Deployment", "app")[ROLL_HASH] not in (
        shown,), timeout=10, what="rolled after the data changed")
    assert generation(k8s, ns) == gen + 1
    assert template_annotations(k8s, ns, "Deployment", "app")[ROLL_HASH] == es_status(
        k8s, ns, "pin").get("dataHash") != rekeyed
    assert ready(k8s, ns, "externalsecrets", "pin")["status"] == "True"
    ctl.stop()
    for text in (ctl.logs(), json.dumps(events(k8s, ns))):
        assert CANARY not in text


def test_the_key_secret_is_made_once_and_read_by_the_next_leader(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, start_controller: Any) -> None:
    """Two controllers in turn: the second reads the key the first made (one create)."""
    k8s.request("DELETE", KEY_PATH)
    first = start(start_controller)
    key = f"{tenant.prefix}/once"
    put(openbao, key, {"v": CANARY})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, external(ns, "once", "vault", [item("v", key, "v")]))
    wait_for(lambda: es_status(k8s, ns, "once").get("dataHash"), what="synced")
    made = k8s.request("GET", KEY_PATH)[1]
    assert made["metadata"]["labels"]["app.kubernetes.io/component"] == "fingerprint-key"
    assert len(base64.b64decode(made["data"]["key"])) == 32
    first.stop()
    second = start(start_controller)
    k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/once",
                {"metadata": {"annotations": {"secretops.dev/force-sync": "1"}}}, MERGE)
    wait_for(lambda: synced_in(second) >= 1, what="the second controller synced")
    again = k8s.request("GET", KEY_PATH)[1]
    assert again["metadata"]["uid"] == made["metadata"]["uid"]  # read, not made again
    assert "made the fingerprint key" not in second.logs()
    second.stop()
