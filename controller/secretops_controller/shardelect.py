"""Shards on Kubernetes itself: one ``coordination.k8s.io/v1`` Lease per shard (``--shards``).

:class:`ShardElector` holds the shard Leases of one replica with the same per-Lease loop as the
leader election (:class:`~secretops_controller.leader.Lease`: claims with resourceVersion, expiry
on the candidate's own clock, the renew deadline) and balances them with the pure rules of
:mod:`secretops_controller.shards`. Each round (every ``--retry-period``):

1. every Lease is renewed (held) or read (the others), at once;
2. :func:`~secretops_controller.shards.plan` decides on what was just read: take free or
   expired Leases up to the fair share, ask a busier replica for one (the ``wanted-by``
   annotation), or mark the surplus;
3. the surplus is not released here: :attr:`ShardElector.changed` tells the operator, which stops
   its handlers first and then calls :meth:`ShardElector.give_up` — so no two replicas ever
   handle one shard: the new holder takes a Lease only once it is released, or expired (the old
   holder stopped at its renew deadline, before the expiry).

:attr:`ShardElector.ownership` is what the handlers' ``when=`` filters and the write guard of
:class:`~secretops_controller.kube.Kube` (:func:`write_guard`) read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from secretops_controller import shards
from secretops_controller.kube import Kube, path_namespace
from secretops_controller.leader import Lease, check_timings, jittered, stray
from secretops_controller.shards import Ownership

log = logging.getLogger(__name__)


def write_guard(ownership: Ownership) -> Callable[[str, str], str | None]:
    """For :attr:`Kube.write_guard`: why a write to ``path`` is refused now (None: allowed).
    Leases (the election itself) and TokenRequests (no state) are never refused."""

    def refusal(method: str, path: str) -> str | None:
        bare = path.split("?", 1)[0]
        if method == "GET" or bare.startswith("/apis/coordination.k8s.io/") or (
                "/serviceaccounts/" in bare and bare.endswith("/token")):
            return None
        ns = path_namespace(bare)
        if shards.may_write(ns, ownership.held, ownership.count, ownership.home):
            return None
        where = f"namespace {ns}" if ns is not None else "cluster-scoped objects"
        return (f"{where}: shard {ownership.shard(ns) if ns is not None else 0} is not held "
                "by this replica (its Lease was lost or given up)")

    return refusal


class ShardElector:
    """Hold a fair share of the ``count`` shard Leases (:meth:`run`)."""

    def __init__(self, api: Kube, namespace: str, base_name: str, identity: str, count: int,
                 *, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, on_change: Callable[[frozenset[int]], None] | None
                 = None, ownership: Ownership | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_timings(lease_duration, renew_deadline, retry_period)
        self.identity = identity
        self.retry_period = retry_period
        self.leases = [Lease(api, namespace, shards.lease_name(base_name, i), identity,
                             lease_duration=lease_duration, renew_deadline=renew_deadline,
                             clock=clock) for i in range(count)]
        # shared with the handlers' filters and the write guard
        self.ownership = ownership if ownership is not None else Ownership(count, namespace)
        self.on_change = on_change
        self.changed = asyncio.Event()  # held or surplus changed: the operator looks again
        self.campaigned = asyncio.Event()  # set once the first round ended
        self._lock = asyncio.Lock()  # a round and a give-up never interleave
        self._considered: dict[int, str] = {}  # asks a plan kept its Lease against

    @property
    def held(self) -> frozenset[int]:
        return self.ownership.held

    def _seen(self) -> list[shards.Seen]:
        out = []
        for i, lease in enumerate(self.leases):
            rec = lease.record
            out.append(shards.Seen(
                i, holder=self.identity if lease.holding else (rec.holder if rec else ""),
                live=lease.holding or (lease.exists and not lease.expired()),
                wanted_by=lease.annotations.get(shards.WANTED_BY, ""),
                exists=lease.exists))
        return out

    def _update(self, held: frozenset[int], surplus: frozenset[int]) -> None:
        o = self.ownership
        surplus = surplus & held
        if (held, surplus) == (o.held, o.surplus):
            return
        gained, lost = sorted(held - o.held), sorted(o.held - held)
        o.acquired(gained)
        o.held, o.surplus = held, surplus
        if gained or lost:
            log.info("shards held: %s (gained %s, lost %s) as %s", sorted(held) or "none",
                     gained or "none", lost or "none", self.identity)
            if self.on_change is not None:
                self.on_change(held)
        self.changed.set()

    async def round(self) -> shards.Plan:
        """Renew and read every Lease, then take, ask or mark the surplus."""
        async with self._lock:
            # 1. renew what we hold (an ask answered last round is removed with it), read the
            # others
            notes = {i: {shards.WANTED_BY: None} for i in self._considered}
            # a task per Lease: kopf's stop may cancel one (it cancels every task created since
            # it started); a TaskGroup lets that one go (a renewal missed) and the round on.
            # A step raises nothing else: an error would cancel the other renewals in flight
            async with asyncio.TaskGroup() as group:
                for i, lease in enumerate(self.leases):
                    group.create_task(lease.step(may_take=False, annotations=notes.get(i) if (
                        self._considered.get(i) == lease.annotations.get(shards.WANTED_BY))
                        else None))
            held = frozenset(i for i, lease in enumerate(self.leases) if lease.holding)
            seen = self._seen()
            p = shards.plan(seen, held, self.identity)
            # 2. take free Leases up to the share (an ask of ours is consumed by taking)
            got = 0
            for i in p.take:
                if got >= p.want:
                    break
                if await self.leases[i].step(annotations={shards.WANTED_BY: None}):
                    got += 1
            held = frozenset(i for i, lease in enumerate(self.leases) if lease.holding)
            # 3. ask a busier replica for one
            if p.announce is not None and got < p.want and await self.leases[
                    p.announce].annotate({shards.WANTED_BY: self.identity}):
                log.info("asked for shard %d (held by %s)", p.announce,
                             seen[p.announce].holder)
            # asks on Leases we keep are answered (removed) with the next renewal
            give = frozenset(p.give_up)
            self._considered = {s.shard: s.wanted_by for s in seen
                                if s.shard in held and s.wanted_by and s.shard not in give}
            self._update(held, give | (self.ownership.surplus & held))
            return p

    async def give_up(self) -> None:
        """Release the surplus Leases; call once their handlers have stopped."""
        async with self._lock:
            surplus = self.ownership.surplus
            for i in sorted(surplus):
                await self.leases[i].release()
                log.info("gave shard %d up (over the fair share)", i)
            self._update(self.ownership.held - surplus, frozenset())

    async def run(self) -> None:
        """Rounds every retry period (with jitter), until cancelled."""
        try:
            while True:
                try:
                    await self.round()
                except asyncio.CancelledError:
                    if not stray():
                        raise
                    log.warning("shard election round: a request was cancelled by someone "
                                "else (retrying)")
                except Exception:  # one bad round must not end the election
                    log.exception("shard election round failed")
                self.campaigned.set()
                await asyncio.sleep(jittered(self.retry_period))
        finally:
            for lease in self.leases:
                lease.holding = False
            self._update(frozenset(), frozenset())

    async def release(self, timeout: float | None = None) -> None:
        """Release every Lease still held (SIGTERM, after the handlers stopped)."""
        held = [lease for lease in self.leases if lease.record is not None
                and lease.record.holder == self.identity]
        self._update(frozenset(), frozenset())
        for lease in held:
            await lease.release(timeout)


__all__ = ["ShardElector", "write_guard"]
