"""The kopf operator: settings, login, startup/cleanup, and the handlers of each half.

:func:`run` is what ``secretops-controller`` runs, in a cluster and in tests alike. kopf's
persistence is kept in annotations under ``secretops.dev/`` (the CRD's status schema has no
room for kopf's fields), kopf's own peering is off (``standalone``), and every retry delay comes
from the flags so tests run in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import kopf

from secretops_controller import http, kube, sealed
from secretops_controller.config import Config, backoffs
from secretops_controller.context import Context
from secretops_controller.keyring import KeyRing
from secretops_controller.runtime import Metrics

log = logging.getLogger(__name__)
PREFIX = "secretops.dev"


def configure(settings: kopf.OperatorSettings, config: Config) -> None:
    """The kopf settings that matter (see docs/controller.md)."""
    delays = backoffs(config.retry_base_delay, config.retry_max_delay)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{PREFIX}/finalizer"  # unused: no on.delete handlers
    settings.watching.server_timeout = config.watch_timeout
    settings.watching.client_timeout = config.watch_timeout + 30
    settings.watching.reconnect_backoff = config.retry_base_delay
    # Only our Secrets are watched (drift repair): a server-side selector, not all Secrets.
    settings.watching.label_selectors["v1", "secrets"] = sealed.SEALED_LABEL
    settings.networking.error_backoffs = delays
    settings.queueing.error_delays = delays
    settings.execution.default_backoff = config.retry_base_delay
    settings.posting.default_backoffs = delays[:4]
    settings.posting.reporting_component = "secretops-controller"
    settings.posting.reporting_instance = socket.gethostname()


def build(config: Config) -> tuple[kopf.OperatorRegistry, Context]:
    """The registry with every handler, bound to a fresh :class:`Context`."""
    registry = kopf.OperatorRegistry()
    metrics = Metrics()
    api = kube.Kube(lambda: kube.login(config.kubeconfig))
    ctx = Context(config, api, KeyRing(api, config, metrics), metrics)
    tasks: list[asyncio.Task[None]] = []
    runners: list[Any] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kube.login(config.kubeconfig)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, retry: int, **_: Any) -> None:
        configure(settings, config)
        ctx.health.set("keyring", False)
        try:
            await ctx.ring.ensure()
        except kube.ApiError as e:
            raise kopf.TemporaryError(f"key ring: {e}", delay=config.retry_delay(retry)) from None
        if not runners:
            runners.append(await http.start(ctx))
        tasks.append(asyncio.create_task(ctx.ring.run(), name="key ring"))
        ctx.health.set("keyring", True)
        newest = ctx.ring.newest
        log.info("key ring: %d keys, newest %s; serving http on %s:%d",
                 len(ctx.ring.keys), newest.name if newest else "-", config.http_host,
                 config.http_port)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        ctx.health.set("keyring", False)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for runner in runners:
            await runner.cleanup()
        await api.close()

    sealed.register(registry, ctx)
    return registry, ctx


def run(config: Config) -> None:
    """Run the operator until SIGTERM/SIGINT."""
    registry, _ = build(config)
    settings = kopf.OperatorSettings()
    configure(settings, config)
    namespaces = list(config.watch_namespaces)
    kopf.run(registry=registry, settings=settings, standalone=True,
             clusterwide=not namespaces, namespaces=namespaces)
