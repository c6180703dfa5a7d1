"""The controller's HTTP endpoints (aiohttp), started with the operator.

* ``GET /v1/cert`` — the recipients file (``text/plain``): the newest key of the ring, for
  ``secretops seal --cert URL`` (or ``--fetch-cert`` through the API server's service proxy).
* ``POST /v1/verify`` — body: a SealedSecret (YAML or JSON). 200 ``{"ok": true, "values": n}``
  if this cluster's keys open every value and the templates parse; 409 ``{"ok": false,
  "reason": …, "message": …}`` otherwise. No value is ever returned, and templates are not
  rendered: anyone who can reach the endpoint could otherwise probe a value with a template
  that fails or not depending on it.
* ``POST /v1/rotate`` — body: a SealedSecret. 200: the same SealedSecret sealed again for the
  newest key and the ``--reseal-recipient`` age recipients (other clusters, break-glass keys)
  — never for a recipient the body lists: ``spec.recipients`` is not authenticated, and
  anyone who can reach the port holds SealedSecrets (they are in git), so sealing for a key
  the caller names would hand them every value. YAML unless ``Accept: application/json``.
  It never binds a template: each value keeps its binding (a template other than the one the
  values are bound to is refused, 409 ``TemplateNotBound``), and values sealed before
  templates were bound stay unbound.
* ``GET /healthz`` — 200 ``ok`` once the key ring is loaded (made by the leader, or read by a
  replica that does not lead: it is healthy and serves these endpoints), else 503; with
  ``--no-sealed-secrets`` (no key ring; the three endpoints above answer 404), once serving.
  The header ``X-Secretops-Leader: true|false`` says whether this replica leads;
  ``/healthz?verbose`` adds ``leader: …`` and one line per check to the body.
* ``GET /metrics`` — Prometheus text format (:mod:`secretops_controller.metrics`, docs/metrics.md).

The POST endpoints take unauthenticated input, so each is bounded before and while it works:
a body over 1 MiB is refused (413) before it is read; each endpoint serves at most
``--request-workers`` requests at once and refuses more at once (429, ``Retry-After: 1``)
rather than queueing them; the body must arrive within ``--request-timeout``; and the body is
parsed, unsealed and re-sealed in a worker process (:mod:`secretops.sealing.workers`) killed
past ``--request-timeout`` (503) or refused past its memory limit (422), never on the event
loop — so ``/healthz``, ``/metrics`` and every reconcile carry on meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing.workers import Busy, WorkerError, WorkerTimeout
from secretops_controller.context import Context
from secretops_controller.sealed import reason_of

MAX_BODY = 1 << 20


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None
          ) -> web.Response:
    return web.Response(status=status, text=json.dumps(body) + "\n",
                        content_type="application/json", headers=headers)


def _refusal(e: SecretOpsError) -> web.Response:
    detail = f"{e.path}: {e.message}" if e.path else e.message
    return _json(409, {"ok": False, "reason": reason_of(e).value, "message": detail})


def _limit(status: int, reason: str, message: str, **headers: str) -> web.Response:
    return _json(status, {"ok": False, "reason": reason, "message": message}, headers)


def _error_of(reply: dict[str, Any]) -> SecretOpsError:
    err = reply.get("error") or {}
    try:
        code = ExitCode(int(err.get("code", 1)))
    except (TypeError, ValueError):
        code = ExitCode.GENERIC
    path = err.get("path")
    return SecretOpsError(str(err.get("message") or "refused"), code=code,
                          path=path if isinstance(path, str) else None)


def make_app(ctx: Context) -> web.Application:
    timeout = ctx.config.request_timeout
    slots = {name: asyncio.Semaphore(ctx.config.request_workers) for name in ("verify", "rotate")}

    async def work(request: web.Request, name: str, job: dict[str, Any]
                   ) -> dict[str, Any] | web.Response:
        """Bounded: size, then a slot of this endpoint, then the body, then a worker."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _limit(413, "TooLarge", "the body is larger than 1 MiB")
        slot = slots[name]
        if slot.locked():  # refused at once: requests never pile up waiting
            return _limit(429, "Busy", f"busy with other /v1/{name} requests; try again",
                          **{"Retry-After": "1"})
        async with slot:
            try:
                body = await asyncio.wait_for(request.read(), timeout)
            except web.HTTPRequestEntityTooLarge:
                return _limit(413, "TooLarge", "the body is larger than 1 MiB")
            except TimeoutError:
                return _limit(408, "Timeout", "the body did not arrive in time")
            job["body"] = base64.b64encode(body).decode("ascii")
            job["identities"] = [str(i) for i in ctx.ring.identities.identities]
            try:
                reply = await ctx.requests.acall(job)
            except Busy:
                return _limit(429, "Busy", "busy with other requests; try again",
                              **{"Retry-After": "1"})
            except WorkerTimeout:
                return _limit(503, "Timeout", f"the request took longer than {timeout:g} s")
            except WorkerError:
                return _limit(422, "TooCostly", "the request needs more memory than allowed")
        if "error" in reply:
            return _refusal(_error_of(reply))
        ok = reply.get("ok")
        if not isinstance(ok, dict):
            return _limit(422, "TooCostly", "the request could not be handled")
        return ok

    async def cert(_: web.Request) -> web.Response:
        text = ctx.ring.recipients_file()
        if not text:
            return web.Response(status=503, text="the key ring is not loaded yet\n")
        return web.Response(text=text, content_type="text/plain")

    async def verify(request: web.Request) -> web.Response:
        if not ctx.ring.identities.identities:
            return web.Response(status=503, text="the key ring is not loaded yet\n")
        out = await work(request, "verify", {"op": "verify"})
        if isinstance(out, web.Response):
            return out
        return _json(200, {"ok": True, "values": int(out.get("values") or 0)})

    async def rotate(request: web.Request) -> web.Response:
        newest = ctx.ring.newest
        if newest is None or not ctx.ring.identities.identities:
            return web.Response(status=503, text="the key ring is not loaded yet\n")
        fmt = "json" if "json" in request.headers.get("Accept", "") else "yaml"
        # the newest key and the configured recipients only: spec.recipients in the body is
        # the caller's to write, and sealing for a key it names would hand it every value
        out = await work(request, "rotate", {
            "op": "reseal", "format": fmt,
            "recipients": [newest.recipient, *ctx.config.reseal_recipients]})
        if isinstance(out, web.Response):
            return out
        body = base64.b64decode(str(out.get("body") or ""))
        return web.Response(body=body, content_type=f"application/{fmt}")

    async def healthz(request: web.Request) -> web.Response:
        health = ctx.health
        headers = {}
        extra = ""
        if health.leader is not None:
            headers["X-Secretops-Leader"] = "true" if health.leader else "false"
            extra = f"leader: {headers['X-Secretops-Leader']}\n"
        if "verbose" in request.query:
            extra += "".join(f"{k}: {'ok' if v else 'failing'}\n"
                             for k, v in sorted(health.checks.items()))
        else:
            extra = ""
        if health.ok:
            return web.Response(text="ok\n" + extra, headers=headers)
        failing = ", ".join(k for k, v in health.checks.items() if not v) or "starting"
        return web.Response(status=503, text=f"not ready: {failing}\n" + extra, headers=headers)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(ctx.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=MAX_BODY)
    if ctx.config.sealed_secrets:  # off (--no-sealed-secrets): no key ring, so 404
        app.router.add_get("/v1/cert", cert)
        app.router.add_post("/v1/verify", verify)
        app.router.add_post("/v1/rotate", rotate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def start(ctx: Context) -> web.AppRunner:
    """Serve on ``--http-host:--http-port``; stop with ``await runner.cleanup()``."""
    runner = web.AppRunner(make_app(ctx), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, ctx.config.http_host, ctx.config.http_port).start()
    return runner
