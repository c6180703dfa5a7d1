"""Templates bound to the sealed values, against the running controller (issue 16 item 1).

A tenant who may edit SealedSecrets (say through GitOps) but holds no key and may not read
Secrets rewrites ``spec.template.data`` into probes that would read a value out through the
Synced condition, an Event or the log, or branch on it. The controller refuses every such
template with one fixed reason before opening or rendering anything, keeps the last Secret,
and nothing computed from the value appears anywhere. Values sealed before templates were
bound keep working without a data template and are refused beside one; ``/v1/rotate``, which
anyone who reaches the controller may call, never binds a template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from secretops.sealing.format import decode
from tests.controller.conftest import SYSTEM_NS, Controller, prepare_cluster
from tests.controller.helpers import (
    CANARY,
    SEALED,
    apply,
    dump,
    events,
    load,
    seal,
    secret,
    synced,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s
from tests.helpers import secretops
from tests.sealing.legacy import leaked, seal_v1

NS = "tenant"
URL = "postgres://{{ .user }}:{{ .password }}@db"
PROBES = [
    "{{ values[password[::-1]] }}",
    "{{ values[password[1:]] }}",
    "{{ values[password | upper] }}",
    '{{ values[password | list | join(" ")] }}',
    '{% if password.startswith("' + CANARY[:3] + '") %}{{ nope }}{% endif %}',
    '{% if password.startswith("#") %}{{ nope }}{% endif %}',
]


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_cluster(k8s_emulator, NS)
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


@pytest.fixture
def cert(controller: Controller, tmp_path: Path) -> Path:
    status, text = controller.get("/v1/cert")
    assert status == 200
    path = tmp_path / "cluster.txt"
    path.write_text(text)
    return path


def _recipient(cert: Path) -> str:
    return next(ln for ln in cert.read_text().splitlines() if ln.startswith("age1"))


def _nothing_leaked(k8s: K8s, controller: Controller) -> None:
    _, sealed, _ = k8s.request("GET", SEALED.format(ns=NS))
    seen = json.dumps([events(k8s, NS), [i.get("status") for i in sealed["items"]]])
    assert not leaked(seen + controller.logs())


def _refused(k8s: K8s, name: str) -> dict[str, Any]:
    cond = wait_for(lambda: synced(k8s, NS, name), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("False", "TemplateNotBound"), cond
    return cond


def test_an_edited_template_is_not_unsealed_nor_rendered(controller: Controller, k8s: K8s,
                                                        cert: Path) -> None:
    manifest = load(seal(cert, "-n", NS, "--name", "db", "--from-literal", f"password={CANARY}",
                         "--from-literal", "user=admin", "--template", f"url={URL}"))
    apply(k8s, dump(manifest))
    good = wait_for(lambda: values(secret(k8s, NS, "db")) or None, what="Secret db")
    assert good["url"] == f"postgres://admin:{CANARY}@db".encode()

    messages = set()
    for probe in PROBES:
        edited = load(dump(manifest))
        edited["spec"]["template"]["data"] = {"url": URL, "x": probe}
        apply(k8s, dump(edited))
        messages.add(_refused(k8s, "db")["message"])
        assert values(secret(k8s, NS, "db")) == good  # the last good Secret stays
    # one message for every probe, whichever way the oracle's guess went: nothing rendered
    [message] = messages
    assert "spec.template is not the template the values were sealed with" in message
    assert wait_for(lambda: events(k8s, NS, "db", "TemplateNotBound"), what="Warning Event")
    _nothing_leaked(k8s, controller)
    # the type is bound too (an API-server validation by type is an oracle as well)
    edited = load(dump(manifest))
    edited["spec"]["template"]["type"] = "kubernetes.io/basic-auth"
    apply(k8s, dump(edited))
    _refused(k8s, "db")
    assert secret(k8s, NS, "db")["type"] == "Opaque"  # type: ignore[index]
    # back to the template the values were sealed with: unsealed again
    apply(k8s, dump(manifest))
    cond = wait_for(lambda: synced(k8s, NS, "db"), what="Synced condition")
    assert (cond["status"], cond["reason"]) == ("True", "Unsealed")


def test_values_sealed_before_binding(controller: Controller, k8s: K8s, cert: Path,
                                      tmp_path: Path) -> None:
    recipient = _recipient(cert)
    vals = {"password": CANARY.encode(), "user": b"admin"}
    apply(k8s, dump(seal_v1(vals, [recipient], NS, "old-plain")))
    wait_for(lambda: values(secret(k8s, NS, "old-plain")) == vals, what="version-1 Secret")

    templated = seal_v1(vals, [recipient], NS, "old-templated",
                        {"type": "Opaque", "data": {"url": URL}})
    apply(k8s, dump(templated))
    cond = _refused(k8s, "old-templated")
    assert "format 1" in cond["message"] and secret(k8s, NS, "old-templated") is None
    # the operator, with the key ring's backup, reviews the template and binds it
    backup = tmp_path / "ring.yaml"
    backup.write_text(k8s.kubectl("get", "secret", "-n", SYSTEM_NS, "-l",
                                  "secretops.dev/sealing-key=true", "-o", "yaml").stdout)
    path = tmp_path / "old.yaml"
    path.write_text(dump(templated))
    r = secretops("reseal", "--identity", str(backup), "--cert", str(cert), "--bind-template",
                  "-i", str(path))
    assert r.code == 0, r.err
    apply(k8s, path.read_text())
    wait_for(lambda: values(secret(k8s, NS, "old-templated")).get("url")
             == f"postgres://admin:{CANARY}@db".encode(), what="bound and rendered")
    _nothing_leaked(k8s, controller)


def test_rotate_never_binds_a_template(controller: Controller, cert: Path) -> None:
    bound = load(seal(cert, "-n", NS, "--name", "r", "--from-literal", f"password={CANARY}"))
    probe = load(dump(bound))
    probe["spec"]["template"]["data"] = {"x": PROBES[0]}
    legacy = seal_v1({"password": CANARY.encode()}, [_recipient(cert)], NS, "r")
    legacy_probe = load(dump(legacy))
    legacy_probe["spec"]["template"]["data"] = {"x": PROBES[0]}
    for refused in (probe, legacy_probe):
        status, body = controller.request("POST", "/v1/rotate", dump(refused).encode())
        assert status == 409 and '"reason": "TemplateNotBound"' in body, body
        assert not leaked(body)
    # a version-1 object rotates, and stays unbound: adding a probe afterwards is refused
    status, body = controller.request("POST", "/v1/rotate", dump(legacy).encode())
    assert status == 200, body
    rotated = load(body)
    assert {decode(v).template for v in rotated["spec"]["encryptedData"].values()} == {None}
    rotated["spec"]["template"]["data"] = {"x": PROBES[0]}
    status, body = controller.request("POST", "/v1/verify", dump(rotated).encode())
    assert status == 409 and '"reason": "TemplateNotBound"' in body
    # a bound object rotates with its binding
    status, body = controller.request("POST", "/v1/rotate", dump(bound).encode())
    assert status == 200 and not leaked(body)
    assert {decode(v).template for v in load(body)["spec"]["encryptedData"].values()} == {
        decode(bound["spec"]["encryptedData"]["password"]).template}
