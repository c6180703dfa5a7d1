"""One central scheduler and coalescing cache for every ExternalSecret's remote values.

ExternalSecrets do not poll on their own. Each one *registers* what it needs — a store, its
remote refs, its refresh interval — and the scheduler keeps one cache entry per distinct
``(read identity, ref)``, however many ExternalSecrets and stores share it:

* **one provider read per entry per refresh window**: an entry is refreshed at the shortest
  interval of its subscribers; a new subscriber to an entry that already has a value gets it at
  once, without a read. Entries of one identity that fall due together go to the provider as
  one batch (so AWS reads are batched 20 / 10 per call).
* **shared reads, never across credentials**: the cache is keyed by the ``fingerprint`` of
  :class:`StoreKey`, a keyed hash (:func:`fingerprint`) of the store's *read identity* — the
  provider, its server and configuration, the auth method and the credentials themselves
  (:mod:`.stores`) — not by the store's name. Five namespaces' SecretStores with the same
  credentials share one entry per key and one read; a ClusterSecretStore used from two
  namespaces with different credentials gives two identities, two caches, two reads.
* **new and changed objects first**: entries without a value (and force-syncs) go to an urgent
  queue that workers serve before periodic refreshes; one worker serves only that queue, so a
  slow periodic batch never holds a new object back.
* **jitter inside the interval**: the first refresh after an entry's first read (or after an
  error) is at ``interval × (1 − jitter × U)``, which sets its phase, so stores that start
  together (a restart) do not stay aligned; after that it is read exactly every interval, so no
  value is ever older than its interval and each key costs one read per interval. When one
  entry of an identity falls due, its entries due within their jitter span come along in
  the same batch (early, never late; they then keep that phase): one call per 20 / 10 keys on
  AWS.
* **backoff with a cap** on provider errors; the last good value stays in the cache and is still
  served, with the error alongside, until a read succeeds again. ``NotFound`` is not an error
  to back off from: it is a definitive answer (``deletionPolicy`` decides what it means).

Pure asyncio, no Kubernetes: time is a :class:`Clock` (tests pass a fake one), provider calls
run through ``run_blocking`` (a worker thread by default). Subscribers learn about changes
through ``on_update(owners)``, then read :meth:`Scheduler.snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from secretops_controller.external.provider import (
    ErrorKind,
    Finder,
    FindRef,
    Provider,
    ProviderError,
    RemoteRef,
    RemoteValue,
    Want,
    close_quietly,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
DUE_TOLERANCE = 0.001  # s: a timer may fire a hair before its deadline
Owner = Hashable  # an ExternalSecret's identity, e.g. (namespace, name)
_KEY = os.urandom(32)  # fingerprints are keyed: a fingerprint in a log reveals nothing


def fingerprint(*parts: str | bytes) -> str:
    """A keyed hash of a store's resolved configuration and credentials (per process)."""
    mac = hmac.new(_KEY, digestmod=hashlib.sha256)
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        mac.update(len(b).to_bytes(8, "big") + b)
    return mac.hexdigest()[:32]


@dataclass(frozen=True)
class StoreKey:
    """A store as an ExternalSecret uses it: its kind, namespace and name (for messages) and
    the ``fingerprint`` of its read identity (configuration and credentials), which is what
    the cache and the providers are keyed by: stores with equal fingerprints share them."""

    kind: str
    namespace: str
    name: str
    fingerprint: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class Clock(Protocol):
    def now(self) -> float: ...

    async def wait(self, timeout: float | None, wake: asyncio.Event) -> None:
        """Return after ``timeout`` seconds (never, if None) or as soon as ``wake`` is set."""


class LoopClock:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait(self, timeout: float | None, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


@dataclass
class Settings:
    jitter: float = 0.1  # refresh up to 10 % early, spread over the interval
    coalesce_window: float = 1.0  # read entries due within 1 s of each other together
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    workers: int = 4  # concurrent provider calls, one of them for urgent work only
    max_batch: int = 100  # refs per provider call from the scheduler (providers chunk further)


@dataclass
class _Entry:
    store: StoreKey  # the store that made it (log lines); shared by every equal fingerprint
    want: Want
    subscribers: dict[Owner, float] = field(default_factory=dict)  # owner -> interval
    value: RemoteValue | dict[str, RemoteValue] | None = None  # last good value
    missing: bool = False  # the provider said NotFound at the last read
    error: ProviderError | None = None
    read: bool = False  # has been answered at least once
    due: float = 0.0
    failures: int = 0
    queued: bool = False
    urgent: bool = False
    shortest: float = 0.0  # :attr:`interval`, kept up to date by (un)subscribe

    @property
    def interval(self) -> float:
        """The shortest positive interval of its subscribers; 0: read once. Kept, not
        computed: the loop reads it for every entry at every wake (at 10,000 ExternalSecrets
        a scan of the subscribers there was a few % of the controller's CPU)."""
        return self.shortest

    def subscribe(self, owner: Owner, interval: float) -> None:
        old = self.subscribers.get(owner)
        self.subscribers[owner] = interval
        if old is not None and 0 < old == self.shortest and interval != old:
            self._recompute()  # the shortest may have been this owner's
        elif interval > 0 and (not self.shortest or interval < self.shortest):
            self.shortest = interval

    def unsubscribe(self, owner: Owner) -> None:
        old = self.subscribers.pop(owner, None)
        if old is not None and 0 < old == self.shortest:
            self._recompute()

    def _recompute(self) -> None:
        positive = [i for i in self.subscribers.values() if i > 0]
        self.shortest = min(positive) if positive else 0.0


@dataclass(frozen=True)
class Snapshot:
    """What one owner's refs hold now. ``values`` are the last good values (kept on errors)."""

    values: dict[RemoteRef, RemoteValue]
    found: dict[FindRef, dict[str, RemoteValue]]
    missing: frozenset[RemoteRef]
    errors: dict[Want, ProviderError]
    pending: frozenset[Want]

    @property
    def complete(self) -> bool:
        """Every ref has been answered with a value or NotFound."""
        have = set(self.values) | set(self.found) | set(self.missing)
        return not self.pending and all(w in have for w in self.errors)

    def versions(self) -> dict[str, str]:
        return {str(r): v.version for r, v in sorted(self.values.items())}


@dataclass
class _Registration:
    store: StoreKey
    wants: frozenset[Want]
    interval: float


class Scheduler:
    """Register owners, :meth:`run` the loop as a task, read :meth:`snapshot`."""

    def __init__(self, *, clock: Clock | None = None, settings: Settings | None = None,
                 rng: random.Random | None = None,
                 on_update: Callable[[set[Owner]], None] = lambda owners: None,
                 run_blocking: Callable[..., Awaitable[Any]] = in_thread) -> None:
        self.clock: Clock = clock or LoopClock()
        self.settings = settings or Settings()
        self._rng = rng or random.Random()
        self._on_update = on_update
        self._run_blocking = run_blocking
        # keyed by the store's fingerprint (its read identity), never by its name
        self._entries: dict[tuple[str, Want], _Entry] = {}
        self._owners: dict[Owner, _Registration] = {}
        self._providers: dict[str, Provider] = {}
        self._urgent: deque[tuple[str, list[_Entry]]] = deque()
        self._periodic: deque[tuple[str, list[_Entry]]] = deque()
        self._wake = asyncio.Event()
        self._work = asyncio.Event()
        self._in_flight = 0
        self._parked_until: float | None = None  # the loop waits until then
        self.calls = 0  # provider calls made (read_many or find), for tests and metrics
        self._closing: set[asyncio.Future[Any]] = set()

    # ---- registration --------------------------------------------------------------------
    def register(self, owner: Owner, store: StoreKey, provider: Provider,
                 wants: Iterable[Want], interval: float) -> None:
        """Subscribe ``owner`` to ``wants`` of ``store`` (replacing what it had). Stores with
        the same fingerprint share the entries and the first ``provider`` given."""
        wants = frozenset(wants)
        ident = store.fingerprint
        old = self._owners.get(owner)
        if old is not None:
            same = old.store.fingerprint == ident
            self._unsubscribe(owner, old, keep=wants if same else frozenset())
        self._providers.setdefault(ident, provider)
        self._owners[owner] = _Registration(store, wants, interval)
        now = self.clock.now()
        for want in wants:
            entry = self._entries.get((ident, want))
            if entry is None:
                entry = self._entries[(ident, want)] = _Entry(store, want)
            before = entry.interval
            entry.subscribe(owner, interval)
            if not entry.read and not entry.queued:
                # nobody has it yet: ahead of periodic refreshes (a read already queued or in
                # flight answers the new subscriber too: one read per key)
                entry.urgent = True
            elif entry.interval and (not before or entry.interval < before):
                entry.due = min(entry.due, now + self._spread(entry.interval))
        self._wake.set()

    def unregister(self, owner: Owner) -> None:
        reg = self._owners.pop(owner, None)
        if reg is not None:
            self._unsubscribe(owner, reg, keep=frozenset())

    def _unsubscribe(self, owner: Owner, reg: _Registration, keep: frozenset[Want]) -> None:
        ident = reg.store.fingerprint
        for want in reg.wants - keep:
            entry = self._entries.get((ident, want))
            if entry is None:
                continue
            entry.unsubscribe(owner)
            if not entry.subscribers:
                del self._entries[(ident, want)]  # a queued batch skips it
        if not any(r.store.fingerprint == ident for o, r in self._owners.items() if o != owner):
            provider = self._providers.pop(ident, None)
            if provider is not None:
                self.close_later(provider)

    def close_later(self, provider: Provider) -> None:
        """Close a provider through ``run_blocking`` (a worker thread): closing takes the
        provider's lock, which a login in progress may hold while it waits for the loop."""
        task: asyncio.Future[Any] = asyncio.ensure_future(
            self._run_blocking(close_quietly, provider))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def refresh(self, owner: Owner) -> None:
        """Force-sync: read ``owner``'s refs again now, ahead of periodic work."""
        reg = self._owners.get(owner)
        if reg is None:
            return
        for want in reg.wants:
            entry = self._entries.get((reg.store.fingerprint, want))
            if entry is not None and not entry.queued:
                entry.urgent = True
        self._wake.set()

    def entry_count(self) -> int:
        """Cache entries: what one refresh round reads."""
        return len(self._entries)

    def store_ref_count(self) -> int:
        """Distinct (store, ref) pairs subscribed: what one round would read if each store
        had a cache of its own (the difference is what shared identities save)."""
        return len({(r.store, w) for r in self._owners.values() for w in r.wants})

    def snapshot(self, owner: Owner) -> Snapshot | None:
        reg = self._owners.get(owner)
        if reg is None:
            return None
        values: dict[RemoteRef, RemoteValue] = {}
        found: dict[FindRef, dict[str, RemoteValue]] = {}
        missing: set[RemoteRef] = set()
        errors: dict[Want, ProviderError] = {}
        pending: set[Want] = set()
        for want in reg.wants:
            e = self._entries[(reg.store.fingerprint, want)]
            if not e.read:
                pending.add(want)
                continue
            if e.error is not None:
                errors[want] = e.error
            if isinstance(want, RemoteRef):
                if e.missing:
                    missing.add(want)
                elif isinstance(e.value, RemoteValue):
                    values[want] = e.value
            elif isinstance(e.value, dict):
                found[want] = e.value
        return Snapshot(values, found, frozenset(missing), errors, frozenset(pending))

    # ---- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Schedule forever (cancel the task to stop)."""
        n = max(2, self.settings.workers)
        workers = [asyncio.create_task(self._worker(urgent_only=(i == 0))) for i in range(n)]
        try:
            while True:
                self._wake.clear()
                now = self.clock.now()
                self._enqueue(now)
                upcoming = [e.due for e in self._entries.values()
                            if not e.queued and e.read and (e.interval or e.error)]
                timeout = max(0.0, min(upcoming) - now) if upcoming else None
                self._parked_until = math.inf if timeout is None else now + timeout
                await self.clock.wait(timeout, self._wake)
                self._parked_until = None
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def quiet(self) -> bool:
        """Nothing queued or in flight, and the loop waits for a time still to come."""
        return (not self._urgent and not self._periodic and self._in_flight == 0
                and not self._wake.is_set() and self._parked_until is not None
                and self._parked_until > self.clock.now())

    def _enqueue(self, now: float) -> None:
        """Queue urgent entries, and the periodic entries of every identity (the stores that
        share a fingerprint) with one due now.

        Once one entry of an identity is due, its other entries due within the coalescing window
        and their jitter span (``jitter × interval``) come along: refreshed a little early, but
        in the same batch (and from then on in step with it), so the spread of a restart does
        not turn into one provider call per key. Only an entry that *is* due starts a batch:
        the loop also wakes for other reasons (a registration, a batch that finished), and
        reading early then would shorten every refresh period of a busy store.
        """
        window = now + self.settings.coalesce_window
        urgent: dict[str, list[_Entry]] = {}
        candidates: dict[str, list[_Entry]] = {}
        due: set[str] = set()
        for e in self._entries.values():
            if e.queued:
                continue
            ident = e.store.fingerprint
            if e.urgent:
                urgent.setdefault(ident, []).append(e)
            elif e.read and (e.interval or e.error):
                candidates.setdefault(ident, []).append(e)
                if e.due <= now + DUE_TOLERANCE:
                    due.add(ident)
        periodic = {ident: [e for e in candidates[ident]
                            if e.due <= window + self.settings.jitter * e.interval]
                    for ident in due}
        if log.isEnabledFor(logging.DEBUG):
            for entries in periodic.values():
                dues = [e.due - now for e in entries]
                log.debug("scheduler: %s: %d refreshes queued (due %+.3f s .. %+.3f s)",
                          entries[0].store, len(entries), min(dues), max(dues))
            for entries in urgent.values():
                log.debug("scheduler: %s: %d urgent reads queued", entries[0].store,
                          len(entries))
        for groups, queue in ((urgent, self._urgent), (periodic, self._periodic)):
            for ident, entries in groups.items():
                for e in entries:
                    e.queued = True
                size = self.settings.max_batch
                for i in range(0, len(entries), size):
                    queue.append((ident, entries[i:i + size]))
        if self._urgent or self._periodic:
            self._work.set()

    async def _worker(self, urgent_only: bool) -> None:
        while True:
            if self._urgent:
                ident, batch = self._urgent.popleft()
            elif self._periodic and not urgent_only:
                ident, batch = self._periodic.popleft()
            else:
                self._work.clear()
                await self._work.wait()
                continue
            self._in_flight += 1
            try:
                await self._read(ident, batch)
            finally:
                self._in_flight -= 1
                self._wake.set()  # the loop recomputes the next due time

    async def _read(self, ident: str, batch: list[_Entry]) -> None:
        provider = self._providers.get(ident)
        live = [e for e in batch if self._entries.get((ident, e.want)) is e]
        for e in live:
            e.urgent = False
        if provider is None or not live:
            for e in batch:
                e.queued = False
            return
        started = self.clock.now()  # the next refresh counts from the read, not its end
        results: dict[Want, Any] = {}
        refs = [e.want for e in live if isinstance(e.want, RemoteRef)]
        if refs:
            self.calls += 1
            try:
                got = await self._run_blocking(provider.read_many, refs)
                results.update({r: got.get(r, _missing(provider, r)) for r in refs})
            except ProviderError as err:
                results.update(dict.fromkeys(refs, err))
            except Exception as err:  # a provider bug must not stop the scheduler
                results.update(dict.fromkeys(refs, _unexpected(provider, err)))
        for e in live:
            if isinstance(e.want, FindRef):
                results[e.want] = await self._find(provider, e.want)
        changed: set[Owner] = set()
        for e in live:
            if self._settle(e, results[e.want], started):
                changed.update(e.subscribers)
        for e in batch:
            e.queued = False
        if changed:
            self._on_update(changed)

    async def _find(self, provider: Provider, query: FindRef) -> Any:
        if not isinstance(provider, Finder):
            return ProviderError(ErrorKind.INVALID, f"{provider.name}: dataFrom.find is not "
                                                    "supported by this provider")
        self.calls += 1
        try:
            return await self._run_blocking(provider.find, query)
        except ProviderError as err:
            return err
        except Exception as err:
            return _unexpected(provider, err)

    def _settle(self, e: _Entry, result: Any, now: float) -> bool:
        """Store a result; True if subscribers should hear about it."""
        before = (e.read, e.missing, e.error, _fp(e.value))
        e.read = True
        if isinstance(result, ProviderError) and result.kind == ErrorKind.NOT_FOUND:
            e.value, e.missing, e.error, e.failures = None, True, None, 0
        elif isinstance(result, ProviderError):
            e.error = result  # the last good value stays
            e.failures += 1
            delay = min(self.settings.backoff_cap,
                        self.settings.backoff_base * 2 ** min(e.failures - 1, 30))
            e.due = now + delay * (0.5 + 0.5 * self._rng.random())
            return before != (e.read, e.missing, e.error, _fp(e.value))
        else:
            e.value, e.missing, e.error, e.failures = result, False, None, 0
        # Jitter sets an entry's phase once (after its first read, or after an error); from then
        # on it is read exactly every interval, and entries pulled into a store's batch early
        # take that batch's phase: one read per key per interval in the steady state.
        phase = not before[0] or before[2] is not None
        if not e.interval:
            e.due = math.inf
        else:
            e.due = now + (self._spread(e.interval) if phase else e.interval)
        return before != (e.read, e.missing, e.error, _fp(e.value))

    def _spread(self, interval: float) -> float:
        return interval * (1 - self.settings.jitter * self._rng.random())


def _fp(value: RemoteValue | dict[str, RemoteValue] | None) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, v.fingerprint()) for k, v in value.items()))
    return value.fingerprint() if value is not None else None


def _missing(provider: Provider, ref: RemoteRef) -> ProviderError:
    return ProviderError(ErrorKind.NOT_FOUND, f"{provider.name}: {ref}: not found")


def _unexpected(provider: Provider, err: Exception) -> ProviderError:
    return ProviderError(ErrorKind.UNAVAILABLE,
                         f"{provider.name}: unexpected {type(err).__name__}")
