"""``services/proxy``: ``/api/v1/namespaces/<ns>/services/<[scheme:]name[:port]>/proxy/<path>``.

A real apiserver forwards to one of the Service's endpoints (a Pod IP and the port's
``targetPort``). The emulator has no Pods, so where a port goes is emulator-only configuration
carried by the Service in the test's manifests (never by the controller):

* the annotation ``emulator.secretops.dev/forward-to``: ``"127.0.0.1:PORT"`` for every port of
  the Service, or per port ``"http=127.0.0.1:P1,8081=127.0.0.1:P2"`` (service port name or
  number ``=`` address);
* otherwise the port's numeric ``targetPort`` (or its ``port``) on 127.0.0.1.

Only loopback addresses are accepted. The port is resolved as the apiserver resolves it: a
number must be one of the Service's ports (else 503 ``no service port N found``), a name must
name one, and no port means the Service's single unnamed port; a Service without a usable target
is 503 ``no endpoints available``; an unreachable target is 503 ``error trying to reach
service``. The caller's ``Authorization`` header is not passed on (the apiserver strips it once
it has authenticated the request).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from .errors import ApiError

FORWARD_ANNOTATION = "emulator.secretops.dev/forward-to"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "content-length",
    "content-encoding",
}


def unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def split_scheme_name_port(ident: str) -> tuple[str, str, str]:
    parts = ident.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise ApiError(400, "BadRequest", f"invalid service request {ident!r}")


def target(service: dict[str, Any], ident: str) -> tuple[str, str]:
    """(scheme, host:port) that ``ident`` (``[scheme:]name[:port]``) of this Service goes to."""
    scheme, name, port_str = split_scheme_name_port(ident)
    ports = list((service.get("spec") or {}).get("ports") or [])
    chosen: dict[str, Any] | None = None
    if port_str.isdigit():
        chosen = next((p for p in ports if str(p.get("port")) == port_str), None)
        if chosen is None:
            raise unavailable(f'no service port {port_str} found for service "{name}"')
    else:
        chosen = next((p for p in ports if (p.get("name") or "") == port_str), None)
    if chosen is None:
        raise unavailable(f'no endpoints available for service "{ident}"')
    annotation = ((service.get("metadata") or {}).get("annotations") or {}).get(FORWARD_ANNOTATION)
    address = ""
    if annotation:
        entries = [e.strip() for e in annotation.split(",") if e.strip()]
        if len(entries) == 1 and "=" not in entries[0]:
            address = entries[0]
        else:
            keys = {str(chosen.get("port")), chosen.get("name") or ""}
            for entry in entries:
                key, _, value = entry.partition("=")
                if key.strip() in keys:
                    address = value.strip()
    else:
        tp = chosen.get("targetPort", chosen.get("port"))
        if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
            address = f"127.0.0.1:{tp}"
    host = address.rpartition(":")[0]
    if not address or host not in LOOPBACK:
        raise unavailable(f'no endpoints available for service "{ident}"')
    return scheme or "http", address


async def forward(
    session: aiohttp.ClientSession,
    request: web.Request,
    service: dict[str, Any],
    ident: str,
    tail: str,
) -> web.Response:
    scheme, address = target(service, ident)
    url = f"{scheme}://{address}/{tail.lstrip('/')}"
    if request.query_string:
        url += "?" + request.query_string
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers["X-Forwarded-Uri"] = request.raw_path
    body = await request.read() if request.can_read_body else None
    try:
        async with session.request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as resp:
            payload = await resp.read()
            out_headers = {
                k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP
            }
            return web.Response(status=resp.status, body=payload, headers=out_headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise unavailable(f"error trying to reach service: {e}") from None
