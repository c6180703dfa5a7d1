"""The controller's settings: parsed once from flags and the environment, then read-only.

Every period and delay is here, so tests run the same code with short values instead of
sleeping (``--key-renew-period 2s --retry-base-delay 0.1s``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

DEFAULT_NAMESPACE = "secretops-system"
RECIPIENTS_CONFIGMAP = "secretops-sealing-recipients"


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``720h``, ``1h30m``, ``1.5s``, ``250ms`` or a bare number (``0``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 720h, 90s, 500ms)")
    return total


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2026-01-01T00:00:00Z``); a time zone is required."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"not an RFC 3339 time with a zone: {text!r}")
    return value


def backoffs(base: float, ceiling: float, count: int = 8) -> list[float]:
    """``base``, doubling, capped at ``ceiling``: kopf's retry sequences."""
    return [min(base * 2**i, ceiling) for i in range(count)]


@dataclass(frozen=True)
class Config:
    namespace: str = DEFAULT_NAMESPACE
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace
    key_renew_period: float = 30 * 86400.0  # 0 disables renewal
    key_cutoff_time: datetime | None = None
    key_refresh_interval: float = 60.0  # re-read the ring (keys made by another replica)
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    kubeconfig: str | None = None
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    max_retries: int = 20
    watch_timeout: float = 300.0
    log_level: str = "INFO"

    def retry_delay(self, retry: int) -> float:
        """The delay before retry number ``retry`` (0-based) of a failed reconcile."""
        return float(min(self.retry_base_delay * 2.0**retry, self.retry_max_delay))
