"""Calm rollouts: a window per namespace, a cluster-wide budget with a queue, completion.

Reloader rolls a workload at once for each changed Secret: twice when two of its Secrets change
together (its #508), thousands of workloads at once when one Secret copied everywhere changes
(#220), everything again when a new leader starts (#810). Here, on the leader:

* **Window.** A Secret whose data changed asks for a rollout (:meth:`Rollouts.request`). The
  first request of a namespace opens a window of ``--rollout-window``; when it closes, the
  namespace's workloads are listed once (one LIST per kind), every change of the window is
  matched against them (:func:`.rollout.targets`), and each workload gets **one** job for all
  its changed Secrets (one patch, :func:`.rollout.patch_for`). A job still waiting in the
  queue takes later changes in too; a Secret changed twice in a window rolls for its last data.
* **Budget.** At most ``--rollout-concurrency`` workloads roll at once in the cluster; the
  others wait in the queue, first come first served. A workload holds its place from its patch
  until its controller reports the roll done (:func:`.rollout.progress`, checked every
  :data:`CHECK_INTERVAL` by a LIST narrowed to its name, as ``kubectl rollout status`` reads
  it), fails (a Deployment past its progress deadline) or ``--rollout-timeout`` passes (a
  Warning Event); then the next one starts.
* **Durable.** The write that changes a Secret's data also sets :data:`.rollout.PENDING` on it
  to the new fingerprint (:mod:`.sync`); :meth:`request`'s ``settle`` callback removes it once
  every workload of the change was patched or skipped. A leader that stops first leaves it: the
  next leader (or this one after a restart) finds it at its first sync of the ExternalSecret
  and rolls what is left; a workload whose template already carries the fingerprint was patched
  before the stop and is not rolled again. Nothing else rolls on a restart or a leader change:
  a rollout is only ever asked for by a change of data or by that annotation.
* **One Event and one metric per roll**: ``RolloutStarted`` on the workload (``RolloutFailed``,
  ``RolloutSkipped`` for a paused Deployment), ``WorkloadsRolled`` on the ExternalSecret, and
  ``secretops_rollouts_total{kind,result}``, ``secretops_rollouts_queued``,
  ``secretops_rollouts_in_progress``, ``secretops_rollout_changes_total`` (docs/metrics.md).

The rollouts in progress are this leader's own: a new leader starts with the whole budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from secretops_controller import kube
from secretops_controller.context import Context
from secretops_controller.events import event
from secretops_controller.external import rollout
from secretops_controller.external.names import EsReason, name_of

log = logging.getLogger(__name__)
CHECK_INTERVAL = 2.0  # s between two looks at a rolling workload (one narrowed LIST each)
WorkloadId = tuple[str, str, str]  # namespace, kind, name
ChangeId = tuple[str, str, str]  # namespace, Secret, fingerprint
Settle = Callable[[str, str, str], Awaitable[None]]  # the change's rollout is sent


@dataclass
class _Change:
    secret: str
    digest: str
    listed: list[tuple[str, str]]
    es: Mapping[str, Any]  # the ExternalSecret, for its Events


@dataclass
class _Job:
    """One roll of one workload, for every Secret change it absorbed."""

    workload: WorkloadId
    hashes: dict[str, str] = field(default_factory=dict)  # Secret -> new fingerprint
    why: dict[str, str] = field(default_factory=dict)  # Secret -> why the workload rolls
    changes: set[ChangeId] = field(default_factory=set)


@dataclass
class _Rolling:
    job: _Job
    generation: int  # the workload's generation our patch made
    deadline: float
    next_check: float


class Rollouts:
    """The window, the queue and the budget of one leadership term (:meth:`run` as a task)."""

    def __init__(self, ctx: Context, settle: Settle,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.settle = settle
        self.clock = clock
        self._changes: dict[str, dict[str, _Change]] = {}  # namespace -> Secret -> change
        self._closes: dict[str, float] = {}  # namespace -> when its window closes
        self._queue: dict[WorkloadId, _Job] = {}  # insertion order: first come, first served
        self._rolling: dict[WorkloadId, _Rolling] = {}
        self._open: dict[ChangeId, int] = {}  # change -> its jobs not yet started
        self._wake = asyncio.Event()
        ctx.metrics.rollouts_queued.set_function(lambda: len(self._queue))
        ctx.metrics.rollouts_in_progress.set_function(lambda: len(self._rolling))

    def reset(self) -> None:
        """Forget everything (a new leadership term: what is pending is on the Secrets)."""
        self._changes.clear()
        self._closes.clear()
        self._queue.clear()
        self._rolling.clear()
        self._open.clear()
        self._wake = asyncio.Event()

    def request(self, es: Mapping[str, Any], ns: str, secret: str, digest: str,
                listed: list[tuple[str, str]]) -> None:
        """Secret ``ns/secret`` now holds data of fingerprint ``digest`` whose rollout is not
        done: roll the workloads that use it when the namespace's window closes."""
        cid = (ns, secret, digest)
        if cid in self._open:
            return  # known already (the ExternalSecret synced again)
        window = self._changes.setdefault(ns, {})
        before = window.get(secret)
        if before is not None:  # changed again within the window: only the last data rolls
            self._open.pop((ns, secret, before.digest), None)
        window[secret] = _Change(secret, digest, listed, es)
        self._open[cid] = 0
        self.ctx.metrics.rollout_changes.inc()
        self._closes.setdefault(ns, self.clock() + self.ctx.config.rollout_window)
        self._wake.set()

    # ---- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Close windows, start queued rolls within the budget, follow the rolling ones."""
        while True:
            self._wake.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad workload must not stop every rollout
                log.exception("rollouts: unexpected error")
            times = [*self._closes.values(), *(r.next_check for r in self._rolling.values())]
            timeout = max(0.0, min(times) - self.clock()) if times else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _step(self) -> None:
        now = self.clock()
        for ns in [n for n, at in self._closes.items() if at <= now]:
            del self._closes[ns]
            await self._close(ns, list(self._changes.pop(ns, {}).values()))
        await self._check(now)
        while len(self._rolling) < self.ctx.config.rollout_concurrency:
            job = next((j for w, j in self._queue.items() if w not in self._rolling), None)
            if job is None:
                break
            del self._queue[job.workload]
            await self._start(job)

    async def _close(self, ns: str, changes: list[_Change]) -> None:
        """The window of ``ns`` closed: one job per workload for all of ``changes``."""
        api = self.ctx.api
        try:
            listings = {k: await api.list(rollout.path(ns, k)) for k in rollout.KINDS}
        except kube.ApiError as e:
            if e.transient:  # again after the retry delay, with whatever arrives meanwhile
                window = self._changes.setdefault(ns, {})
                for c in changes:
                    window.setdefault(c.secret, c)
                self._closes[ns] = self.clock() + self.ctx.config.retry_delay(0, e)
                return
            for c in changes:
                self._open.pop((ns, c.secret, c.digest), None)
                _warn(c.es, EsReason.ROLLOUT_FAILED, f"listing the workloads that use Secret "
                                                     f"{ns}/{c.secret} failed: {e}")
            return
        for c in changes:
            await self._plan(ns, c, listings)

    async def _plan(self, ns: str, c: _Change,
                    listings: Mapping[str, list[dict[str, Any]]]) -> None:
        cid = (ns, c.secret, c.digest)
        chosen = rollout.targets(listings, c.secret, c.listed)
        found = {(t.kind, t.name) for t in chosen}
        missing = [f"{k}/{n}" for k, n in c.listed if (k, n) not in found]
        if missing:
            _warn(c.es, EsReason.ROLLOUT_FAILED, f"listed in spec.rollout but not found: "
                                                 f"{', '.join(missing)} (namespace {ns})")
        planned = []
        for t in chosen:
            wid = (ns, t.kind, t.name)
            if t.paused:
                msg = (f"{t.kind} {ns}/{t.name} is paused: not rolled after Secret {c.secret} "
                       "changed")
                _warn({"apiVersion": "apps/v1", "kind": t.kind, **t.obj},
                      EsReason.ROLLOUT_SKIPPED, msg)
                _warn(c.es, EsReason.ROLLOUT_SKIPPED, msg)
                self.ctx.metrics.rollouts.labels(t.kind, "skipped").inc()
                continue
            job = self._queue.get(wid)
            if job is None and rollout.rolled_for(t.obj, {c.secret: c.digest}):
                continue  # patched for this data already (before a stop)
            if job is None:
                job = self._queue[wid] = _Job(wid)
            job.hashes[c.secret], job.why[c.secret] = c.digest, t.why
            if cid not in job.changes:
                job.changes.add(cid)
                self._open[cid] = self._open.get(cid, 0) + 1
            planned.append(f"{t.kind}/{t.name} ({t.why})")
        if planned:
            msg = f"Secret {ns}/{c.secret} changed: rolling {', '.join(planned)}"
            budget = self.ctx.config.rollout_concurrency
            if len(self._queue) + len(self._rolling) > budget:
                msg += (f" ({len(self._queue)} workloads queued, {len(self._rolling)} rolling, "
                        f"--rollout-concurrency {budget})")
            log.info("ExternalSecret %s: %s", name_of(c.es), msg)
            event(c.es, EsReason.ROLLED, msg)
        if not self._open.get(cid):
            await self._settled(cid)

    async def _start(self, job: _Job) -> None:
        """Patch the workload (its controller rolls it); it holds a place until done."""
        ns, kind, name = job.workload
        secrets = ", ".join(sorted(job.hashes))
        try:
            out = await kube.retrying(self.ctx.config, lambda: self.ctx.api.merge_patch(
                rollout.path(ns, kind, name), rollout.patch_for(job.hashes),
                field_manager=rollout.FIELD_MANAGER))
        except kube.ApiError as e:
            if e.status != 404:  # a workload deleted meanwhile has nothing to roll
                msg = f"rolling {kind} {ns}/{name} for Secret {secrets} failed: {e}"
                log.warning("%s", msg)
                _warn({"apiVersion": "apps/v1", "kind": kind,
                       "metadata": {"namespace": ns, "name": name}},
                      EsReason.ROLLOUT_FAILED, msg)
                self.ctx.metrics.rollouts.labels(kind, "failed").inc()
            await self._sent(job)
            return
        now = self.clock()
        generation = int((out.get("metadata") or {}).get("generation") or 0)
        self._rolling[job.workload] = _Rolling(job, generation,
                                               now + self.ctx.config.rollout_timeout,
                                               now + CHECK_INTERVAL)
        self.ctx.metrics.rollouts.labels(kind, "started").inc()
        why = ", ".join(f"{s} ({job.why[s]})" for s in sorted(job.hashes))
        msg = (f"rolling for changed Secret{'s' if len(job.hashes) > 1 else ''} {why} "
               f"({len(self._rolling)} of {self.ctx.config.rollout_concurrency} rolling)")
        log.info("%s %s/%s: %s", kind, ns, name, msg)
        event(out, EsReason.ROLLOUT_STARTED, msg)
        await self._sent(job)

    async def _check(self, now: float) -> None:
        """Look at the rolling workloads that are due: done, failed or past the timeout
        frees a place."""
        for wid, r in list(self._rolling.items()):
            if r.next_check > now:
                continue
            ns, kind, name = wid
            try:
                items = await self.ctx.api.list(rollout.path(ns, kind),
                                                field_selector=f"metadata.name={name}")
            except kube.ApiError as e:
                log.warning("%s %s/%s: rollout status unknown: %s", kind, ns, name, e)
                r.next_check = now + CHECK_INTERVAL
                continue
            state = rollout.progress(kind, items[0], r.generation) if items \
                else rollout.Progress.DONE  # deleted: nothing rolls any more
            if state is rollout.Progress.WAITING and now < r.deadline:
                r.next_check = now + CHECK_INTERVAL
                continue
            del self._rolling[wid]
            obj = {"apiVersion": "apps/v1", "kind": kind, **(items[0] if items else {
                "metadata": {"namespace": ns, "name": name}})}
            if state is rollout.Progress.DONE:
                self.ctx.metrics.rollouts.labels(kind, "done").inc()
                log.info("%s %s/%s: rolled", kind, ns, name)
            elif state is rollout.Progress.FAILED:
                self.ctx.metrics.rollouts.labels(kind, "failed").inc()
                _warn(obj, EsReason.ROLLOUT_FAILED, f"{kind} {ns}/{name} did not roll: its "
                                                    "progress deadline was exceeded")
            else:
                self.ctx.metrics.rollouts.labels(kind, "timeout").inc()
                _warn(obj, EsReason.ROLLOUT_FAILED, (
                    f"{kind} {ns}/{name} not rolled after "
                    f"{self.ctx.config.rollout_timeout:g} s (--rollout-timeout): its place in "
                    "the rollout budget goes to the next workload"))

    async def _sent(self, job: _Job) -> None:
        for cid in job.changes:
            if cid in self._open:
                self._open[cid] -= 1
                if self._open[cid] <= 0:
                    await self._settled(cid)

    async def _settled(self, cid: ChangeId) -> None:
        self._open[cid] = 0  # known until the mark is off: a sync meanwhile asks nothing
        try:
            await self.settle(*cid)
        except kube.ApiError as e:  # the mark stays: the next sync or leader looks again
            log.warning("Secret %s/%s: could not mark its rollout done: %s", cid[0], cid[1], e)
        finally:
            self._open.pop(cid, None)


def _warn(obj: Mapping[str, Any], reason: EsReason, msg: str) -> None:
    log.warning("%s: %s", name_of(obj), msg)
    event(obj, reason, msg)


__all__ = ["CHECK_INTERVAL", "Rollouts"]
