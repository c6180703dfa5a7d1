"""The HTTP front of the emulator: an aiohttp application routing the Kubernetes REST paths.

``/api/v1/...`` and ``/apis/<group>/<version>/...`` are parsed into (resource, namespace, name,
subresource) and a verb; the :class:`~.store.Store` does the work; every failure is a ``Status``
body. Besides the resources, it serves discovery, ``/version``, ``/healthz``/``/readyz``/``/livez``
and a minimal ``/openapi/v3`` (see :mod:`.openapi`). Request bodies are JSON (YAML is accepted
too), and so is protobuf for the built-in kinds (:mod:`.protobuf`; answers are JSON, which
clients that prefer protobuf accept); a custom resource in protobuf is the apiserver's 400.

Subresources other than ``status`` go through :meth:`Emulator.subresource` (TokenRequest,
services/proxy), create-only kinds that are never stored through :meth:`Emulator.virtual`
(TokenReview, SelfSubjectReview), and :meth:`Emulator.handle` is the one place every request
passes: the test-only control endpoints under ``/_emulator/`` (audit log, faults, token clock),
bearer-token authentication, the audit record and the fault mode (:mod:`.auth`, :mod:`.audit`,
:mod:`.faults`). Its added cost per request does not depend on the stored objects.

Test-only endpoints (outside the Kubernetes paths; never authenticated, audited or faulted):

* ``GET /_emulator/audit[?serviceAccount=ns/name]`` — ``{"items": [...], "dropped": N}``;
  ``GET /_emulator/audit/counts[?serviceAccount=ns/name]`` — ``{"counts": {verb: {resource:
  N}}, "total": N}``, every call counted (none dropped); ``DELETE /_emulator/audit`` empties
  both;
* ``GET|POST|DELETE /_emulator/faults`` — the active rules; add rules (see :mod:`.faults`); clear;
* ``GET|DELETE /_emulator/malformed`` — the requests refused as malformed (400, or 415 for a
  body type no apiserver takes): a client that sends one relies on a leniency somewhere;
* ``POST /_emulator/clock`` ``{"advanceSeconds": S}`` — moves the token clock forward (expiry).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from . import (
    admission,
    discovery,
    errors,
    fieldmanager,
    kinds,
    listing,
    openapi,
    protobuf,
    proxy,
    views,
    watch,
)
from .audit import AuditLog, RequestInfo, request_info
from .auth import InvalidToken, TokenAuthority, User, unauthorized
from .errors import ApiError
from .faults import Faults
from .params import go_bool, typed_query
from .patch import apply_patch, check_patch_type
from .resources import ResourceType
from .selectors import combine, field_selector, label_selector
from .store import Obj, Store, Track

log = logging.getLogger("k8s-emulator")
JSON_TYPES = (
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "",
)


def _same(obj: Any) -> Any:
    return obj


# the authenticated user of the request being served (None: the admin), for admission
_requester: ContextVar[User | None] = ContextVar("requester", default=None)


def _json(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = (
        {"Warning": ", ".join(f"299 - {json.dumps(w)}" for w in warnings)} if warnings else None
    )
    return web.Response(
        body=watch.encoded(obj) or json.dumps(obj, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class Emulator:
    """One emulated cluster: a store and the aiohttp app serving it."""

    def __init__(
        self,
        *,
        history: int = 10_000,
        bookmark_interval: float = 60.0,
        cache_init_seconds: float = 0.0,
        kube_controllers: bool = True,
        log_requests: bool = False,
        issuer: str | None = None,
        api_audiences: list[str] | None = None,
        scheme: str = "http",
        admission_plugins: list[str] | None = None,
        audit_limit: int = 100_000,
    ) -> None:
        self.store = Store(
            history=history,
            defer=self._defer,
            cache_init_seconds=cache_init_seconds,
            kube_controllers=kube_controllers,
        )
        self.bookmark_interval = bookmark_interval
        self.log_requests = log_requests
        self.scheme = scheme
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_cleanup.append(self._close_session)
        self.address = "127.0.0.1:0"
        self.tokens = TokenAuthority(
            self.store, lambda: issuer or f"{self.scheme}://{self.address}", api_audiences
        )
        self.audit = AuditLog(audit_limit)
        self.faults = Faults()
        # Requests refused as malformed (400, 415): a client that sends one relies on leniency.
        self.malformed: deque[dict[str, Any]] = deque(maxlen=1000)
        self.watches: set[watch.StreamWatcher] = set()
        self._session: aiohttp.ClientSession | None = None
        self.admission = admission.plugins(admission_plugins or [], self.store, self._checked)
        if self.admission:
            self.store.admit = self._admit

    def _admit(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        subresource: str | None,
        new: Obj,
        old: Obj | None,
    ) -> None:
        for plugin in self.admission:
            plugin.admit(_requester.get(), rt, namespace, name, subresource, new, old)

    def _checked(
        self, user: User, verb: str, group: str, resource: str, namespace: str, name: str
    ) -> None:
        """An admission plugin's authorization check, in the audit log (``admission``)."""
        plural, _, sub = resource.partition("/")
        info = RequestInfo(True, verb, "", group, "", namespace, plural, sub, name)
        self.audit.record(user.username, user.service_account, info)["admission"] = True

    async def _close_session(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _defer(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            requester = _requester.set(None)  # the emulator's own controllers, not the caller
            try:
                fn()
            except ApiError as e:  # e.g. GC of an object deleted meanwhile
                log.debug("background step failed: %s", e)
            finally:
                _requester.reset(requester)

        try:
            asyncio.get_running_loop().call_soon(run)
        except RuntimeError:
            run()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        record: dict[str, Any] | None = None
        try:
            if request.path.startswith("/_emulator/"):
                resp = await self._control(request)
            else:
                user = self._authenticate(request)
                username = user.username if user else "admin"
                sa = user.service_account if user else ""
                info = None
                if user is not None or self.faults.rules:
                    info = request_info(request.method, request.path, request.query)
                if user is not None and info is not None:
                    record = self.audit.record(username, sa, info)
                if self.faults.rules and info is not None:
                    delay, failure, headers = self.faults.pick(info, username, sa)
                    if delay:
                        await asyncio.sleep(delay)
                    if failure is not None:
                        raise _Fault(failure, headers)
                request["user"] = user
                _requester.set(user)
                resp = await self._route(request)
        except _Fault as f:
            resp = web.Response(
                body=f.error.body(),
                status=f.error.code,
                content_type="application/json",
                headers=f.headers,
            )
        except ApiError as e:
            resp = web.Response(body=e.body(), status=e.code, content_type="application/json")
            retry = e.details.get("retryAfterSeconds")
            if retry:  # the apiserver's responsewriters copy it into the header
                resp.headers["Retry-After"] = str(retry)
        if record is not None:
            record["code"] = resp.status
        if resp.status == 400 or (
            resp.status == 415 and protobuf.GAP not in (getattr(resp, "text", "") or "")
        ):
            # malformed for any apiserver, whatever the state (a protobuf field the emulator
            # does not decode is our gap, not theirs)
            self.malformed.append(
                {
                    "method": request.method,
                    "path": request.path_qs,
                    "userAgent": request.headers.get("User-Agent", ""),
                    "code": resp.status,
                    "message": getattr(resp, "text", "") or "",
                }
            )
        if self.log_requests:
            ms = (time.perf_counter() - started) * 1000
            print(
                f"{request.method} {request.path_qs} {request.content_type} -> {resp.status} "
                f"({ms:.1f} ms)",
                flush=True,
            )
        return resp

    def _authenticate(self, request: web.Request) -> User | None:
        """The service account of a bearer token of this cluster; None for any other credential.

        A token that claims this cluster's issuer but does not validate is 401, as on an
        apiserver; other tokens (the kubeconfig's admin token) and no token are the test's admin.
        """
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[7:].strip()
        if token.count(".") != 2 or not self.tokens.is_ours(token):
            return None
        try:
            return self.tokens.validate(token)[0]
        except InvalidToken:
            raise unauthorized() from None

    async def _control(self, request: web.Request) -> web.StreamResponse:
        """The test-only endpoints under ``/_emulator/`` (see the module docstring)."""
        path, method = request.path.rstrip("/"), request.method
        if path == "/_emulator/audit":
            if method == "DELETE":
                self.audit.clear()
                return _json({"items": [], "dropped": 0})
            if method == "GET":
                want = request.query.get("serviceAccount")
                items = [r for r in self.audit if not want or r["serviceAccount"] == want]
                return _json({"items": items, "dropped": self.audit.dropped})
        elif path == "/_emulator/audit/counts" and method == "GET":
            counts = self.audit.by_verb(request.query.get("serviceAccount"))
            return _json({"counts": counts,
                          "total": sum(n for c in counts.values() for n in c.values())})
        elif path == "/_emulator/malformed":
            if method == "DELETE":
                self.malformed.clear()
            if method in ("GET", "DELETE"):
                return _json({"items": list(self.malformed)})
        elif path == "/_emulator/faults":
            if method == "DELETE":
                self.faults.clear()
            elif method == "POST":
                try:
                    drop = self.faults.add(await self._body(request))
                except (TypeError, ValueError) as e:
                    raise errors.bad_request(f"invalid fault: {e}") from None
                for watcher in list(self.watches) if drop else []:
                    watcher.drop()
            if method in ("GET", "POST", "DELETE"):
                rules = [r.describe() for r in self.faults.rules]
                return _json({"rules": rules, "injected": self.faults.injected})
        elif path == "/_emulator/clock" and method == "POST":
            body = await self._body(request)
            self.tokens.offset += float((body or {}).get("advanceSeconds", 0))
            return _json({"offsetSeconds": self.tokens.offset})
        else:
            raise errors.no_such_resource()
        raise errors.method_not_allowed(method)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/.well-known/openid-configuration":
            return _json(self.tokens.openid_configuration())
        if path == "/openid/v1/jwks":
            resp = _json(self.tokens.jwks())
            resp.content_type = "application/jwk-set+json"
            return resp
        if path == "/version":
            return _json(discovery.VERSION)
        if path == "/api":
            return _json(discovery.api_versions(request.host))
        if path == "/apis":
            return _json(discovery.api_group_list(self.store.registry))
        if path == "/openapi/v2":
            return openapi.v2(request.headers.get("Accept", ""))
        if path.startswith("/openapi/"):
            doc = openapi.document(self.store.registry, path, request.query)
            if doc is None:
                raise errors.no_such_resource()
            return _json(doc)
        segs = path.strip("/").split("/")
        if segs[0] == "api" and len(segs) >= 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 2:
            if len(segs) == 2:
                doc = discovery.api_group(self.store.registry, segs[1])
                if doc is None:
                    raise errors.no_such_resource()
                return _json(doc)
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise errors.no_such_resource()
        if not rest:
            doc = discovery.api_resource_list(self.store.registry, group, version)
            if doc is None:
                raise errors.no_such_resource()
            return _json(doc)
        rt, namespace, name, sub = self._resolve(group, version, rest)
        return await self._serve(request, rt, version, namespace, name, sub)

    def _resolve(
        self, group: str, version: str, rest: list[str]
    ) -> tuple[ResourceType, str, str, str]:
        reg = self.store.registry
        if rest[0] == "namespaces" and len(rest) >= 3:
            rt = reg.get(group, version, rest[2])
            proxied = len(rest) > 5 and rest[4] == "proxy"  # .../services/x/proxy/<path>
            if rt is not None and rt.namespaced and (len(rest) <= 5 or proxied):
                return (
                    rt,
                    rest[1],
                    (rest[3] if len(rest) > 3 else ""),
                    (rest[4] if len(rest) > 4 else ""),
                )
        rt = reg.get(group, version, rest[0])
        if rt is None or len(rest) > 3 or (rt.namespaced and len(rest) > 1):
            raise errors.no_such_resource()
        return rt, "", (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")

    async def _body(
        self, request: web.Request, rt: ResourceType | None = None, version: str = ""
    ) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if ctype == protobuf.CONTENT_TYPE and rt is not None:
            if rt.custom:  # no protobuf form: the apiserver's decoder fails (400)
                raise protobuf.custom_resource_error(raw, rt.api_version(version), rt.kind)
            return protobuf.decode(raw, rt.api_version(version), rt.kind)
        if ctype.startswith("application/vnd.kubernetes.protobuf"):
            raise errors.unsupported_media_type(ctype, ["application/json", "application/yaml"])
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"the body of the request could not be decoded: {e}") from None

    async def _serve(
        self,
        request: web.Request,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        sub: str,
    ) -> web.StreamResponse:
        q = request.query
        typed_query(q)
        method = request.method
        if rt.verbs == ["create"]:
            return await self.virtual(request, rt, version, name)
        if sub and sub != "status":
            return await self.subresource(request, rt, namespace, name, sub)
        if sub == "status" and not rt.status_subresource:
            raise errors.no_such_resource()
        dry_run = q.get("dryRun") == "All"
        strict = q.get("fieldValidation") == "Strict"
        store = self.store
        # A view (events.k8s.io Events) is served from another resource's storage: bodies are
        # converted on the way in, objects on the way out, and its own rules checked first.
        view = views.view_of(rt, store.registry)
        srt = view.storage if view else rt
        inn: Callable[[Any], Any] = view.to_storage if view else _same
        out: Callable[[Obj], Obj] = view.from_storage if view else _same
        # managed fields are recorded in the storage's terms (a view's are core/v1 Events')
        tracked_version = srt.storage_version if view else version

        def managed_by(options: str) -> tuple[str, Track]:
            manager = fieldmanager.manager_of(q, request.headers.get("User-Agent", ""), options)
            return manager, fieldmanager.tracker(store, srt, tracked_version, sub, manager)

        if not name:
            if method == "GET":
                store.check_ready(srt.key)
                match = combine(
                    label_selector(q.get("labelSelector")),
                    field_selector(q.get("fieldSelector"), srt.key),
                )
                if go_bool(q.get("watch")):
                    return await watch.serve(
                        request,
                        store,
                        srt,
                        version,
                        namespace,
                        match,
                        self.bookmark_interval,
                        self.watches,
                        view,
                    )
                selecting = bool(q.get("labelSelector") or q.get("fieldSelector"))
                page = await listing.serve(store, srt, namespace, match, selecting, q,
                                           self.faults.list_scan)
                return _json(self._list(rt, version, [out(o) for o in page.items], page.rv,
                                        page))
            if method == "POST":
                body = await self._body(request, rt, version)
                if view:
                    kinds.check_view_create(rt, namespace, body)
                _, track = managed_by("CreateOptions")
                obj, warnings = store.create(
                    srt, namespace, inn(body), dry_run=dry_run, strict=strict, track=track
                )
                return _json(self._out(rt, version, out(obj)), 201, self._warn(q, warnings))
            if method == "DELETE":
                return await self._delete_collection(request, rt, version, namespace, srt, out)
            raise errors.method_not_allowed(method)
        if method == "GET":
            return _json(self._out(rt, version, out(store.get(srt, namespace, name))))
        if method == "PUT":
            body = await self._body(request, rt, version)
            _, track = managed_by("UpdateOptions")
            obj, warnings, created = store.put(
                srt, namespace, name, inn(body), subresource=sub or None, dry_run=dry_run,
                strict=strict, track=track,
            )
            return _json(self._out(rt, version, out(obj)), 201 if created else 200,
                         self._warn(q, warnings))
        if method == "PATCH":
            check_patch_type(request.content_type, rt.custom)
            force = fieldmanager.check_patch_options(q, request.content_type)
            body = await self._body(request)
            manager, track = managed_by("PatchOptions")
            if request.content_type == fieldmanager.APPLY:
                obj, warnings, created = fieldmanager.apply(
                    store, srt, tracked_version, namespace, name, inn(body), manager, force, sub,
                    dry_run=dry_run, strict=strict)
                return _json(self._out(rt, version, out(obj)), 201 if created else 200,
                             self._warn(q, warnings))
            if view:  # the patch applies to the object as this API shows it
                shown = out(store.get(srt, namespace, name))
                patched = inn(apply_patch(request.content_type, shown, body, rt.custom))
                obj, warnings = store.update(srt, namespace, name, patched, dry_run=dry_run,
                                             strict=strict, track=track)
            else:
                obj, warnings = store.patch(
                    rt,
                    namespace,
                    name,
                    request.content_type,
                    body,
                    subresource=sub or None,
                    dry_run=dry_run,
                    strict=strict,
                    track=track,
                )
            return _json(self._out(rt, version, out(obj)), 200, self._warn(q, warnings))
        if method == "DELETE":
            options = await self._body(request, rt, version) if request.can_read_body else None
            options = options if isinstance(options, dict) else {}
            obj = store.delete(
                srt,
                namespace,
                name,
                propagation=self._propagation(q, options),
                preconditions=options.get("preconditions"),
                dry_run=dry_run or "All" in (options.get("dryRun") or []),
            )
            return _json(self._deleted(rt, version, out(obj)))
        raise errors.method_not_allowed(method)

    async def subresource(
        self, request: web.Request, rt: ResourceType, namespace: str, name: str, sub: str
    ) -> web.StreamResponse:
        """Subresources other than ``status``: ``serviceaccounts/token``, ``services/proxy``."""
        if rt.key == ("", "serviceaccounts") and sub == "token":
            if request.method != "POST":
                raise errors.method_not_allowed(request.method)
            body = await self._body(request, rt, rt.storage_version)
            return _json(self.tokens.token_request(namespace, name, body), 201)
        if rt.key == ("", "services") and sub == "proxy":
            _, svc_name, _ = proxy.split_scheme_name_port(name)
            service = self.store.get(rt, namespace, svc_name)
            # the rest of the raw path, encoded as the client sent it:
            # ["", "api", "v1", "namespaces", ns, "services", name, "proxy", <tail>...]
            tail = "/".join(request.raw_path.split("?", 1)[0].split("/")[8:])
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False
                )
            return await proxy.forward(self._session, request, service, name, tail)
        raise errors.no_such_resource()

    async def virtual(
        self, request: web.Request, rt: ResourceType, version: str, name: str
    ) -> web.StreamResponse:
        """Create-only kinds that are answered, never stored: TokenReview, SelfSubjectReview."""
        if request.method != "POST" or name:
            raise errors.method_not_allowed(request.method)
        body = await self._body(request, rt, version)
        if rt.key == ("authentication.k8s.io", "tokenreviews"):
            return _json(self.tokens.token_review(body), 201)
        if rt.key == ("authentication.k8s.io", "selfsubjectreviews"):
            user: User | None = request.get("user")
            info = (
                user.as_dict()
                if user
                else {"username": "admin", "groups": ["system:masters", "system:authenticated"]}
            )
            return _json(
                {
                    "kind": "SelfSubjectReview",
                    "apiVersion": rt.api_version(version),
                    "metadata": {"creationTimestamp": None},
                    "status": {"userInfo": info},
                },
                201,
            )
        raise errors.no_such_resource()

    async def _delete_collection(
        self,
        request: web.Request,
        rt: ResourceType,
        version: str,
        namespace: str,
        srt: ResourceType,
        out: Callable[[Obj], Obj],
    ) -> web.StreamResponse:
        """DELETE on a collection: each selected object is deleted (finalizers honoured)."""
        q = request.query
        match = combine(
            label_selector(q.get("labelSelector")), field_selector(q.get("fieldSelector"), srt.key)
        )
        items, _ = self.store.list(srt, namespace, match)
        done = [
            out(
                self.store.delete(
                    srt,
                    o["metadata"].get("namespace", ""),
                    o["metadata"]["name"],
                    propagation=q.get("propagationPolicy"),
                )
            )
            for o in items
        ]
        return _json(self._list(rt, version, done, self.store.rv))

    @staticmethod
    def _propagation(q: Any, options: Obj) -> str | None:
        policy = q.get("propagationPolicy") or options.get("propagationPolicy")
        if policy is None and (
            q.get("orphanDependents") == "true" or options.get("orphanDependents")
        ):
            return "Orphan"
        return str(policy) if policy else None

    @staticmethod
    def _warn(q: Any, warnings: list[str]) -> list[str] | None:
        return None if q.get("fieldValidation") == "Ignore" else warnings

    @staticmethod
    def _out(rt: ResourceType, version: str, obj: Obj) -> Obj:
        api_version = rt.api_version(version)
        return obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}

    def _list(self, rt: ResourceType, version: str, items: list[Obj], rv: int,
              page: listing.Page | None = None) -> Obj:
        if rt.custom:
            items = [self._out(rt, version, o) for o in items]
        else:  # typed lists of built-in kinds carry no kind/apiVersion on their items
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if page is not None and page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version(version),
            "metadata": meta,
            "items": items,
        }

    def _deleted(self, rt: ResourceType, version: str, obj: Obj) -> Obj:
        meta = obj["metadata"]
        if rt.custom or (meta.get("deletionTimestamp") and self._exists(rt, obj)):
            return self._out(rt, version, obj)
        details = {"name": meta["name"], "kind": rt.plural, "uid": meta["uid"]}
        if rt.group:
            details["group"] = rt.group
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def _exists(self, rt: ResourceType, obj: Obj) -> bool:
        try:
            self.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            return True
        except ApiError:
            return False


class _Fault(Exception):
    def __init__(self, error: ApiError, headers: dict[str, str]) -> None:
        self.error, self.headers = error, headers


async def start(
    emulator: Emulator, host: str = "127.0.0.1", port: int = 0, ssl_context: Any = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(
        emulator.app, access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    if ssl_context is not None:
        emulator.scheme = "https"
    await site.start()
    server = site._server
    assert server is not None
    bound = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    emulator.address = f"{host}:{bound}"
    return runner, bound
