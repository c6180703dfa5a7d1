"""Status conditions and the outcome of one reconcile, written once for both halves.

A reconcile of a SealedSecret or an ExternalSecret ends in an :class:`Outcome`: success or not,
a fixed reason (:class:`~secretops_controller.events.EventReason`), a message that names objects
and keys but never a value, whether the Secret was written. That outcome becomes one condition
(``Synced`` for SealedSecrets, ``Ready`` for ExternalSecrets and stores) built by
:func:`condition` — ``lastTransitionTime`` moves only when the condition's status changes, as
Kubernetes' API conventions ask — and an Event with the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secretops_controller.events import EventReason
from secretops_controller.runtime import now, rfc3339

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
STATUSES = (TRUE, FALSE, UNKNOWN)


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: ``ok``, its fixed ``reason`` and ``message``; ``wrote``: the
    Secret was written; ``extra``: status fields besides the conditions (the external half's
    ``remoteVersions``, ``dataHash``); ``changed``: the fingerprint workloads roll for (an
    existing Secret's data changed, or its rollout is still pending)."""

    ok: bool
    reason: EventReason
    message: str
    wrote: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    changed: str | None = None


def status_text(ok: bool | None) -> str:
    """A condition's ``status``: ``True``, ``False`` or ``Unknown`` (None)."""
    return UNKNOWN if ok is None else (TRUE if ok else FALSE)


def find(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in ``status.conditions``, if any."""
    return next((c for c in status.get("conditions") or []
                 if isinstance(c, dict) and c.get("type") == type_), None)


def condition(status: Mapping[str, Any], type_: str, ok: bool | None, reason: str,
              message: str, **extra: Any) -> dict[str, Any]:
    """The condition ``type_`` for this outcome, over the one in ``status`` (its
    ``lastTransitionTime`` kept while the status stays the same); ``extra`` fields are added
    (the SealedSecret's ``lastUpdateTime`` and ``observedGeneration``)."""
    value = status_text(ok)
    prev = find(status, type_)
    stamp = rfc3339(now())
    kept = prev.get("lastTransitionTime") if prev is not None and prev.get(
        "status") == value else None
    return {"type": type_, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": kept or stamp, **extra}


def same(cond: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """``status`` already has ``cond``'s status, reason and message."""
    prev = find(status, str(cond.get("type")))
    return prev is not None and all(prev.get(k) == cond.get(k)
                                    for k in ("status", "reason", "message"))


def replace(status: Mapping[str, Any], cond: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``status.conditions`` with ``cond`` in place of the condition of its type (last)."""
    return [*(c for c in status.get("conditions") or []
              if isinstance(c, dict) and c.get("type") != cond.get("type")), dict(cond)]


__all__ = ["Outcome", "condition", "find", "replace", "same", "status_text"]
