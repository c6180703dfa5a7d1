"""LIST as the apiserver serves it: ``limit`` and ``continue`` pages over one consistent snapshot.

A port of the rules of ``k8s.io/apiserver`` — ``storage/etcd3/store.go`` (``GetList``),
``storage/continue.go`` (the token), ``storage/cacher`` (``shouldDelegateList``) and
``apis/meta/internalversion/validation`` (``ValidateListOptions``):

* ``resourceVersionMatch`` needs a ``resourceVersion`` and no ``continue``, is ``Exact`` or
  ``NotOlderThan``, and ``Exact`` is refused for ``resourceVersion=0``: 422 ``ListOptions``.
* Served from the watch cache (``resourceVersion=0``, or a ``NotOlderThan`` version without a
  limit): every item at the newest version, **``limit`` ignored**, no ``continue`` — the
  cacher does not page. A version newer than the server's waits 3 s, then 504.
* Served from etcd (a ``limit`` with any other ``resourceVersion``, a ``continue``, or
  ``Exact``): items in etcd key order (``namespace/name``), at most ``limit`` of them, with a
  ``continue`` token and — when no selector filtered the range — ``remainingItemCount``. Every
  page is of the snapshot of the first: the token carries its revision. ``resourceVersion=N``
  with a limit and no match, or ``Exact``, reads the snapshot at N. As etcd3's loop, a
  full page has a token whenever any key follows its last item, matching the selector or not:
  a selector that matches nothing after it gets a last page of **zero items** (no token).
* ``limit`` is a maximum, not a promise (``ListOptions.limit``: "may return fewer than the
  requested amount of items (up to zero items) in the event all requested objects are
  filtered out and clients should only use the presence of the continue field"): with the
  ``list_scan`` fault (:mod:`.faults`) a selecting page stops after that many keys, so a sparse
  selector gets short and even **empty pages with a token** — the contract clients must meet.
* A snapshot older than the store keeps (etcd compacts; here: older than the resource's watch
  cache window, ``--history`` events) is 410 ``Expired``: "The resourceVersion for the
  provided list is too old." for a version, and for a continue token "The provided continue
  parameter is too old ..." with a fresh token (revision -1: the rest at the newest version,
  possibly inconsistent) in the Status's ``metadata.continue``.
* The token is ``base64url(JSON{"v": "meta.k8s.io/v1", "rv": N, "start": KEY})`` with ``KEY``
  the last key looked at plus ``\\x00``; a malformed one is 400 "invalid continue token: continue
  key is not valid ...", and a ``continue`` with a ``resourceVersion`` other than ``""``/``"0"``
  is 400 "specifying resource version is not allowed when using continue".

Gaps are listed in docs/testing.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import posixpath
import time
from collections.abc import Callable
from typing import Any

from . import errors
from .errors import ApiError, Cause
from .resources import ResourceType
from .store import Obj, Store

EXACT, NOT_OLDER = "Exact", "NotOlderThan"
TOKEN_VERSION = "meta.k8s.io/v1"
TOO_OLD = "The resourceVersion for the provided list is too old."
CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)
TOO_LARGE_WAIT = 3.0  # the cacher's wait for a version it has not seen yet


class Page:
    """One LIST answer: the items, the snapshot's version, and the paging fields."""

    __slots__ = ("continue_token", "items", "remaining", "rv")

    def __init__(self, items: list[Obj], rv: int, continue_token: str = "",
                 remaining: int | None = None) -> None:
        self.items = items
        self.rv = rv
        self.continue_token = continue_token
        self.remaining = remaining


def validate(q: Any) -> None:
    """``ValidateListOptions`` (a list, not a watch): 422 ``ListOptions.meta.k8s.io``."""
    match, rv, cont = q.get("resourceVersionMatch") or "", q.get("resourceVersion") or "", \
        q.get("continue") or ""
    causes = []
    if match:
        field = "resourceVersionMatch"
        if not rv:
            causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                "forbidden unless resourceVersion is provided", field))
        if cont:
            causes.append(Cause("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                "forbidden when continue is provided", field))
        if match not in (EXACT, NOT_OLDER):
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{match}": '
                                'supported values: "Exact", "NotOlderThan", ""', field))
        if match == EXACT and rv == "0":
            causes.append(Cause("FieldValueForbidden", 'Forbidden: resourceVersionMatch '
                                '"exact" is forbidden for resourceVersion "0"', field))
    if causes:
        raise errors.invalid("ListOptions", "meta.k8s.io", "", causes)


def encode_token(start: str, rv: int) -> str:
    raw = json.dumps({"v": TOKEN_VERSION, "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_token(token: str) -> tuple[str, int]:
    """(start key, revision) of a continue token; 400 for a malformed one."""
    def bad(why: str) -> ApiError:
        return errors.bad_request(f"invalid continue token: continue key is not valid{why}")

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if "=" in token or "+" in token or "/" in token:
            raise binascii.Error("illegal base64 data")
        body = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise bad(f": {e}") from None
    if not isinstance(body, dict):
        raise bad(": not an object")
    if body.get("v") != TOKEN_VERSION:
        raise bad(f": server does not recognize this encoded version {body.get('v')}")
    rv, start = body.get("rv"), body.get("start")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0:
        raise bad(f": incorrect encoded start resourceVersion (version {TOKEN_VERSION})")
    if not isinstance(start, str) or not start:
        raise bad(f": encoded start key empty (version {TOKEN_VERSION})")
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key) != key:  # no climbing out of the resource's key range
        raise bad(f": {start}")
    return key[1:], rv


def _parse_rv(text: str) -> int:
    if not text.isdigit():
        raise errors.bad_request(
            f'invalid resource version: strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text)


def _too_large(store: Store, rv: int) -> ApiError:
    return ApiError(504, "Timeout",
                    f"Timeout: Too large resource version: {rv}, current: {store.rv}",
                    {"causes": [{"reason": "ResourceVersionTooLarge",
                                 "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


async def _fresh(store: Store, rv: int) -> None:
    deadline = time.monotonic() + TOO_LARGE_WAIT
    while store.rv < rv:
        if time.monotonic() >= deadline:
            raise _too_large(store, rv)
        await asyncio.sleep(0.05)


def _key(namespace: str, obj: Obj) -> str:
    """The object's etcd key relative to the request's range: ``name`` in one namespace (or
    cluster-scoped), ``namespace/name`` across all."""
    meta = obj["metadata"]
    ns = meta.get("namespace") or ""
    return meta["name"] if namespace or not ns else f"{ns}/{meta['name']}"


async def serve(store: Store, rt: ResourceType, namespace: str,
                match: Callable[[Obj], bool] | None, selecting: bool, q: Any,
                scan: int = 0) -> Page:
    """The page a LIST with query ``q`` gets; ``selecting``: a label or field selector was
    given (then no ``remainingItemCount``, as etcd cannot count what a filter keeps);
    ``scan``: the keys a selecting page looks at, at most (0: as many as it takes)."""
    scan = scan if selecting else 0
    validate(q)
    rv_text, want = q.get("resourceVersion") or "", q.get("resourceVersionMatch") or ""
    cont, limit = q.get("continue") or "", int(q.get("limit") or 0)
    if cont:
        if rv_text not in ("", "0"):
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue")
        start, token_rv = decode_token(cont)
        at = token_rv if token_rv > 0 else store.rv
        try:
            objects = store.snapshot(rt, namespace, at)
        except ApiError:
            error = errors.gone(CONTINUE_TOO_OLD)
            error.list_meta = {"continue": encode_token(start, -1)}
            raise error from None
        return _page(objects, namespace, match, selecting, limit, at, start, scan)
    if rv_text == "0" or (limit <= 0 and want != EXACT):
        # the watch cache: the newest version, the whole collection, limit ignored
        if rv_text not in ("", "0"):
            await _fresh(store, _parse_rv(rv_text))
        items, rv = store.list(rt, namespace, match)
        items.sort(key=lambda o: _key(namespace, o))
        return Page(items, rv)
    at = store.rv
    if rv_text:
        asked = _parse_rv(rv_text)
        if asked > store.rv:
            raise _too_large(store, asked)
        if want != NOT_OLDER:  # Exact, or the legacy exact read of a paged list
            at = asked
    try:
        objects = store.snapshot(rt, namespace, at)
    except ApiError:
        raise errors.gone(TOO_OLD) from None
    return _page(objects, namespace, match, selecting, limit, at, "", scan)


def _page(objects: list[Obj], namespace: str, match: Callable[[Obj], bool] | None,
          selecting: bool, limit: int, rv: int, start: str, scan: int = 0) -> Page:
    keyed = sorted(((_key(namespace, o), o) for o in objects), key=lambda ko: ko[0])
    if start:
        keyed = [(k, o) for k, o in keyed if k >= start]
    items: list[Obj] = []
    last = -1  # the last key looked at: the token starts after it
    for i, (_, obj) in enumerate(keyed):
        # etcd3: a full page ends before the next key, whether that one matches or not
        if limit > 0 and (len(items) == limit or (scan > 0 and i == scan)):
            break
        if match is None or match(obj):
            items.append(obj)
        last = i
    else:
        return Page(items, rv)  # the range is exhausted: no token
    remaining = None if selecting else len(keyed) - last - 1
    return Page(items, rv, encode_token(keyed[last][0] + "\x00", rv), remaining)
