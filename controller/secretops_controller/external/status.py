"""What the external-secrets half reports: the ``Ready`` condition and the status fields of
ExternalSecrets and stores, the Events that go with them, and the per-object condition gauge.

An ExternalSecret's status (:func:`report`) is patched only when something in it changed (a
success that wrote nothing keeps the last success's message: a restart writes no status):
``Ready`` with ESO's reasons, ``observedGeneration``, ``refreshTime`` (a success or a write),
``syncedResourceVersion`` (as ESO: generation and a hash of labels and annotations),
``remoteVersions`` and ``dataHash``. An Event goes with every write and every new condition. A
store's status (:func:`store_status`) carries ``Ready`` and ``observedGeneration``. Messages
name fields, keys and stores: never a value.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from secretops_controller import conditions
from secretops_controller.conditions import Outcome
from secretops_controller.context import Context
from secretops_controller.events import event
from secretops_controller.external.marks import without_leftovers
from secretops_controller.external.names import READY, EsReason, name_of, owner_of, path
from secretops_controller.external.provider import ProviderError
from secretops_controller.runtime import now, rfc3339

log = logging.getLogger(__name__)


def condition(old_status: Mapping[str, Any], ok: bool | None, reason: EsReason,
              message: str) -> dict[str, Any]:
    """The Ready condition (lastTransitionTime kept when the status does not change)."""
    return conditions.condition(old_status, READY, ok, reason.value, message)


def synced_version(es: Mapping[str, Any]) -> str:
    """As ESO: the generation and a hash of the labels and annotations (kopf's excluded, our
    earlier versions' kopf annotations too: their removal at an upgrade changes nothing)."""
    meta = es.get("metadata") or {}
    annotations = {k: v for k, v in without_leftovers(meta.get("annotations") or {}).items()
                   if not k.startswith("kopf.")}
    digest = hashlib.sha256(json.dumps([meta.get("labels") or {}, annotations],
                                       sort_keys=True).encode()).hexdigest()[:16]
    return f"{meta.get('generation')}-{digest}"


def provider_outcome(errors: Mapping[str, ProviderError], state: str,
                     extra: dict[str, Any] | None = None) -> Outcome:
    """A read failed: the provider's message, then what is true of the Secret (``state``)."""
    first = sorted(errors.items())[0][1]
    reason = (EsReason.PROVIDER_UNAVAILABLE if first.transient else EsReason.SYNC_ERROR)
    return Outcome(False, reason, f"{first.message}; {state}; retrying with backoff",
                   extra=extra or {})


def store_status(body: Mapping[str, Any], ok: bool | None, reason: EsReason,
                 message: str) -> dict[str, Any] | None:
    """The store's new status, or None when its Ready condition says the same already; a
    changed condition is logged and posted as an Event."""
    status = body.get("status") or {}
    cond = condition(status, ok, reason, message)
    gen = (body.get("metadata") or {}).get("generation")
    same = conditions.same(cond, status)
    if same and status.get("observedGeneration") == gen:
        return None
    if not same:
        log.info("%s %s: %s: %s", body.get("kind"), name_of(body), reason.value, message)
        event(body, reason, message)
    new: dict[str, Any] = {"conditions": conditions.replace(status, cond)}
    if gen is not None:
        new["observedGeneration"] = gen
    return new


async def report(ctx: Context, es: Mapping[str, Any], outcome: Outcome,
                 guard: str | None = None) -> None:
    """Status (only when something changed) and an Event (writes and new conditions).
    ``guard``: the resourceVersion ``es`` was watched at, a precondition of the status write
    (a 409 :class:`kube.ApiError` if the ExternalSecret changed since: nothing written, no
    Event)."""
    meta = es.get("metadata") or {}
    old = es.get("status") or {}
    cond = condition(old, outcome.ok, EsReason(outcome.reason.value), outcome.message)
    same = conditions.same(cond, old)
    if outcome.ok and not outcome.wrote and not same:
        # a success that wrote nothing where the last one said the same with another verb
        # ("created" and now "up to date", after a restart): no news, no write, no Event
        prev = conditions.find(old, READY) or {}
        same = all(prev.get(k) == cond.get(k) for k in ("status", "reason"))
    ctx.metrics.external_condition.set(*owner_of(es), READY, str(cond["status"]))
    status: dict[str, Any] = {
        "conditions": conditions.replace(old, cond),
        "observedGeneration": meta.get("generation"),
        **outcome.extra,
    }
    if outcome.ok:  # as ESO: the version of the ExternalSecret that was synced
        status["syncedResourceVersion"] = synced_version(es)
    if outcome.ok or outcome.wrote:
        status["refreshTime"] = rfc3339(now())
    unchanged = same and not outcome.wrote and all(
        old.get(k) == v for k, v in status.items() if k not in ("conditions", "refreshTime"))
    if not unchanged:
        if "remoteVersions" in status and old.get("remoteVersions"):
            # a merge patch merges maps: refs no longer used are removed explicitly
            gone = set(old["remoteVersions"]) - set(status["remoteVersions"])
            status["remoteVersions"] = {**status["remoteVersions"], **dict.fromkeys(gone)}
        patch: dict[str, Any] = {"status": status}
        if guard is not None:
            patch["metadata"] = {"resourceVersion": guard}
        await ctx.api.merge_patch(path(*owner_of(es)) + "/status", patch)
    if outcome.wrote or not same:
        ok_ish = outcome.ok or outcome.reason is EsReason.DELETED
        (log.info if ok_ish else log.warning)("ExternalSecret %s: %s: %s", name_of(es),
                                              outcome.reason.value, outcome.message)
        event(es, outcome.reason, outcome.message)
