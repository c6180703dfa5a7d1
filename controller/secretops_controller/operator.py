"""The kopf operator: settings, login, startup, the watches of each half, and leadership.

:func:`run` is what ``secretops-controller`` runs, in a cluster and in tests alike. kopf runs
the lifecycle (login, startup and cleanup handlers) but watches nothing: every resource is
followed by our informers (:mod:`.informer`), started once kopf's startup handlers ran and
stopped with kopf, and handled with marks of our own, so kopf's persistence (set to
annotations under ``secretops.dev/``) is unused; kopf's own peering is off (``standalone``),
and every retry delay comes from the flags so tests run in seconds.

Leadership gates the handlers by **running kopf only while leading** (:func:`serve`):

* every replica reads the key ring and serves HTTP (``/v1/cert`` and friends, ``/healthz``,
  ``/metrics``) from the start, and campaigns for the Lease (:mod:`.leader`);
* the leader runs the kopf operator — the startup handler that makes or renews sealing keys,
  then the informers: watches, the SealedSecret and Secret handlers — and the key-renewal
  task;
* a replica that is not the leader runs no watch and no handler (so it writes nothing: no
  Secret, no status, no kopf annotation, no Event) and re-reads the ring every
  ``--key-refresh-interval``;
* when leadership is lost, kopf is cancelled at once (before anyone else may take over, since
  ``--renew-deadline`` < ``--lease-duration``); when it comes back, kopf starts again and
  looks at every object once (the first sight of each, from the informers' listing),
  catching up with everything that changed meanwhile;
* the leader also re-checks every ``--resync-period`` that each Synced SealedSecret still has
  its Secret (:func:`resync_once`): a deletion while a watch was down too long is not a watch
  event (the informer lists again on 410);
* on SIGTERM: kopf stops, then the Lease is released so another replica takes over within one
  ``--retry-period``.

With ``--shards`` (:mod:`.shardelect`) the same holds per shard: kopf runs while the replica
holds at least one shard, its informers filtered to the namespaces of the shards it handles, and
starts again whenever they change (a lost shard's handlers are cancelled; a surplus shard is
released only once kopf stopped); a gained shard's SealedSecrets are handled first by a
catch-up from one LIST (:func:`.sealed.catch_up`), and what the replica remembers of the shards
it kept survives the restart; likewise a gained shard's ExternalSecrets are registered from one
LIST (:mod:`.catchup`). The key ring and ClusterSecretStores are shard 0's holder's.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

import kopf

from secretops_controller import catchup, events, http, kube, sealed
from secretops_controller.config import Config, backoffs
from secretops_controller.context import Context
from secretops_controller.external import handlers as external_handlers
from secretops_controller.keyring import KeyRing
from secretops_controller.leader import LeaderElector, cancel
from secretops_controller.metrics import Metrics
from secretops_controller.shardelect import ShardElector, write_guard
from secretops_controller.shards import Ownership

log = logging.getLogger(__name__)
PREFIX = "secretops.dev"


def configure(settings: kopf.OperatorSettings, config: Config) -> None:
    """The kopf settings that matter (see docs/controller.md)."""
    delays = backoffs(config.retry_base_delay, config.retry_max_delay)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{PREFIX}/finalizer"  # unused: no on.delete handlers
    # kopf watches nothing (:mod:`.informer` does): no resource to scan for
    settings.scanning.disabled = True
    settings.posting.worker_limit = config.workers
    # an idle Event poster keeps its place for 0.1 s (1 s by default): a limit, not a rate
    settings.posting.idle_timeout = 0.1
    settings.networking.error_backoffs = delays
    settings.execution.default_backoff = config.retry_base_delay
    settings.posting.default_backoffs = delays[:4]
    settings.posting.reporting_component = "secretops-controller"
    settings.posting.reporting_instance = config.identity or socket.gethostname()


def scope_of(config: Config) -> kube.Scope | None:
    """Namespaced mode: the watched namespaces and our own; cluster-wide, only discovery of our
    group and (when on) ClusterSecretStores. Cluster-wide mode: no limit."""
    if not config.namespaced:
        return None
    group = f"/apis/{kube.SEALED_GROUP_VERSION}"
    cluster = (group + "/clustersecretstores",) if config.uses_cluster_stores else ()
    # the namespaces' labels (ClusterSecretStore conditions), watched by name (namespaces.py)
    names = frozenset({"/api/v1/namespaces"} if config.uses_cluster_stores else ())
    return kube.Scope(frozenset({*config.watch_namespaces, config.namespace}),
                      frozenset({group}) | names, cluster)


def build(config: Config) -> tuple[kopf.OperatorRegistry, Context]:
    """The registry with every handler, bound to a fresh :class:`Context`."""
    registry = kopf.OperatorRegistry()
    metrics = Metrics()
    api = kube.Kube(lambda: kube.login(config.kubeconfig), scope=scope_of(config))
    ctx = Context(config, api, KeyRing(api, config, metrics), metrics,
                  shards=Ownership(config.shards, config.namespace))
    if config.shards > 1:
        api.write_guard = write_guard(ctx.shards)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kube.login(config.kubeconfig)

    # first of the cleanup handlers: no watch event is handled once a half stopped
    @kopf.on.cleanup(registry=registry)
    async def stop_informers(**_: Any) -> None:
        await ctx.informers.stop()

    if config.sealed_secrets:
        @kopf.on.startup(registry=registry)
        async def startup(retry: int, **_: Any) -> None:
            # Runs each time this replica starts leading: only the leader (with --shards, the
            # holder of shard 0) makes or renews keys; the others read them.
            try:
                if ctx.shards.cluster_duties:
                    await ctx.ring.ensure()
                else:
                    await ctx.ring.load()
                    if not ctx.ring.keys:
                        raise kopf.TemporaryError("key ring: no key yet (shard 0's holder "
                                                  "makes it)", delay=config.retry_delay(retry))
            except kube.ApiError as e:
                raise kopf.TemporaryError(f"key ring: {e}",
                                          delay=config.retry_delay(retry, e)) from None
            ctx.health.set("keyring", True)
            newest = ctx.ring.newest
            log.info("key ring: %d keys, newest %s", len(ctx.ring.keys),
                     newest.name if newest else "-")

        ctx.informers.watches += sealed.register(ctx)
        ctx.catch_ups["SealedSecrets"] = sealed.catch_up
    if config.external_secrets:
        half, watches = external_handlers.register(registry, ctx)
        ctx.informers.watches += watches
        # through the event entry, so the handled mark is set and the informer's listing of
        # the same object later is not handled a second time
        ctx.catch_ups["ExternalSecrets"] = catchup.external_secrets(
            lambda es: half.external_event(None, es, listed=True))
    return registry, ctx


def needed_resources(config: Config) -> set[str]:
    """The secretops.dev plurals the enabled features watch."""
    plurals = {"sealedsecrets"} if config.sealed_secrets else set()
    if config.external_secrets:
        plurals |= {"externalsecrets", "secretstores"}
    if config.uses_cluster_stores:
        plurals.add("clustersecretstores")
    return plurals


async def _wait_served(ctx: Context) -> None:
    """Namespaced mode: wait until discovery serves every resource the enabled features need,
    so that none is silently left unwatched. (Cluster-wide, an informer whose resource is not
    served yet says so and lists again with backoff until it is.)"""
    delay = ctx.config.retry_base_delay
    while True:
        try:
            found = await ctx.api.request("GET", f"/apis/{kube.SEALED_GROUP_VERSION}")
            served = {str(r.get("name")) for r in found.get("resources") or []}
            missing = needed_resources(ctx.config) - served
        except kube.ApiError as e:
            missing = {f"discovery: {e}"}
        if not missing:
            return
        log.warning("waiting for the CRDs to be served: %s (retrying in %.1f s)",
                    ", ".join(sorted(missing)), delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, ctx.config.retry_max_delay)


async def _kopf(registry: kopf.OperatorRegistry, ctx: Context, stop_flag: asyncio.Event,
                own_signals: Callable[[], None],
                kept: Callable[[str], bool] | None = None) -> None:
    """One run of the kopf operator (watches and handlers), until cancelled or stopped."""
    existing = asyncio.all_tasks()  # ours (HTTP, Lease): kopf must not stop them when it ends
    # leading (again): every SealedSecret is looked at once, as on resume, and no Secret is
    # taken for our own write from what we remember of an earlier term
    # (--shards: ``kept`` says which namespaces' shards were handled throughout since the last
    # run; what was handled there needs no second look)
    for memory in (ctx.handled, ctx.fingerprints):
        for key in [k for k in memory if kept is None or not kept(k[0])]:
            del memory[key]
    ctx.metrics.forget_conditions(kept)  # they are set again as each object is looked at
    settings = kopf.OperatorSettings()
    configure(settings, ctx.config)
    namespaces = list(ctx.config.watch_namespaces)
    if namespaces:
        await _wait_served(ctx)
    ready = asyncio.Event()  # kopf's startup handlers ran: each half is ready
    tasks = await kopf.spawn_tasks(registry=registry, settings=settings, standalone=True,
                                   clusterwide=not namespaces, namespaces=namespaces,
                                   stop_flag=stop_flag, ready_flag=ready)
    own_signals()  # kopf installed its own SIGTERM/SIGINT handlers: the process decides
    # the watches, once kopf's startup handlers ran (each half is ready), filtered by shard
    ctx.informers.start(ctx.api, ctx.config, ctx.shards.handles, ready)
    # In kopf's context (its settings and Event queue), so repairs can post Events.
    resync = (asyncio.create_task(_resync(ctx), name="resync")
              if ctx.config.sealed_secrets else None)
    # --shards: a newly held shard's objects first, ahead of the informers' listing of everything
    caught = None if kept is None else asyncio.create_task(catchup.run(
        ctx, ctx.catch_ups, lambda ns: ctx.shards.handles(ns) and not kept(ns), ready),
        name="catch-up")
    try:
        await kopf.run_tasks(tasks, ignored=existing)
    finally:
        await ctx.informers.stop()
        await cancel(caught)
        await cancel(resync)
        # not leading (or not these shards): another replica reports them
        ctx.metrics.forget_conditions(ctx.shards.handles if ctx.config.shards > 1 else None)


async def _follow_ring(ctx: Context) -> None:
    """Not leading: read the ring (keys made by the leader) now and every
    --key-refresh-interval; ready to serve once it holds a key."""
    while True:
        try:
            await ctx.ring.load()
            ctx.health.set("keyring", bool(ctx.ring.keys))
        except kube.ApiError as e:
            log.warning("key ring: %s (retrying)", e)
        await asyncio.sleep(ctx.config.key_refresh_interval)


async def resync_once(ctx: Context) -> int:
    """Repair what the watches may have missed (an object deleted while a watch was down too
    long and the informer listed again): every SealedSecret this leader handled and synced
    (before the LIST began) whose Secret is gone or differs from what we wrote goes through
    drift repair. One LIST of our Secrets per namespace scope, read page by page keeping a
    16-byte fingerprint of each (the SealedSecrets are the ones the watch gave: no second
    LIST, no copy of either
    collection held). The repairs."""
    scopes: list[str | None] = list(ctx.config.watch_namespaces) or [None]
    # what was handled before the LIST began, with the fingerprint then: a SealedSecret
    # handled while the pages are read may have its Secret written after its page was served
    # (at a cold start of 5,000, ~80 were taken for missing: a GET, a create answered 409, a
    # GET and a second status patch each); the next resync looks at it
    before = {key: ctx.fingerprints.get(key) for key, (_, synced) in ctx.handled.items()
              if synced}
    secrets: dict[tuple[str, str], bytes] = {}
    for ns in scopes:
        async for page in ctx.api.list_pages(kube.secrets(ns) if ns else "/api/v1/secrets",
                                             sealed.SEALED_LABEL):
            for item in page:
                meta = item.get("metadata") or {}
                secrets[(str(meta.get("namespace")), str(meta.get("name")))] = \
                    sealed.fingerprint(item)
    repaired = 0
    for key, (_, synced) in list(ctx.handled.items()):
        if not synced or key not in before or not ctx.shards.handles(key[0]):
            continue  # failures stay as they are until the SealedSecret changes
        current = secrets.get(key)
        known = ctx.fingerprints.get(key)
        if current is not None and (known in (None, current) or before[key] == current):
            continue  # as we wrote it (before the LIST, or since: the next resync sees that)
        log.info("resync: Secret %s/%s %s", *key, "is missing" if current is None else "drifted")
        # drift repair reads the SealedSecret and the Secret again (it may have been deleted
        # meanwhile: then nothing is written)
        await sealed.on_secret(ctx, "DELETED" if current is None else "MODIFIED",
                               {"metadata": {"namespace": key[0], "name": key[1]}})
        repaired += 1
    return repaired


async def _resync(ctx: Context) -> None:
    """Leading: :func:`resync_once` every --resync-period (0: never)."""
    events.post_events_from_this_task(ctx.api, ctx.config)
    period = ctx.config.resync_period
    while period > 0:
        await asyncio.sleep(period)
        try:
            await resync_once(ctx)
        except kube.ApiError as e:
            log.warning("resync: %s (next in %.1f s)", e, period)
        except Exception:  # one bad round must not end the resync
            log.exception("resync failed (next in %.1f s)", period)


async def _first(*aws: asyncio.Future[Any] | asyncio.Task[Any]) -> None:
    await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)


async def _until(event: asyncio.Event, *others: asyncio.Task[Any] | None) -> None:
    """Wait for ``event`` or for any of ``others`` to end."""
    waiter = asyncio.create_task(event.wait())
    try:
        await _first(waiter, *(t for t in others if t is not None))
    finally:
        await cancel(waiter)


async def serve(config: Config) -> None:
    """The controller until SIGTERM/SIGINT: HTTP always, kopf only while leading (with
    ``--shards``: while holding a shard)."""
    registry, ctx = build(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def own_signals() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)

    def on_change(leading: bool) -> None:
        ctx.metrics.leader.set(1 if leading else 0)
        ctx.health.leader = leading

    def on_shards(held: frozenset[int]) -> None:
        ctx.metrics.shards_held.set(len(held))
        on_change(0 in held)

    def on_leader(leading: bool) -> None:  # one shard: the leader holds it
        on_shards(frozenset({0}) if leading else frozenset())

    own_signals()
    elector: LeaderElector | ShardElector | None = None
    if config.shards > 1:
        elector = ShardElector(
            ctx.api, config.namespace, config.lease_name, config.identity, config.shards,
            lease_duration=config.lease_duration, renew_deadline=config.renew_deadline,
            retry_period=config.retry_period, on_change=on_shards, ownership=ctx.shards)
        on_shards(frozenset())
    elif config.leader_elect:
        elector = LeaderElector(
            ctx.api, config.namespace, config.lease_name, config.identity,
            lease_duration=config.lease_duration, renew_deadline=config.renew_deadline,
            retry_period=config.retry_period, on_change=on_leader)
        on_leader(False)
    else:
        on_leader(True)
    # with SealedSecrets, ready once the key ring is read; without, once HTTP serves
    ctx.health.set("keyring" if config.sealed_secrets else "http", False)
    runner = None
    election: asyncio.Task[None] | None = None
    stop_wait = asyncio.create_task(stopping.wait(), name="stop signal")
    try:
        runner = await http.start(ctx)  # /healthz says 503 until the ring is read (or made)
        if not config.sealed_secrets:
            ctx.health.set("http", True)
        log.info("serving http on %s:%d; %s", config.http_host, config.http_port,
                 f"campaigning for {config.shards} shard Leases ({config.lease_name}…) as "
                 f"{config.identity}" if isinstance(elector, ShardElector) else
                 f"campaigning for Lease {config.namespace}/{config.lease_name} as "
                 f"{config.identity}" if elector else "leader election off")
        if elector is not None:
            election = asyncio.create_task(elector.run(), name="leader election")
        if isinstance(elector, ShardElector):
            await _shard_loop(registry, ctx, elector, election, stop_wait, own_signals)
        else:
            await _leader_loop(registry, ctx, elector, election, stop_wait, own_signals)
    finally:
        await cancel(election)
        if elector is not None:
            await elector.release(timeout=min(config.renew_deadline, 5.0))
        await cancel(stop_wait)
        if runner is not None:
            await runner.cleanup()
        ctx.close()
        await ctx.api.close()


async def _leader_loop(registry: kopf.OperatorRegistry, ctx: Context,
                       elector: LeaderElector | None, election: asyncio.Task[None] | None,
                       stop_wait: asyncio.Task[Any], own_signals: Callable[[], None]) -> None:
    """One Lease: kopf runs while it is held; the ring is followed while it is not."""
    follower: asyncio.Task[None] | None = None
    try:
        while not stop_wait.done():
            if elector is not None and not elector.is_leader:
                if not elector.campaigned.is_set():  # leader or not? (a leader makes keys)
                    await _until(elector.campaigned, stop_wait, election)
                    continue
                if follower is None and ctx.config.sealed_secrets:
                    follower = asyncio.create_task(_follow_ring(ctx), name="key ring (follower)")
                await _until(elector.elected, stop_wait, election)
                _surface(election)
                continue
            await cancel(follower)
            follower = None
            await _lead(registry, ctx, elector.deposed if elector else None,
                        lambda: elector is None or elector.is_leader, stop_wait, own_signals)
    finally:
        await cancel(follower)


async def _shard_loop(registry: kopf.OperatorRegistry, ctx: Context, elector: ShardElector,
                      election: asyncio.Task[None] | None, stop_wait: asyncio.Task[Any],
                      own_signals: Callable[[], None]) -> None:
    """``--shards``: kopf runs while at least one shard is held, and starts again whenever the
    held shards change — a new shard's objects are then listed and handled like on resume, a
    lost one's handlers are cancelled. The surplus of a balancing round is released only
    after kopf stopped (no handler of it still runs). The key ring is followed by every
    replica but shard 0's holder, which makes and renews the keys."""
    follower: asyncio.Task[None] | None = None
    handled: dict[int, int] = {}  # the shards (and their terms) of the last kopf run
    try:
        while not stop_wait.done():
            if not elector.campaigned.is_set():
                await _until(elector.campaigned, stop_wait, election)
                continue
            elector.changed.clear()
            if ctx.shards.surplus:
                await elector.give_up()  # kopf is not running here: the handlers stopped
                continue
            duties = ctx.shards.cluster_duties
            if not duties and follower is None and ctx.config.sealed_secrets:
                follower = asyncio.create_task(_follow_ring(ctx), name="key ring (follower)")
            elif duties and follower is not None:
                await cancel(follower)
                follower = None
            if not ctx.shards.active:
                await _until(elector.changed, stop_wait, election)
                _surface(election)
                continue
            log.info("handling shards %s", sorted(ctx.shards.active))
            before, handled = handled, ctx.shards.snapshot()

            def kept(namespace: str, before: dict[int, int] = before) -> bool:
                return ctx.shards.kept_since(before, namespace)

            await _lead(registry, ctx, elector.changed, lambda: not elector.changed.is_set(),
                        stop_wait, own_signals, kept)
    finally:
        await cancel(follower)


def _surface(election: asyncio.Task[None] | None) -> None:
    if election is not None and election.done():
        election.result()  # the campaign never ends by itself: surface its error


async def _lead(registry: kopf.OperatorRegistry, ctx: Context, deposed_event: asyncio.Event | None,
                leading: Callable[[], bool], stop_wait: asyncio.Task[Any],
                own_signals: Callable[[], None],
                kept: Callable[[str], bool] | None = None) -> None:
    """Run kopf and key renewal until leadership is lost (``deposed_event``) or the process
    stops."""
    config = ctx.config
    deposed = asyncio.create_task(deposed_event.wait()) if deposed_event else None
    stop_flag = asyncio.Event()
    renewal = (asyncio.create_task(ctx.ring.run(), name="key ring")
               if config.sealed_secrets and ctx.shards.cluster_duties else None)
    operator = asyncio.create_task(_kopf(registry, ctx, stop_flag, own_signals, kept),
                                   name="kopf operator")
    ended = False
    try:
        await _first(operator, stop_wait, *([deposed] if deposed else []))
        ended = operator.done()
    finally:
        stop_flag.set()  # an intentional stop: kopf's last-resort SIGKILL timer stays off
        await cancel(operator)
        await cancel(renewal)
        await cancel(deposed)
    if ended and not stop_wait.done() and leading():
        log.error("the kopf operator ended by itself; restarting it in %.1f s",
                  config.retry_base_delay)
        await asyncio.sleep(config.retry_base_delay)
    elif deposed_event is not None and not stop_wait.done():
        log.info("not the leader any more, or the shards changed: handlers stopped")


def run(config: Config) -> None:
    """Run the controller until SIGTERM/SIGINT."""
    asyncio.run(serve(config))


__all__ = ["build", "configure", "resync_once", "run", "serve"]
