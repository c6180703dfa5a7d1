"""Leader election on a ``coordination.k8s.io/v1`` Lease, shared by every half of the controller.

The protocol is client-go's ``leaderelection`` with a ``LeaseLock``, so a secretops replica and
``kubectl get lease`` agree on who leads:

* The Lease ``<namespace>/<name>`` holds ``spec.holderIdentity`` (the Pod name from ``POD_NAME``,
  else ``hostname_pid``), ``leaseDurationSeconds``, ``acquireTime``, ``renewTime`` (MicroTime)
  and ``leaseTransitions`` (+1 whenever the holder changes).
* Every write is a PUT carrying the ``resourceVersion`` that was read (a POST when the Lease does
  not exist), so two candidates can never both win: the loser gets 409 Conflict, re-reads, and
  finds the Lease held.
* A candidate takes the Lease when it has no holder (released), when the holder is itself, or
  when the record has not changed for ``lease_duration`` seconds **as observed on the
  candidate's own monotonic clock** (like client-go: no trust in other clocks; the record's
  ``renewTime`` is informational). ``leaseDurationSeconds`` is written rounded up to whole
  seconds (the API's type is an integer); fractions of a second in tests stay local.
* The leader renews every ``retry_period``; when no renewal has succeeded for
  ``renew_deadline`` (< ``lease_duration``), or a read shows another holder, it stops leading at
  once. Because ``renew_deadline < lease_duration``, a deposed leader has stopped before anyone
  else may take over.
* :meth:`LeaderElector.release` (on SIGTERM) empties ``holderIdentity`` so the next candidate
  takes over within one ``retry_period`` instead of a whole lease duration.

:class:`Lease` is one Lease and one tick of the loop that holds it (:meth:`Lease.step`);
:class:`LeaderElector` runs it for the one leader Lease, and
:class:`~secretops_controller.shardelect.ShardElector` for each shard's Lease (``--shards``).

The elector only says who leads (:attr:`LeaderElector.elected`, :attr:`LeaderElector.deposed`,
``on_change``); what leading means — which handlers run — is the caller's business
(:mod:`secretops_controller.operator` starts and stops the kopf operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from secretops_controller.config import default_identity
from secretops_controller.kube import ApiError, Kube

log = logging.getLogger(__name__)
T = TypeVar("T")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


def micro_time(t: datetime) -> str:
    """A Kubernetes MicroTime: ``2026-01-02T03:04:05.123456Z``."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's ``spec`` as the election sees it."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: Mapping[str, Any] | None) -> LeaseRecord | None:
        if lease is None:
            return None
        spec = lease.get("spec") or {}
        return cls(holder=str(spec.get("holderIdentity") or ""),
                   duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   transitions=int(spec.get("leaseTransitions") or 0))

    def spec(self) -> dict[str, Any]:
        return {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": self.acquire_time, "renewTime": self.renew_time,
                "leaseTransitions": self.transitions}


def claim(current: LeaseRecord | None, identity: str, expired: bool, at: datetime,
          lease_duration: float) -> LeaseRecord | None:
    """The record to write to take or keep the Lease, or None while another holds it (pure).

    ``expired``: the current record has not changed for a lease duration on our clock.
    """
    stamp = micro_time(at)
    seconds = max(1, math.ceil(lease_duration))
    if current is None:
        return LeaseRecord(identity, seconds, stamp, stamp, 0)
    if current.holder == identity:  # renewal: acquireTime and transitions stay
        return replace(current, duration_seconds=seconds, renew_time=stamp,
                       acquire_time=current.acquire_time or stamp)
    if current.holder and not expired:
        return None
    return LeaseRecord(identity, seconds, stamp, stamp, current.transitions + 1)


def released(current: LeaseRecord, at: datetime) -> LeaseRecord:
    """What a leader writes when it steps down: no holder (client-go's ReleaseOnCancel)."""
    stamp = micro_time(at)
    return LeaseRecord("", 1, stamp, stamp, current.transitions)


class Lease:
    """One Lease as one candidate sees it (client-go's ``LeaseLock``): :meth:`step` is one tick
    of the Lease-holding loop — renew while holding, else try to take it — shared by
    :class:`LeaderElector` (one Lease) and :class:`~secretops_controller.shardelect.ShardElector`
    (one per shard)."""

    def __init__(self, api: Kube, namespace: str, name: str, identity: str, *,
                 lease_duration: float, renew_deadline: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.clock = clock
        self.holding = False
        self._observed: tuple[LeaseRecord | None, str] | None = None  # (record, resourceVersion)
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None  # the Lease as last read or written
        self._last_renew = 0.0

    @property
    def path(self) -> str:
        return f"{LEASES.format(ns=quote(self.namespace, safe=''))}/{quote(self.name, safe='')}"

    @property
    def record(self) -> LeaseRecord | None:
        """The record as last read or written (None: never read, or no such Lease)."""
        return LeaseRecord.of(self._lease)

    @property
    def exists(self) -> bool:
        return self._lease is not None

    @property
    def annotations(self) -> dict[str, str]:
        return dict(((self._lease or {}).get("metadata") or {}).get("annotations") or {})

    # ---- one attempt ---------------------------------------------------------------------------
    def _observe(self, lease: dict[str, Any] | None) -> LeaseRecord | None:
        record = LeaseRecord.of(lease)
        meta = (lease or {}).get("metadata") or {}
        seen = (record, str(meta.get("resourceVersion", "")))
        if seen != self._observed:
            self._observed, self._observed_at = seen, self.clock()
        self._lease = lease
        return record

    def expired(self) -> bool:
        """The record has not changed for a lease duration on our own clock."""
        return self.clock() - self._observed_at >= self.lease_duration

    async def read(self) -> LeaseRecord | None:
        return self._observe(await self.api.get(self.path))

    async def try_acquire_or_renew(self, annotations: Mapping[str, str | None] | None = None
                                   ) -> bool:
        """One round: read (unless we hold a fresh copy), decide, write. True: we hold it.
        ``annotations``: set (None: remove) on the Lease with the write."""
        for attempt in range(2):
            if self._lease is None or not self.holding or attempt:
                current = await self.read()
            else:
                current = LeaseRecord.of(self._lease)
            want = claim(current, self.identity, self.expired(), datetime.now(UTC),
                         self.lease_duration)
            if want is None:
                return False
            try:
                written = await self._write(want, annotations)
            except ApiError as e:
                if e.status in (409, 404) and attempt == 0:
                    continue  # someone else wrote it (or deleted it): re-read and decide again
                if e.status == 409:
                    return False
                raise
            self._observe(written)
            return True
        return False

    async def _write(self, record: LeaseRecord,
                     annotations: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        if self._lease is None:
            meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
            spec: dict[str, Any] = {}
        else:
            meta = {k: v for k, v in (self._lease.get("metadata") or {}).items()
                    if k != "managedFields"}
            spec = dict(self._lease.get("spec") or {})
        if annotations:
            notes = {**(meta.get("annotations") or {}), **annotations}
            meta["annotations"] = {k: v for k, v in notes.items() if v is not None}
            if not meta["annotations"]:
                del meta["annotations"]
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {**spec, **record.spec()}}
        if self._lease is None:
            return await self.api.create(LEASES.format(ns=quote(self.namespace, safe="")), body)
        return await self.api.replace(self.path, body)

    async def annotate(self, annotations: Mapping[str, str | None]) -> bool:
        """Write ``annotations`` on the Lease as last read, whoever holds it (409: False)."""
        current = LeaseRecord.of(self._lease)
        if current is None:
            return False
        try:
            self._observe(await self._write(current, annotations))
        except ApiError as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    # ---- one tick of the loop ------------------------------------------------------------------
    async def step(self, *, may_take: bool = True,
                   annotations: Mapping[str, str | None] | None = None) -> bool:
        """Renew while holding: lost when another holder shows, or when no renewal succeeded
        for ``renew_deadline``. Else take it if ``may_take`` and it is free or expired (else
        only read it, to see it expire). True: we hold it now."""
        if self.holding:
            left = self.renew_deadline - (self.clock() - self._last_renew)
            try:
                if left > 0 and await within(left, self.try_acquire_or_renew(annotations)):
                    self._last_renew = self.clock()
                    return True
                if left > 0:  # another holder: stop at once
                    self.holding = False
                    return False
            except (ApiError, TimeoutError) as e:
                log.warning("Lease %s/%s: renewal failed: %s", self.namespace, self.name,
                            e or "timed out")
            except Exception:  # a bug, a malformed answer: still no renewal past the deadline
                log.exception("Lease %s/%s: renewal failed", self.namespace, self.name)
            if self.clock() - self._last_renew >= self.renew_deadline:
                log.warning("Lease %s/%s: not renewed for %.1f s (renew deadline)",
                            self.namespace, self.name, self.renew_deadline)
                self.holding = False
            return self.holding
        try:
            if not may_take:
                await within(self.renew_deadline, self.read())
            elif await within(self.renew_deadline, self.try_acquire_or_renew(annotations)):
                self._last_renew = self.clock()
                self.holding = True
        except (ApiError, TimeoutError) as e:
            log.warning("Lease %s/%s: %s (retrying)", self.namespace, self.name,
                        e or "timed out")
        except Exception:  # one Lease's failure is not the shard round's (shardelect)
            log.exception("Lease %s/%s: failed (retrying)", self.namespace, self.name)
        return self.holding

    async def release(self, timeout: float | None = None) -> bool:
        """Give the Lease up if we hold it (handlers already stopped). True: released, so the
        next candidate need not wait it out. Annotations stay (an ask is kept)."""
        self.holding = False
        current = LeaseRecord.of(self._lease)
        try:
            async with asyncio.timeout(timeout or self.renew_deadline):
                for attempt in range(2):
                    if current is None or current.holder != self.identity:
                        return False
                    try:
                        self._observe(await self._write(released(current, datetime.now(UTC))))
                        log.info("released Lease %s/%s", self.namespace, self.name)
                        return True
                    except ApiError as e:
                        if e.status != 409 or attempt:
                            raise
                        current = await self.read()  # renewed meanwhile, or taken over
        except (ApiError, TimeoutError) as e:
            log.warning("Lease %s/%s: could not release: %s", self.namespace, self.name,
                        e or "timed out")
        return False


class LeaderElector:
    """Campaign for one Lease forever (:meth:`run`); :meth:`release` when shutting down."""

    def __init__(self, api: Kube, namespace: str, name: str, identity: str, *,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_timings(lease_duration, renew_deadline, retry_period)
        self.lease = Lease(api, namespace, name, identity, lease_duration=lease_duration,
                           renew_deadline=renew_deadline, clock=clock)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.retry_period = retry_period
        self.on_change = on_change
        self.elected = asyncio.Event()  # set while leading
        self.deposed = asyncio.Event()  # set while not leading
        self.deposed.set()
        self.campaigned = asyncio.Event()  # set once the first attempt ended (won or not)

    @property
    def path(self) -> str:
        return self.lease.path

    @property
    def is_leader(self) -> bool:
        return self.elected.is_set()

    def _set(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        (self.elected.set if leading else self.elected.clear)()
        (self.deposed.clear if leading else self.deposed.set)()
        log.info("%s leadership of Lease %s/%s as %s", "acquired" if leading else "lost",
                 self.namespace, self.name, self.identity)
        if self.on_change is not None:
            self.on_change(leading)

    async def run(self) -> None:
        """Acquire, renew, and on loss go back to acquiring; until cancelled."""
        try:
            while True:
                try:
                    leading = await self.lease.step()
                except asyncio.CancelledError:
                    if not stray():
                        raise
                    log.warning("Lease %s/%s: a request was cancelled by someone else "
                                "(retrying)", self.namespace, self.name)
                    leading = self.lease.holding
                self._set(leading)
                self.campaigned.set()
                await asyncio.sleep(self.retry_period if leading
                                    else jittered(self.retry_period))
        finally:
            self._set(False)

    async def release(self, timeout: float | None = None) -> bool:
        """Give the Lease up if we hold it, after :meth:`run` was cancelled and the handlers
        stopped (SIGTERM). True: released, so the next candidate need not wait it out."""
        self._set(False)
        return await self.lease.release(timeout)


async def within(seconds: float, work: Coroutine[Any, Any, T]) -> T:
    """``work`` with a time limit, in the calling task (TimeoutError when it runs out).

    Not ``asyncio.wait_for``: before Python 3.12 it runs ``work`` in a task of its own, and
    kopf, when it stops, cancels every task created since it started — a Lease request's
    task among them; ``wait_for`` then raised that CancelledError in the election, which took
    it for its own cancellation and ended (and the whole controller with it). The election's
    task itself predates kopf's, so kopf leaves it alone; ``asyncio.timeout`` also tells its
    own expiry (TimeoutError) from anyone else's cancellation (CancelledError)."""
    async with asyncio.timeout(seconds):
        return await work


def stray() -> bool:
    """In an ``except CancelledError``: True when no one cancelled this task (the
    cancellation came from a task of ours that someone else cancelled — kopf's stop): not a
    reason to end."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


def check_timings(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    if not lease_duration > renew_deadline > retry_period > 0:
        raise ValueError("need lease duration > renew deadline > retry period > 0 "
                         f"(got {lease_duration}, {renew_deadline}, {retry_period})")


def jittered(period: float) -> float:
    """``period`` plus up to 20 %: candidates that started together drift apart."""
    return period * (1.0 + 0.2 * random.random())


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it (its errors are logged, not raised)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception:  # a stopped task's failure must not stop the caller
            log.exception("task %s failed", task.get_name())


__all__ = [
    "LeaderElector",
    "Lease",
    "LeaseRecord",
    "cancel",
    "check_timings",
    "claim",
    "default_identity",
    "jittered",
    "micro_time",
    "released",
    "stray",
    "within",
]
