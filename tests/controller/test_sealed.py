"""The SealedSecret controller end to end, as in a cluster (issue 7, "Must show").

One controller process (``python -m secretops_controller``) runs against this module's emulator.
Values are sealed offline with ``secretops seal --cert`` and the recipients file fetched from
the controller's ``GET /v1/cert``, applied with kubectl, and every expectation is polled with a
deadline. The canary plaintext must never reach the controller's log, an Event or a status.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import SYSTEM_NS, Controller, prepare_cluster
from tests.controller.helpers import (
    CANARY,
    MERGE,
    apply,
    dump,
    events,
    load,
    no_canary_in_cluster,
    seal,
    sealed,
    secret,
    synced,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s
from tests.helpers import secretops

APP, OTHER = "app", "other"


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_cluster(k8s_emulator, APP, OTHER)
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


@pytest.fixture
def cert(controller: Controller, tmp_path: Path) -> Path:
    status, text = controller.get("/v1/cert")
    assert status == 200
    path = tmp_path / "cluster.txt"
    path.write_text(text)
    return path


def test_cert_is_the_newest_key_and_published(controller: Controller, k8s: K8s,
                                              cert: Path) -> None:
    lines = [ln for ln in cert.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("age1")
    keys = k8s.request("GET", f"/api/v1/namespaces/{SYSTEM_NS}/secrets"
                              "?labelSelector=secretops.dev%2Fsealing-key%3Dtrue")[1]["items"]
    assert [k["metadata"]["annotations"]["secretops.dev/recipient"] for k in keys] == lines
    cm = k8s.request("GET", f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/"
                            "secretops-sealing-recipients")[1]
    assert cm["data"]["recipients.txt"] == cert.read_text()


def test_sealed_offline_then_applied_becomes_the_secret(controller: Controller, k8s: K8s,
                                                       cert: Path, tmp_path: Path) -> None:
    source = {"apiVersion": "v1", "kind": "Secret", "type": "example.com/db",
              "metadata": {"name": "db", "namespace": APP,
                           "labels": {"team": "payments"}, "annotations": {"note": "x"}},
              "stringData": {"password": CANARY, "user": "admin"}}
    (tmp_path / "secret.yaml").write_text(dump(source))
    manifest = seal(cert, str(tmp_path / "secret.yaml"))
    assert CANARY not in manifest
    apply(k8s, manifest)

    got = wait_for(lambda: secret(k8s, APP, "db"), what="Secret db created")
    assert values(got) == {"password": CANARY.encode(), "user": b"admin"}
    assert got["type"] == "example.com/db"
    assert got["metadata"]["labels"]["team"] == "payments"
    assert got["metadata"]["annotations"]["note"] == "x"
    owner = sealed(k8s, APP, "db")
    assert owner is not None
    [ref] = got["metadata"]["ownerReferences"]
    assert ref["uid"] == owner["metadata"]["uid"] and ref["kind"] == "SealedSecret"
    assert ref["controller"] is True
    cond = wait_for(lambda: synced(k8s, APP, "db"), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("True", "Unsealed")
    assert wait_for(lambda: events(k8s, APP, "db", "Unsealed"), what="Unsealed Event")

    # --merge-into: one value replaced offline, the other's text untouched -> Secret updated
    path = tmp_path / "sealed.yaml"
    path.write_text(manifest)
    seal(cert, "--merge-into", str(path), "--from-literal", "user=root")
    merged = load(path.read_text())
    assert merged["spec"]["encryptedData"]["password"] == \
        load(manifest)["spec"]["encryptedData"]["password"]
    apply(k8s, path.read_text())
    wait_for(lambda: values(secret(k8s, APP, "db")).get("user") == b"root",
             what="Secret updated by --merge-into")
    assert values(secret(k8s, APP, "db"))["password"] == CANARY.encode()
    no_canary_in_cluster(k8s, APP)


def test_a_changed_type_replaces_the_secret_and_skip_owner_works_on_the_sealedsecret(
        controller: Controller, k8s: K8s, cert: Path) -> None:
    manifest = load(seal(cert, "-n", APP, "--name", "typed", "--from-literal", f"pw={CANARY}"))
    manifest["metadata"]["annotations"] = {"secretops.dev/skip-set-owner-references": "true"}
    apply(k8s, dump(manifest))
    got = wait_for(lambda: secret(k8s, APP, "typed"), what="Secret typed created")
    assert "ownerReferences" not in got["metadata"]  # the annotation is on the SealedSecret
    # the type is bound to the values: edited alone it is refused, and the Secret stays
    edited = load(dump(manifest))
    edited["spec"]["template"]["type"] = "example.com/custom"
    apply(k8s, dump(edited))
    cond = wait_for(lambda: synced(k8s, APP, "typed"), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("False", "TemplateNotBound")
    assert (secret(k8s, APP, "typed") or {}).get("type") == "Opaque"
    # sealed again with the new type, a Secret's type, which cannot be updated in place (422),
    # is replaced
    resealed = load(seal(cert, "-n", APP, "--name", "typed", "--type", "example.com/custom",
                         "--from-literal", f"pw={CANARY}"))
    resealed["metadata"]["annotations"] = manifest["metadata"]["annotations"]
    apply(k8s, dump(resealed))
    wait_for(lambda: (secret(k8s, APP, "typed") or {}).get("type") == "example.com/custom",
             what="Secret re-created with the new type")
    assert values(secret(k8s, APP, "typed")) == {"pw": CANARY.encode()}
    cond = wait_for(lambda: synced(k8s, APP, "typed"), what="Synced condition")
    assert cond["status"] == "True"


@pytest.mark.parametrize("where", ["namespace", "name"])
def test_a_copy_to_another_place_is_refused(controller: Controller, k8s: K8s, cert: Path,
                                            where: str) -> None:
    original = load(seal(cert, "-n", APP, "--name", f"moved-{where}",
                         "--from-literal", f"token={CANARY}"))
    copy = dict(original, metadata=dict(original["metadata"]))
    ns, name = APP, f"moved-{where}"
    if where == "namespace":
        ns = copy["metadata"]["namespace"] = OTHER
    else:
        name = copy["metadata"]["name"] = f"renamed-{where}"
    apply(k8s, dump(copy))

    cond = wait_for(lambda: synced(k8s, ns, name), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("False", "ScopeMismatch")
    assert f'namespace "{APP}", name "moved-{where}"' in cond["message"]  # where it belongs
    assert f'namespace "{ns}", name "{name}"' in cond["message"]  # where it was found
    assert "sealing-key-" in cond["message"]  # which keys were tried
    [ev] = wait_for(lambda: events(k8s, ns, name, "ScopeMismatch"), what="Warning Event")
    assert ev["type"] == "Warning" and f'namespace "{APP}"' in ev["message"]
    assert secret(k8s, ns, name) is None
    no_canary_in_cluster(k8s, ns)


def test_an_edited_or_deleted_secret_is_restored(controller: Controller, k8s: K8s,
                                                 cert: Path) -> None:
    apply(k8s, seal(cert, "-n", APP, "--name", "drift", "--from-literal", f"key={CANARY}"))
    wait_for(lambda: secret(k8s, APP, "drift"), what="Secret created")
    path = f"/api/v1/namespaces/{APP}/secrets/drift"
    hand = base64.b64encode(b"hand-edited").decode()
    assert k8s.request("PATCH", path, {"data": {"key": hand, "extra": hand}}, MERGE)[0] == 200
    wait_for(lambda: values(secret(k8s, APP, "drift")) == {"key": CANARY.encode()},
             what="hand edit reverted")

    assert k8s.request("DELETE", path)[0] == 200
    wait_for(lambda: values(secret(k8s, APP, "drift")) == {"key": CANARY.encode()},
             what="deleted Secret re-created")
    assert (wait_for(lambda: synced(k8s, APP, "drift")) or {})["status"] == "True"

    # our label removed and a value changed: the watch (selected by the label) sees it leave
    # as DELETED; it is repaired at once, not at the next resync
    unlabel = {"metadata": {"labels": {"secretops.dev/sealed-by": None}},
               "data": {"key": hand}}
    assert k8s.request("PATCH", path, unlabel, MERGE)[0] == 200
    wait_for(lambda: values(secret(k8s, APP, "drift")) == {"key": CANARY.encode()}
             and "secretops.dev/sealed-by" in (secret(k8s, APP, "drift") or {})["metadata"].get(
                 "labels", {}), what="unlabelled Secret repaired")


def test_an_unmanaged_secret_is_left_alone_until_it_opts_in(controller: Controller, k8s: K8s,
                                                           cert: Path) -> None:
    theirs = {"metadata": {"name": "theirs"}, "stringData": {"own": "keep-me"}}
    assert k8s.request("POST", f"/api/v1/namespaces/{APP}/secrets", theirs)[0] == 201
    apply(k8s, seal(cert, "-n", APP, "--name", "theirs", "--from-literal", f"pw={CANARY}"))

    cond = wait_for(lambda: synced(k8s, APP, "theirs"), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("False", "SecretNotOwned")
    assert f"Secret {APP}/theirs exists" in cond["message"]
    assert "secretops.dev/managed=true" in cond["message"]
    assert wait_for(lambda: events(k8s, APP, "theirs", "SecretNotOwned"), what="Event")
    assert values(secret(k8s, APP, "theirs")) == {"own": b"keep-me"}

    # the Secret opts in to a merge; touching the SealedSecret reconciles it again
    path = f"/api/v1/namespaces/{APP}/secrets/theirs"
    k8s.request("PATCH", path, {"metadata": {"annotations": {"secretops.dev/patch": "true"}}},
                MERGE)
    k8s.request("PATCH", f"/apis/secretops.dev/v1alpha1/namespaces/{APP}/sealedsecrets/theirs",
                {"metadata": {"annotations": {"touched": "1"}}}, MERGE)
    wait_for(lambda: values(secret(k8s, APP, "theirs")) == {"own": b"keep-me",
                                                            "pw": CANARY.encode()},
             what="values merged into the opted-in Secret")
    assert "ownerReferences" not in (secret(k8s, APP, "theirs") or {})["metadata"]


def test_a_managed_secret_is_taken_over(controller: Controller, k8s: K8s, cert: Path) -> None:
    old = {"metadata": {"name": "adopt", "annotations": {"secretops.dev/managed": "true"}},
           "stringData": {"old": "gone-soon"}}
    assert k8s.request("POST", f"/api/v1/namespaces/{APP}/secrets", old)[0] == 201
    apply(k8s, seal(cert, "-n", APP, "--name", "adopt", "--from-literal", f"pw={CANARY}"))
    wait_for(lambda: values(secret(k8s, APP, "adopt")) == {"pw": CANARY.encode()},
             what="Secret taken over")
    refs = (secret(k8s, APP, "adopt") or {})["metadata"]["ownerReferences"]
    assert refs[0]["kind"] == "SealedSecret" and refs[0]["controller"] is True


def test_verify_and_rotate_endpoints(controller: Controller, cert: Path, tmp_path: Path
                                     ) -> None:
    manifest = seal(cert, "-n", APP, "--name", "v", "--from-literal", f"a={CANARY}")
    status, body = controller.request("POST", "/v1/verify", manifest.encode())
    assert (status, '"values": 1' in body) == (200, True)

    moved = load(manifest)
    moved["metadata"]["name"] = "elsewhere"
    status, body = controller.request("POST", "/v1/verify", dump(moved).encode())
    assert status == 409 and '"reason": "ScopeMismatch"' in body and CANARY not in body

    # a template of the asker's choosing is not rendered: its failing or not would depend on
    # the value, an oracle for anyone who can reach the endpoint; and it is not the template
    # the value is bound to, which is said the same way whatever the value
    probes = []
    for guess in (CANARY[0], "#"):
        probe = load(manifest)
        probe["spec"].setdefault("template", {})["data"] = {
            "x": f'{{{{ 1 if values["a"][0] == "{guess}" else values["__no__"] }}}}'}
        probes.append(controller.request("POST", "/v1/verify", dump(probe).encode())[:2])
    assert probes[0] == probes[1] and probes[0][0] == 409
    assert '"reason": "TemplateNotBound"' in probes[0][1]
    broken = load(manifest)
    broken["spec"].setdefault("template", {})["data"] = {"x": "{{ unclosed"}
    status, body = controller.request("POST", "/v1/verify", dump(broken).encode())
    assert status == 409 and '"reason": "TemplateNotBound"' in body

    status, body = controller.request("POST", "/v1/rotate", manifest.encode())
    assert status == 200 and CANARY not in body
    rotated = load(body)
    assert rotated["metadata"]["name"] == "v"
    assert rotated["spec"]["encryptedData"]["a"] != load(manifest)["spec"]["encryptedData"]["a"]
    assert controller.request("POST", "/v1/verify", body.encode())[0] == 200


def test_fetch_cert_through_the_api_server_service_proxy(controller: Controller, k8s: K8s,
                                                        cert: Path) -> None:
    # Where the Service's port goes is emulator-only configuration (no Pods here).
    service = {"metadata": {"name": "secretops-controller", "annotations": {
        "emulator.secretops.dev/forward-to": f"127.0.0.1:{controller.port}"}},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}
    status, body, _ = k8s.request("POST", f"/api/v1/namespaces/{SYSTEM_NS}/services", service)
    assert status in (201, 409), body
    r = secretops("seal", "--fetch-cert", "--controller-namespace", SYSTEM_NS,
                  "-n", APP, "--name", "fetched", "--from-literal", f"k={CANARY}")
    assert r.code == 0, r.err
    assert load(r.text)["spec"]["recipients"] == [
        ln for ln in cert.read_text().splitlines() if not ln.startswith("#")]
    apply(k8s, r.text)
    wait_for(lambda: values(secret(k8s, APP, "fetched")) == {"k": CANARY.encode()},
             what="Secret from a SealedSecret sealed with --fetch-cert")

    r = secretops("seal", "--fetch-cert", "--controller-name", "nope", "-n", APP,
                  "--name", "x", "--from-literal", "k=v")
    assert r.code == 162 and "Service secretops-system/nope" in r.err


def test_metrics_and_health(controller: Controller, k8s: K8s, cert: Path) -> None:
    assert controller.get("/healthz") == (200, "ok\n")
    good = load(seal(cert, "-n", APP, "--name", "counted", "--from-literal", f"a={CANARY}"))
    apply(k8s, dump(good))
    good["metadata"]["name"] = "counted-moved"
    apply(k8s, dump(good))

    def metrics() -> dict[str, float]:
        status, text = controller.get("/metrics")
        assert status == 200
        return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
                if ln and not ln.startswith("#")}

    def counted() -> dict[str, float] | None:
        m = metrics()
        errors = m.get('secretops_unseal_errors_total{reason="ScopeMismatch"}', 0)
        return m if errors >= 1 and m.get("secretops_unseals_total", 0) >= 1 else None

    metric = wait_for(counted, what="the unseal and the error counted")
    assert metric["secretops_sealing_keys"] == 1.0
    assert 0 <= metric["secretops_newest_sealing_key_age_seconds"] < 3600
    assert metric['secretops_reconcile_duration_seconds_count{kind="SealedSecret"}'] >= 2


def test_verify_and_reseal_through_the_controller(controller: Controller, k8s: K8s,
                                                  cert: Path, tmp_path: Path) -> None:
    service = {"metadata": {"name": "secretops-controller", "annotations": {
        "emulator.secretops.dev/forward-to": f"127.0.0.1:{controller.port}"}},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}
    status, body, _ = k8s.request("POST", f"/api/v1/namespaces/{SYSTEM_NS}/services", service)
    assert status in (201, 409), body
    sealed = tmp_path / "sealed.yaml"
    sealed.write_text(seal(cert, "-n", APP, "--name", "checked", "--from-literal",
                           f"a={CANARY}"))
    r = secretops("verify", "--controller", "--controller-namespace", SYSTEM_NS, str(sealed))
    assert r.code == 0 and "ok: 1 values open" in r.text, r.err
    moved = load(sealed.read_text())
    moved["metadata"]["name"] = "elsewhere"
    other = tmp_path / "moved.yaml"
    other.write_text(dump(moved))
    r = secretops("verify", "--controller", "--controller-namespace", SYSTEM_NS, str(other))
    assert r.code == 160 and "ScopeMismatch" in r.err and CANARY not in r.err
    before = load(sealed.read_text())["spec"]["encryptedData"]["a"]
    r = secretops("reseal", "--controller", "--controller-namespace", SYSTEM_NS, "-i",
                  str(sealed))
    assert r.code == 0, r.err
    assert load(sealed.read_text())["spec"]["encryptedData"]["a"] != before
    r = secretops("verify", "--controller", "--controller-namespace", SYSTEM_NS, str(sealed))
    assert r.code == 0, r.err
    r = secretops("verify", str(sealed))
    assert r.code == 8 and "--identity" in r.err


def test_verify_refuses_a_stanza_bomb_before_unwrapping(controller: Controller) -> None:
    # 2,000 stanzas kept the controller's event loop, /healthz included, busy for 38 s
    import pyrage
    from pyrage import x25519

    from secretops.sealing import Scope, seal_value
    from secretops.sealing.format import SealedValue, decode

    me = x25519.Identity.generate()
    value = decode(seal_value(b"v", [str(me.to_public())], Scope.STRICT, APP, "bomb", "k"))
    strangers = [x25519.Identity.generate().to_public() for _ in range(2000)]
    bomb = SealedValue(value.binding, pyrage.encrypt(b"\0" * 32, strangers), value.nonce,
                       value.ciphertext).encode()
    manifest = {"apiVersion": "secretops.dev/v1alpha1", "kind": "SealedSecret",
                "metadata": {"name": "bomb", "namespace": APP},
                "spec": {"scope": "strict", "encryptedData": {"k": bomb}}}
    for endpoint in ("/v1/verify", "/v1/rotate"):
        status, body = controller.request("POST", endpoint, dump(manifest).encode())
        assert status == 409 and "the age message is 196" in body, body  # its size alone
    assert controller.get("/healthz")[0] == 200
