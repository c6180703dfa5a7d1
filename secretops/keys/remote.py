"""Calls to key services (AWS KMS, Vault transit …): a bounded number at a time, and back-off
when the service says to slow down.

A many-file command (:mod:`secretops.bulk`) unwraps one data key per file, from as many worker
processes as there are CPUs. Two rules keep that from hammering a key service:

* **At most** :data:`MAX_CALLS` **calls at once** across the workers of a run: they share one
  semaphore (:func:`share_gate`), taken around each call by :func:`call`. A single command in
  one process makes one call at a time anyway, and takes no semaphore.
* **Back-off on throttling.** When the service answers "too many requests" (KMS
  ``ThrottlingException``, Vault's HTTP 429 from a rate-limit quota), the call is tried again
  after a random wait whose span doubles each time ("equal jitter": half the span for sure, the
  other half at random — 0.125–0.25 s, 0.25–0.5 s, 0.5–1 s … at most :data:`MAX_WAIT`), at most
  :data:`ATTEMPTS` times in all, holding no slot while it waits. The sure half gives every call
  at least ~7.9 s of waiting to outlast a quota (full jitter could spend all seven tries in a
  second or two: a 1-request-a-second Vault quota shared by two workers then failed a file), and
  the random half still spreads the workers' tries apart.
  Other failures are not retried here: an unreachable service still fails in seconds (the
  client's own timeouts and retries, described in each source's module, apply to each try).

The source modules call :func:`call` around their network request; nothing else is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_CALLS = 8
ATTEMPTS = 7
FIRST_WAIT = 0.25
MAX_WAIT = 8.0

_gate: Any = None


def share_gate(gate: Any) -> None:
    """Use ``gate`` (a multiprocessing semaphore shared by a run's workers) around calls."""
    global _gate
    _gate = gate


def _slot() -> Any:
    return _gate if _gate is not None else contextlib.nullcontext()


def call(request: Callable[[], T], throttled: Callable[[BaseException], bool], *,
         sleep: Callable[[float], None] | None = None,
         random: Callable[[], float] | None = None) -> T:
    """``request()`` within the limit on concurrent calls, tried again with back-off while
    the service throttles (``throttled(exception)`` says so); the last exception propagates."""
    wait = FIRST_WAIT
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with _slot():
                return request()
        except Exception as e:
            if attempt == ATTEMPTS or not throttled(e):
                raise
        if sleep is None or random is None:
            import random as _random
            import time

            sleep, random = sleep or time.sleep, random or _random.random
        sleep(wait / 2 + wait / 2 * random())
        wait = min(wait * 2, MAX_WAIT)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
