"""What every half of the controller shares: metrics, Events with fixed reasons, health.

The SealedSecret reconciler uses it today; the external-secrets half will reuse it.

* :class:`Metrics`: one ``prometheus_client`` registry, served on ``/metrics``
  (``secretops_unseals_total``, ``secretops_unseal_errors_total{reason}``,
  ``secretops_sealing_keys``, ``secretops_newest_sealing_key_age_seconds``,
  ``secretops_reconcile_duration_seconds{kind}``, ``secretops_leader``).
* :class:`Reason`: the fixed Event and condition reasons; :func:`event` posts an Event through
  kopf's poster (retried with the operator's posting backoffs).
* :class:`Health`: what ``/healthz`` reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

import kopf
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from secretops_controller.context import Context


class Reason(StrEnum):
    """Event reasons, also the ``reason`` of the ``Synced`` condition. Never renamed."""

    UNSEALED = "Unsealed"  # the Secret matches the SealedSecret (Normal)
    SCOPE_MISMATCH = "ScopeMismatch"  # a value was sealed for another namespace/name/key
    NO_KEY = "NoKeyCouldUnseal"  # no key of the ring opens a value
    ALTERED = "ValueAltered"  # a value fails authentication
    MALFORMED = "Malformed"  # not a well-formed SealedSecret or sealed value
    TEMPLATE_ERROR = "TemplateError"  # spec.template.data does not render
    TEMPLATE_NOT_BOUND = "TemplateNotBound"  # spec.template is not what the values are bound to
    SECRET_NOT_OWNED = "SecretNotOwned"  # an existing Secret is not ours and does not opt in
    UPDATE_FAILED = "UpdateFailed"  # the API refused or failed the write
    KEY_CREATED = "SealingKeyCreated"  # the key ring got a new key (on the ConfigMap)


WARNING_REASONS = frozenset(set(Reason) - {Reason.UNSEALED, Reason.KEY_CREATED})


# Outside kopf's handlers (e.g. the leader's resync task) kopf has no Event queue: such a task
# sets a poster of its own here (a ContextVar: it applies to that task only).
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]
event_poster: ContextVar[EventPoster | None] = ContextVar("secretops_event_poster", default=None)


def event(obj: Mapping[str, Any], reason: Reason, message: str) -> None:
    """Post an Event about ``obj`` (a full object body) with a fixed reason."""
    kind = "Warning" if reason in WARNING_REASONS else "Normal"
    poster = event_poster.get()
    if poster is not None:
        poster(obj, kind, reason.value, message[:1000])
        return
    body = kopf.Body(cast(kopf.RawBody, dict(obj)))
    kopf.event(body, type=kind, reason=reason.value, message=message[:1000])


def event_body(obj: Mapping[str, Any], kind: str, reason: str, message: str,
               component: str, instance: str, home: str) -> dict[str, Any]:
    """A core/v1 Event about ``obj`` (what kopf's poster sends).

    An Event about a cluster-scoped object (a ClusterSecretStore) goes to ``home``, the
    controller's namespace, and names that namespace in its ``involvedObject`` too, as kopf's
    own Events do: the apiserver refuses an Event whose object has no namespace anywhere but in
    "default", which a namespaced install may not write to. ``kubectl get events -n <home>``
    shows them (``kubectl describe clustersecretstore`` does not)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or home
    stamp = rfc3339(now())
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": "secretops-event-", "namespace": namespace},
        "involvedObject": {k: v for k, v in {
            "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "name": meta.get("name"), "namespace": namespace,
            "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}.items()
            if v},
        "type": kind, "reason": reason, "message": message,
        "source": {"component": component}, "reportingComponent": component,
        "reportingInstance": instance, "firstTimestamp": stamp, "lastTimestamp": stamp,
        "count": 1,
    }


def post_events_from_this_task(ctx: Context) -> None:
    """Let the current task post Events itself through ``ctx.api`` (kopf's poster exists only
    inside its handlers): sets :data:`event_poster` for this task."""
    import asyncio
    import logging
    import socket

    from secretops_controller import kube

    log = logging.getLogger("secretops_controller.events")
    pending: set[asyncio.Task[None]] = set()

    async def post(body: dict[str, Any]) -> None:
        try:
            await ctx.api.create(f"/api/v1/namespaces/{body['metadata']['namespace']}/events",
                                 body)
        except kube.ApiError as e:
            log.warning("could not post an Event: %s", e)

    def poster(obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        body = event_body(obj, kind, reason, message, "secretops-controller",
                          ctx.config.identity or socket.gethostname(), ctx.config.namespace)
        task = asyncio.create_task(post(body))
        pending.add(task)
        task.add_done_callback(pending.discard)

    event_poster.set(poster)


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Metrics:
    """The controller's metrics, in their own registry (no process-global state in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.unseals = Counter("secretops_unseals", "SealedSecrets unsealed into a Secret",
                               registry=r)
        self.unseal_errors = Counter("secretops_unseal_errors",
                                     "SealedSecrets that could not be unsealed or written",
                                     ["reason"], registry=r)
        self.sealing_keys = Gauge("secretops_sealing_keys", "Keys in the sealing key ring",
                                  registry=r)
        self.newest_key_created = 0.0
        self.newest_key_age = Gauge("secretops_newest_sealing_key_age_seconds",
                                    "Age of the newest sealing key", registry=r)
        self.newest_key_age.set_function(
            lambda: time.time() - self.newest_key_created if self.newest_key_created else 0.0)
        self.reconcile_duration = Histogram(
            "secretops_reconcile_duration_seconds", "Time to reconcile one object", ["kind"],
            registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.leader = Gauge("secretops_leader",
                            "1 while this replica holds the leader Lease (its handlers run)",
                            registry=r)


@dataclass
class Health:
    """``/healthz``: healthy once started, while every named check is true.

    ``leader``: whether this replica leads (None: leader election is off). A replica that does
    not lead is healthy: it serves the HTTP endpoints from the key ring it reads.
    """

    checks: dict[str, bool] = field(default_factory=dict)
    leader: bool | None = None

    def set(self, name: str, ok: bool) -> None:
        self.checks[name] = ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())
