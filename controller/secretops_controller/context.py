"""The controller's state shared by its handlers: settings, API client, key ring, metrics."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from secretops.sealing.template import MAX_OUTPUT
from secretops.sealing.workers import Limits, WorkerPool
from secretops_controller.config import Config
from secretops_controller.informer import Informers
from secretops_controller.keyring import KeyRing
from secretops_controller.kube import Kube
from secretops_controller.metrics import Metrics
from secretops_controller.runtime import Health
from secretops_controller.shards import Ownership

K = TypeVar("K")


class KeyedLocks(Generic[K]):
    """One :class:`asyncio.Lock` per key, alive as long as someone holds or waits for it
    (``async with locks(key)`` keeps it): weak, so a lock per object ever seen is not kept
    (~0.3 KiB each)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[K, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    def __call__(self, key: K) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        """Locks alive now (held or waited for)."""
        return len(self._locks)


@dataclass
class Context:
    config: Config
    api: Kube
    ring: KeyRing
    metrics: Metrics
    health: Health = field(default_factory=Health)
    # --shards: which namespaces this replica handles now (handlers' when= filters)
    shards: Ownership = field(default_factory=Ownership)
    # --shards: each half's handling of a gained shard's objects first (:mod:`.catchup`), by kind
    catch_ups: dict[str, Callable[[Context, Callable[[str], bool]], Awaitable[int]]] = field(
        default_factory=dict)
    # what the halves watch (:mod:`.informer`), followed while kopf runs
    informers: Informers = field(default_factory=Informers)
    # (namespace, name) -> fingerprint of the Secret as last written or checked: a watch event
    # for a Secret that still matches needs no unsealing (our own writes echo back).
    fingerprints: dict[tuple[str, str], bytes] = field(default_factory=dict)
    # (namespace, name) -> (mark, synced) of the SealedSecret as last handled while leading:
    # its mark (a digest of uid, generation, labels and annotations): a watch event that still
    # matches (the echo of our status write, a re-list) needs nothing; synced: its Secret was
    # written or found up to date (the resync checks those). Cleared whenever this replica
    # starts leading.
    handled: dict[tuple[str, str], tuple[bytes, bool]] = field(default_factory=dict)
    # one lock per Secret, and one handling at a time per SealedSecret (the informer's handler vs. a
    # shard's catch-up)
    _locks: KeyedLocks[tuple[str, str]] = field(default_factory=KeyedLocks)
    _handling: KeyedLocks[tuple[str, str]] = field(default_factory=KeyedLocks)
    # Worker processes for untrusted work (started on first use; see secretops.sealing.workers):
    # templates of SealedSecrets and ExternalSecrets, and the bodies of POST /v1/verify and
    # /v1/rotate. Two pools: a template worker never holds a key.
    renderer: WorkerPool = field(init=False)
    requests: WorkerPool = field(init=False)

    def __post_init__(self) -> None:
        c = self.config
        self.renderer = WorkerPool("render", Limits(
            timeout=c.template_timeout, memory=c.worker_memory, workers=c.template_workers,
            max_reply=4 * MAX_OUTPUT))
        self.requests = WorkerPool("sealed", Limits(
            timeout=c.request_timeout, memory=c.worker_memory, workers=c.request_workers))

    def close(self) -> None:
        """Stop the worker processes."""
        self.renderer.close()
        self.requests.close()

    def handling(self, namespace: str, name: str) -> asyncio.Lock:
        """One handling at a time per SealedSecret (the informer's handler vs. a shard's
        catch-up)."""
        return self._handling((namespace, name))

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        """One reconcile at a time per Secret (the SealedSecret handler vs. drift repair). The
        lock lives as long as a caller holds a reference to it (``async with`` does)."""
        return self._locks((namespace, name))
