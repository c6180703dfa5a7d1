"""A minimal ``/openapi/v3``: an index of group-versions, each with a document per resource path.

kubectl reads it to decide whether the server validates fields itself (the ``fieldValidation``
query parameter of PATCH), and then sends ``fieldValidation=Strict`` instead of validating the
manifest client-side. The component schemas are empty objects (``kubectl explain`` shows nothing
useful); custom resources carry their CRD schema.

``/openapi/v2`` is served without definitions (:func:`v2`): kubectl fetches it to validate a
``kind: List`` client-side (it fails without it) and skips validation of kinds it does not find,
so the items of a List are checked by the server only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .resources import Registry

_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def v2(accept: str) -> web.Response:
    """An OpenAPI v2 document without definitions: empty protobuf (client-go asks for that) or
    JSON."""
    if "protobuf" in accept:
        return web.Response(body=b"", content_type=_V2_PROTOBUF)
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.36.2"}, "paths": {},
           "definitions": {}}
    return web.json_response(doc)


def document(registry: Registry, path: str, query: Any) -> dict[str, Any] | None:
    if path == "/openapi/v3":
        paths = {}
        for rt in registry.all():
            for v in rt.versions:
                gv = f"apis/{rt.group}/{v}" if rt.group else f"api/{v}"
                paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(registry, gv)}"}
        return {"paths": paths}
    prefix = "/openapi/v3/"
    if not path.startswith(prefix):
        return None
    gv = path[len(prefix) :]
    parts = gv.split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        gvk = {"group": rt.group, "version": version, "kind": rt.kind}
        ref = f"{_java_group(rt.group)}.{version}.{rt.kind}"
        schema = rt.schemas[version].openapi if version in rt.schemas else {"type": "object"}
        schemas[ref] = {**schema, "x-kubernetes-group-version-kind": [gvk]}
        base = f"/{'apis/' + rt.group if rt.group else 'api'}/{version}"
        item = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{base}/{rt.plural}/{{name}}"
        )
        params = [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
        ]
        op = {
            "parameters": params,
            "x-kubernetes-group-version-kind": gvk,
            "responses": {
                "200": {
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}
                    }
                }
            },
        }
        paths[item] = {
            "get": {"x-kubernetes-group-version-kind": gvk},
            "put": op,
            "patch": op,
            "delete": {"x-kubernetes-group-version-kind": gvk},
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.34.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _java_group(group: str) -> str:
    if not group:
        return "io.k8s.api.core"
    return ".".join(reversed(group.split(".")))


def _hash(registry: Registry, gv: str) -> str:
    return format(abs(hash((gv, len(registry.all())))), "x")
