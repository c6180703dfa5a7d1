"""Kubernetes Events with fixed reasons, posted the same way by both halves of the controller.

A reason is a member of a half's reason enum (:class:`secretops_controller.sealed.Reason`,
:class:`secretops_controller.external.names.EsReason`) and says itself whether its Event is
``Normal`` or ``Warning`` (:class:`EventReason`); the same reason goes to the status condition.

Inside a kopf handler, :func:`event` posts through kopf's poster (queued, retried with the
operator's posting backoffs). A task of our own (the leader's resync, the external half's
sync loops) has no kopf Event queue: it calls :func:`post_events_from_this_task` once, which
sets a poster for that task only (a ContextVar) that creates the Event through
:class:`~secretops_controller.kube.Kube`. Messages are cut at 1,000 characters; they name
objects, fields and keys, never a value.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol, cast

import kopf

from secretops_controller import kube
from secretops_controller.config import Config
from secretops_controller.runtime import now, rfc3339

log = logging.getLogger(__name__)
COMPONENT = "secretops-controller"
MAX_MESSAGE = 1000


class EventReason(Protocol):
    """A fixed Event and condition reason: an enum member whose value is the reason."""

    @property
    def value(self) -> str: ...

    @property
    def normal(self) -> bool:
        """``Normal`` (True) or ``Warning`` (False)."""
        ...


# obj, type (Normal/Warning), reason, message
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]
event_poster: ContextVar[EventPoster | None] = ContextVar("secretops_event_poster", default=None)


def event(obj: Mapping[str, Any], reason: EventReason, message: str) -> None:
    """Post an Event about ``obj`` (a full object body) with a fixed reason."""
    kind = "Normal" if reason.normal else "Warning"
    text = message[:MAX_MESSAGE]
    poster = event_poster.get()
    if poster is not None:
        poster(obj, kind, reason.value, text)
        return
    kopf.event(kopf.Body(cast(kopf.RawBody, dict(obj))), type=kind, reason=reason.value,
               message=text)


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


def post_events_from_this_task(api: kube.Kube, config: Config) -> None:
    """Let the current task post Events itself through ``api`` (kopf's poster exists only
    inside its handlers): sets :data:`event_poster` for this task."""
    pending: set[asyncio.Task[None]] = set()

    async def post(body: dict[str, Any]) -> None:
        try:
            await api.create(f"/api/v1/namespaces/{body['metadata']['namespace']}/events", body)
        except kube.ApiError as e:
            log.warning("could not post an Event: %s", e)

    def poster(obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        body = event_body(obj, kind, reason, message, COMPONENT,
                          config.identity or socket.gethostname(), config.namespace)
        task = asyncio.create_task(post(body))
        pending.add(task)
        task.add_done_callback(pending.discard)

    event_poster.set(poster)


__all__ = ["EventReason", "event", "event_body", "event_poster", "post_events_from_this_task"]
