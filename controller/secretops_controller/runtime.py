"""Process-wide runtime state shared by every part of the controller: health and the clock.

* :class:`Health`: what ``/healthz`` reports (see :mod:`secretops_controller.http`).
* :func:`now` and :func:`rfc3339`: the one clock of conditions, Events and the key ring, and
  the timestamp format the API takes (whole seconds, UTC).

Metrics are :mod:`secretops_controller.metrics`; Events :mod:`secretops_controller.events`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
