"""Sharding's pure rules: which shard a namespace is in, how many shards a replica should hold,
what it should take, give up or ask for, and which writes it may make. No I/O, no clock.

With ``--shards N`` (N > 1) the namespaces are split into N shards by a hash of their name
(:func:`shard_of`: the first 8 bytes of SHA-256, big-endian, mod N — stable across processes,
Python versions and restarts, unlike ``hash()``). Each shard has a ``coordination.k8s.io/v1``
Lease (:func:`lease_name`: shard 0's is ``--lease-name`` itself, so ``--shards 1`` is today's
leader election); a replica handles the objects of the namespaces whose shard's Lease it holds.

Balancing (:func:`plan`, run by every replica each retry period on what it has just read):

* the replicas a replica counts (:func:`replicas_seen`) are itself, the holders of the Leases
  that are live on its own clock, and the replicas that asked for a Lease (the
  :data:`WANTED_BY` annotation on a live Lease);
* its fair share is ``ceil(N / replicas)`` (:func:`fair_share`): 6 shards, 3 replicas → 2;
* below its share it takes free Leases (released, never made, or expired: the holder is dead),
  the ones asked for by itself first; a Lease released for another replica (still wanted by it
  and live) is left to that one;
* below its share with nothing free, it asks: it writes :data:`WANTED_BY` on a Lease of the
  replica holding the most, when that one holds at least two more than itself;
* above its share it gives up the surplus (Leases asked for by others first, shard 0 last), and
  within it one asked-for Lease when the asker holds at least two fewer: the caller stops
  handling them, then releases them. An ask on a Lease it keeps is answered by
  removing the annotation with its next renewal, so a stale ask never lingers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

WANTED_BY = "secretops.dev/wanted-by"  # a Lease annotation: this replica asks for the Lease
MAX_SHARDS = 64  # each shard costs a Lease and a request per retry period per replica


def shard_of(namespace: str, shards: int) -> int:
    """The shard of ``namespace`` among ``shards`` (0 when there is one)."""
    if shards <= 1:
        return 0
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def lease_name(base: str, shard: int) -> str:
    """Shard 0's Lease is ``base`` (the leader-election Lease); shard i's ``base-shard-i``."""
    return base if shard == 0 else f"{base}-shard-{shard}"


def fair_share(shards: int, replicas: int) -> int:
    """How many shards one of ``replicas`` live replicas should hold at most."""
    return math.ceil(shards / max(1, replicas))


@dataclass(frozen=True)
class Seen:
    """One shard's Lease as a replica last read it.

    ``live``: the record changed within the lease duration on the reader's clock (a holder
    renewing, or a recent release); ``exists``: the Lease was ever made."""

    shard: int
    holder: str = ""
    live: bool = False
    wanted_by: str = ""
    exists: bool = True


@dataclass(frozen=True)
class Plan:
    """What a replica does this round: ``take`` the first ``want`` Leases of the list it can
    get, ``give_up`` these (after stopping their handlers), ask for ``announce``."""

    share: int
    want: int
    take: tuple[int, ...] = ()
    give_up: tuple[int, ...] = ()
    announce: int | None = None


def replicas_seen(seen: Sequence[Seen], me: str) -> set[str]:
    """``me``, the holders of live Leases and the replicas asking for a live Lease."""
    live = {me}
    for s in seen:
        if s.live and s.holder:
            live.add(s.holder)
        if s.live and s.wanted_by:
            live.add(s.wanted_by)
    return live


def _rank(me: str, shard: int) -> bytes:
    # each replica tries free Leases in its own order: two replicas rarely race for one
    return hashlib.sha256(f"{me}/{shard}".encode()).digest()


def takeable(s: Seen, me: str) -> bool:
    """Whether ``me`` (not holding it) may try to take this Lease now."""
    if not s.exists or s.holder == me or not s.live:
        return True
    return not s.holder and s.wanted_by in ("", me)


def plan(seen: Sequence[Seen], held: Collection[int], me: str) -> Plan:
    """This round's decisions for ``me`` holding ``held`` (see the module docstring)."""
    share = fair_share(len(seen), len(replicas_seen(seen, me)))
    counts: dict[str, int] = {}
    for s in seen:
        if s.live and s.holder and s.holder != me:
            counts[s.holder] = counts.get(s.holder, 0) + 1
    # asked-for Leases first, then the highest shards; shard 0 (cluster duties) last
    order = sorted(held, key=lambda i: (i == 0, seen[i].wanted_by in ("", me), -i))
    if len(held) > share:
        return Plan(share, 0, give_up=tuple(order[:len(held) - share]))
    # within the share, an ask is granted when it evens out: the asker holds 2+ fewer
    granted = [i for i in order if seen[i].wanted_by not in ("", me)
               and counts.get(seen[i].wanted_by, 0) + 1 < len(held)]
    if granted:
        return Plan(share, 0, give_up=(granted[0],))
    want = share - len(held)
    if want == 0:
        return Plan(share, 0)
    free = sorted((s for s in seen if s.shard not in held and takeable(s, me)),
                  key=lambda s: (s.wanted_by != me, _rank(me, s.shard)))
    take = tuple(s.shard for s in free)
    announce = None
    if len(take) < want and not any(s.wanted_by == me for s in seen if s.live):
        busiest = max(counts.items(), key=lambda kv: (kv[1], kv[0]), default=None)
        if busiest is not None and busiest[1] > len(held) + 1:
            asked = [s for s in seen if s.holder == busiest[0] and s.live and not s.wanted_by]
            if asked:
                announce = max(asked, key=lambda s: (s.shard != 0, s.shard)).shard
    return Plan(share, want, take=take, announce=announce)


def may_write(namespace: str | None, held: Collection[int], shards: int, home: str) -> bool:
    """The write guard: a write to ``namespace`` (None: a cluster-scoped object) is allowed when
    its shard is held; cluster-scoped objects are shard 0's; the controller's own namespace
    (``home``: Leases, the key ring, the fingerprint key, Events of cluster-scoped objects) is
    shared by every replica, each writing there only what its duties are."""
    if shards <= 1 or namespace == home:
        return True
    return shard_of(namespace, shards) in held if namespace is not None else 0 in held


@dataclass
class Ownership:
    """The shards this replica holds (``held``) and handles (``held`` minus those it is
    giving up). One shard: everything (leadership gates the handlers then)."""

    count: int = 1
    home: str = ""
    held: frozenset[int] = frozenset()
    surplus: frozenset[int] = frozenset()
    # each shard's term: a number that changes whenever it is acquired again, so the handlers
    # can tell a shard held throughout from one lost and taken back meanwhile
    terms: dict[int, int] = field(default_factory=dict)
    _cache: dict[str, int] = field(default_factory=dict)

    def acquired(self, gained: Collection[int]) -> None:
        for i in gained:
            self.terms[i] = max(self.terms.values(), default=0) + 1

    def snapshot(self) -> dict[int, int]:
        """The terms of the shards handled now (see :meth:`kept_since`)."""
        return {i: self.terms.get(i, 0) for i in self.active}

    def kept_since(self, before: dict[int, int], namespace: str) -> bool:
        """Whether ``namespace``'s shard was handled at ``before`` and still is, in the same
        term: what this replica remembers of its objects is still good."""
        shard = self.shard(namespace)
        return shard in self.active and before.get(shard) == self.terms.get(shard, 0)

    def shard(self, namespace: str) -> int:
        found = self._cache.get(namespace)
        if found is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            found = self._cache[namespace] = shard_of(namespace, self.count)
        return found

    @property
    def active(self) -> frozenset[int]:
        return self.held - self.surplus

    def handles(self, namespace: str | None) -> bool:
        """Whether this replica handles objects of ``namespace`` (None: cluster-scoped ones:
        shard 0's)."""
        if self.count <= 1:
            return True
        return (self.shard(namespace) if namespace is not None else 0) in self.active

    @property
    def cluster_duties(self) -> bool:
        """The key ring, ClusterSecretStores: the holder of shard 0."""
        return self.count <= 1 or 0 in self.active


__all__ = ["MAX_SHARDS", "WANTED_BY", "Ownership", "Plan", "Seen", "fair_share", "lease_name",
           "may_write", "plan", "replicas_seen", "shard_of", "takeable"]
