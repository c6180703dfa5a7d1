"""A tiny kopf operator for the emulator's tests: each SecretRequest owns a Secret.

* create → a Secret named ``spec.secretName`` with ``spec.data`` (adopted: it carries an
  ownerReference to the SecretRequest), then ``status.phase: Ready`` and a ``SecretCreated`` Event;
* update of ``spec.data`` → the Secret's data is replaced;
* delete → the Secret is deleted (the ownerReference would also let the garbage collector do it).

Run it with ``kopf run --standalone -A tests/k8s/example_operator.py`` (or ``KopfRunner``) with
``KUBECONFIG`` pointing at the emulator. Every delay is short so tests stay fast.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "example.secretops.dev", "v1", "secretrequests"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.queueing.error_delays = [0.1, 0.2, 0.5]
    settings.posting.default_backoffs = [0.1, 0.2]
    settings.execution.default_backoff = 0.2  # kopf's default retry delay is 60 s
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 40


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_kubeconfig(**kwargs)


def _core() -> client.CoreV1Api:
    # The path is read at call time: the kubernetes package reads KUBECONFIG only when imported.
    return client.CoreV1Api(config.new_client_from_config(config_file=os.environ["KUBECONFIG"]))


def _encode(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec: Any, namespace: str, body: Any, patch: Any, **_: Any) -> None:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec["secretName"]},
        "data": _encode(dict(spec.get("data") or {})),
    }
    kopf.adopt(secret, owner=body)
    try:
        _core().create_namespaced_secret(namespace, secret)
    except ApiException as e:
        if e.status != 409:  # already made by an earlier attempt: nothing to do
            raise kopf.TemporaryError(f"creating the Secret failed: {e.status}", delay=0.2) from e
    patch.status["phase"] = "Ready"
    kopf.info(body, reason="SecretCreated", message=f"Secret {spec['secretName']} created")


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.data")
def updated(spec: Any, namespace: str, **_: Any) -> None:
    core = _core()
    current = core.read_namespaced_secret(spec["secretName"], namespace)
    current.data = _encode(dict(spec.get("data") or {}))
    core.replace_namespaced_secret(spec["secretName"], namespace, current)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(spec: Any, namespace: str, **_: Any) -> None:
    try:
        _core().delete_namespaced_secret(spec["secretName"], namespace)
    except ApiException as e:
        if e.status != 404:
            raise
