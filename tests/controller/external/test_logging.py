"""What the controller logs at INFO: one line per object handled (issue 20).

At a cold start with 10,000 objects of each kind every log line is formatted and written once
per object, so the count matters; users of kubeseal and ESO read one line per object handled
(what was written, or why not). The controller runs as a child process against the emulator
and the real OpenBao with SealedSecrets, ExternalSecrets and their SecretStore, and its log is
counted: at INFO no more lines than objects handled, each named by at most one; kopf's own
per-object lines ("Handler ... succeeded", "Creation is processed ...") only at DEBUG; and a
warning about an object that cannot sync is still there.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from secretops.sealing import seal_secret
from tests.controller.conftest import SYSTEM_NS, Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.test_reconcile import (
    API,
    create,
    external,
    item,
    ready,
    token_store,
)
from tests.controller.helpers import wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

COUNT = 6
LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$")


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_external(k8s_emulator)
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


def lines(log: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in map(LINE.match, log.splitlines()) if m]


def naming(records: list[dict[str, str]], ns: str, name: str) -> list[dict[str, str]]:
    """The records about one object: ours say ``ns/name``, kopf's ``[ns/name]``."""
    pattern = re.compile(rf"(^|[\s\[]){re.escape(ns)}/{re.escape(name)}([\s\]:]|$)")
    return [r for r in records if pattern.search(r["message"])]


def test_one_info_line_per_object_handled_and_warnings_kept(
        controller: Controller, k8s: K8s, openbao: OpenBao, tenant: Tenant) -> None:
    ns = f"log-{uuid.uuid4().hex[:8]}"
    before = len(lines(controller.logs()))  # the start-up lines
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    status, cert = controller.get("/v1/cert")
    assert status == 200
    recipients = [ln for ln in cert.splitlines() if ln and not ln.startswith("#")]
    key = f"{tenant.prefix}/app"
    put(openbao, key, {"value": "not-a-secret-of-this-test"})
    token_store(k8s, openbao, tenant, ns)
    for i in range(COUNT):
        sealed = seal_secret({"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": f"sealed-{i}", "namespace": ns},
                              "stringData": {"value": f"v{i}"}}, recipients)
        status, body, _ = k8s.request("POST", f"{API}/namespaces/{ns}/sealedsecrets", sealed)
        assert status == 201, body
        create(k8s, external(ns, f"ext-{i}", "vault", [item("value", key, "value")],
                             interval="1h"))
    # one that cannot sync: its warning must stay at INFO
    create(k8s, external(ns, "broken", "vault", [item("value", f"{tenant.prefix}/absent")],
                         interval="1h"))
    for i in range(COUNT):
        wait_for(lambda i=i: ready(k8s, ns, "externalsecrets", f"ext-{i}").get("status")
                 == "True", what=f"ExternalSecret ext-{i} Ready")
        wait_for(lambda i=i: _synced(k8s, ns, f"sealed-{i}"),
                 what=f"SealedSecret sealed-{i} Synced")
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "broken").get("status") == "False",
             what="the broken ExternalSecret not Ready")
    records = lines(controller.logs())[before:]
    # (a first sync makes the controller's own fingerprint key, once: not an object's line;
    # an ExternalSecret whose creation raced a second event may be synced twice, the second
    # saying "up to date": the external half's queue, not the logging, and left to it)
    info = [r for r in records if r["level"] == "INFO" and SYSTEM_NS not in r["message"]
            and not r["message"].endswith(" up to date (keys: value)")]
    handled = 2 * COUNT + 1  # the SealedSecrets, the ExternalSecrets and their store
    assert len(info) <= handled, "\n".join(r["message"] for r in info)
    for name in [*(f"sealed-{i}" for i in range(COUNT)), *(f"ext-{i}" for i in range(COUNT)),
                 "vault"]:
        about = naming(info, ns, name)
        assert len(about) <= 1, (name, [r["message"] for r in about])
    assert not [r for r in info if r["logger"].startswith("kopf.objects")], \
        "kopf's per-object INFO lines are DEBUG's"
    assert [r for r in naming(records, ns, "broken") if r["level"] == "WARNING"], \
        "the warning about an ExternalSecret that cannot sync is kept"


def _synced(k8s: K8s, ns: str, name: str) -> bool:
    _, body, _ = k8s.request("GET", f"{API}/namespaces/{ns}/sealedsecrets/{name}")
    return any(c.get("type") == "Synced" and c.get("status") == "True"
               for c in (body.get("status") or {}).get("conditions") or [])
