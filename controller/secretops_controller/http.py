"""The controller's HTTP endpoints (aiohttp), started with the operator.

* ``GET /v1/cert`` — the recipients file (``text/plain``): the newest key of the ring, for
  ``secretops seal --cert URL`` (or ``--fetch-cert`` through the API server's service proxy).
* ``POST /v1/verify`` — body: a SealedSecret (YAML or JSON). 200 ``{"ok": true, "values": n}``
  if this cluster's keys open every value and the templates parse; 409 ``{"ok": false,
  "reason": …, "message": …}`` otherwise. No value is ever returned, and templates are not
  rendered: anyone who can reach the endpoint could otherwise probe a value with a template
  that fails or not depending on it.
* ``POST /v1/rotate`` — body: a SealedSecret. 200: the same SealedSecret sealed again for the
  newest key, plus the age recipients in ``spec.recipients`` that are not keys of this ring
  (other clusters, break-glass keys; SSH recipients are listed only by fingerprint and cannot
  be kept). YAML unless ``Accept: application/json``. It never binds a template: each value
  keeps its binding (a template other than the one the values are bound to is refused, 409
  ``TemplateNotBound``), and values sealed before templates were bound stay unbound.
* ``GET /healthz`` — 200 ``ok`` once the key ring is loaded (made by the leader, or read by a
  replica that does not lead: it is healthy and serves these endpoints), else 503; with
  ``--no-sealed-secrets`` (no key ring; the three endpoints above answer 404), once serving.
  The header ``X-Secretops-Leader: true|false`` says whether this replica leads;
  ``/healthz?verbose`` adds ``leader: …`` and one line per check to the body.
* ``GET /metrics`` — Prometheus text format (see :mod:`secretops_controller.runtime`).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from secretops.errors import SecretOpsError
from secretops.sealing import reseal_sealed, verify_sealed
from secretops.sealing.serialize import dump, load_documents
from secretops_controller.context import Context
from secretops_controller.sealed import reason_of

MAX_BODY = 1 << 20


def _sealed_from(data: bytes) -> dict[str, Any]:
    docs = load_documents(data, "request body")
    if len(docs) != 1:
        raise SecretOpsError("send exactly one SealedSecret")
    return docs[0]


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body) + "\n",
                        content_type="application/json")


def _refusal(e: SecretOpsError) -> web.Response:
    detail = f"{e.path}: {e.message}" if e.path else e.message
    return _json(409, {"ok": False, "reason": reason_of(e).value, "message": detail})


def make_app(ctx: Context) -> web.Application:
    async def cert(_: web.Request) -> web.Response:
        text = ctx.ring.recipients_file()
        if not text:
            return web.Response(status=503, text="the key ring is not loaded yet\n")
        return web.Response(text=text, content_type="text/plain")

    async def verify(request: web.Request) -> web.Response:
        try:
            sealed = _sealed_from(await request.read())
            count = verify_sealed(sealed, ctx.ring.identities, render=False)
        except SecretOpsError as e:
            return _refusal(e)
        return _json(200, {"ok": True, "values": count})

    async def rotate(request: web.Request) -> web.Response:
        newest = ctx.ring.newest
        if newest is None:
            return web.Response(status=503, text="the key ring is not loaded yet\n")
        ours = {k.recipient for k in ctx.ring.keys}
        try:
            sealed = _sealed_from(await request.read())
            listed = (sealed.get("spec") or {}).get("recipients") or []
            keep = [r for r in listed if isinstance(r, str) and r.startswith("age1")
                    and r not in ours]
            # never binds: a value keeps the template binding it has (an edited template is
            # refused), and a version-1 value stays unbound, whoever asks
            out = reseal_sealed(sealed, ctx.ring.identities, [newest.recipient, *keep],
                                keep_unbound=True)
        except SecretOpsError as e:
            return _refusal(e)
        if "json" in request.headers.get("Accept", ""):
            return web.Response(body=dump(out, "json"), content_type="application/json")
        return web.Response(body=dump(out, "yaml"), content_type="application/yaml")

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
