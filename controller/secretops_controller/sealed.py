"""SealedSecret → Secret: unseal with the key ring, write the Secret, report in status/Events.

Handlers (the watches :func:`register` names, followed by :mod:`~secretops_controller.informer`):

* SealedSecret watch events → :func:`reconcile` when the object is new to this leader or its
  generation, labels or annotations changed since it was handled
  (:func:`handled_mark`); the outcome goes to ``status.conditions[type=Synced]`` and
  ``status.observedGeneration`` (a merge patch of the status subresource, only when it
  changes) and to an Event with a fixed reason (:class:`Reason`). Unsealing failures
  (scope, key, altered, malformed, template) and a Secret we may not touch are permanent until
  the SealedSecret changes (a touch of its annotations will do); API outages are retried with
  backoff (``--retry-base-delay``/``--retry-max-delay``, at most ``--max-retries`` times).
* Secrets labelled ``secretops.dev/sealed-by`` (ours; watched with a server-side label selector)
  → when one no longer matches what we wrote, or is deleted, it is written again (drift
  self-heal).

The condition building, Event posting, Secret write-or-replace and ownership checks are the
ones the external-secrets half uses too (:mod:`~secretops_controller.conditions`,
:mod:`~secretops_controller.events`, :mod:`~secretops_controller.ownedsecrets`).

Ownership: a Secret is ours when its controller ownerReference is a SealedSecret, or when it
carries our label (made with skip-set-owner-references). An existing Secret that is not ours is
taken over only with ``secretops.dev/managed: "true"``, or merged into with
``secretops.dev/patch: "true"`` (on the Secret or in the template); otherwise it is left alone
and the condition says ``SecretNotOwned``. Messages name namespaces, names, keys and key-ring
keys, never a value.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing import unseal_sealed
from secretops.sealing.format import (
    GROUP,
    KIND,
    MANAGED_ANNOTATION,
    PATCH_ANNOTATION,
    PLURAL,
    SKIP_OWNER_REFERENCES_ANNOTATION,
)
from secretops_controller import conditions, kube, ownedsecrets
from secretops_controller.conditions import Outcome
from secretops_controller.context import Context
from secretops_controller.events import event
from secretops_controller.informer import Watch
from secretops_controller.runtime import now, rfc3339

log = logging.getLogger(__name__)
SEALED_LABEL = ownedsecrets.SEALED_LABEL
SYNCED = "Synced"


class Reason(StrEnum):
    """Event reasons, also the ``reason`` of the ``Synced`` condition. Never renamed."""

    UNSEALED = "Unsealed"  # the Secret matches the SealedSecret (Normal)
    SCOPE_MISMATCH = "ScopeMismatch"  # a value was sealed for another namespace/name/key
    NO_KEY = "NoKeyCouldUnseal"  # no key of the ring opens a value
    ALTERED = "ValueAltered"  # a value fails authentication
    MALFORMED = "Malformed"  # not a well-formed SealedSecret or sealed value
    TEMPLATE_ERROR = "TemplateError"  # spec.template.data does not render
    TEMPLATE_NOT_BOUND = "TemplateNotBound"  # spec.template is not what the values are bound to
    SECRET_NOT_OWNED = "SecretNotOwned"  # an existing Secret is not ours and does not opt in
    UPDATE_FAILED = "UpdateFailed"  # the API refused or failed the write
    KEY_CREATED = "SealingKeyCreated"  # the key ring got a new key (on the ConfigMap)

    @property
    def normal(self) -> bool:
        return self in (Reason.UNSEALED, Reason.KEY_CREATED)

_REASONS = {
    ExitCode.SEALED_SCOPE_MISMATCH: Reason.SCOPE_MISMATCH,
    ExitCode.COULD_NOT_RETRIEVE_KEY: Reason.NO_KEY,
    ExitCode.ERROR_DECRYPTING_TREE: Reason.ALTERED,
    ExitCode.INVALID_SEALED_SECRET: Reason.MALFORMED,
    ExitCode.TEMPLATE_ERROR: Reason.TEMPLATE_ERROR,
    ExitCode.SEALED_TEMPLATE_NOT_BOUND: Reason.TEMPLATE_NOT_BOUND,
}


# the reasons that come after the ring's keys were tried on the values (the message lists
# them); a malformed object or an unbound template is refused from the headers alone
_KEYS_TRIED = frozenset({Reason.NO_KEY, Reason.SCOPE_MISMATCH, Reason.ALTERED,
                         Reason.TEMPLATE_ERROR})


def reason_of(error: SecretOpsError) -> Reason:
    return _REASONS.get(error.code, Reason.MALFORMED)


def _ref(meta: Mapping[str, Any]) -> str:
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _unseal_message(error: SecretOpsError, sealed: Mapping[str, Any], ctx: Context) -> str:
    spec = sealed.get("spec") or {}
    where = (f"cannot unseal SealedSecret {_ref(sealed.get('metadata') or {})} "
             f"(scope {spec.get('scope') or 'strict'})")
    detail = f"{error.path}: {error.message}" if error.path else error.message
    if reason_of(error) not in _KEYS_TRIED:
        return f"{where}: {detail}"  # refused before any key was tried
    keys = ", ".join(k.name for k in ctx.ring.keys) or "none (the key ring is empty)"
    return f"{where}: {detail}; key-ring keys tried: {keys}"


async def _unseal(ctx: Context, sealed: Mapping[str, Any]) -> dict[str, Any]:
    meta = sealed.get("metadata") or {}
    template = (sealed.get("spec") or {}).get("template")

    def unseal() -> dict[str, Any]:
        return unseal_sealed(sealed, ctx.ring.identities, namespace=meta.get("namespace"),
                             owner_uid=meta.get("uid"), pool=ctx.renderer)

    if not (isinstance(template, Mapping) and template.get("data")):
        return unseal()  # nothing to render: no thread, no worker
    # templates render in a worker process (bounded in time, memory and output); waiting for
    # it happens in a thread, so a slow template never holds up the loop or other objects
    return await ctx.renderer.in_thread(unseal)


def fingerprint(secret: Mapping[str, Any]) -> bytes:
    """A digest of what we manage in a Secret (kept in memory only, one per Secret: 16 bytes;
    never published)."""
    meta = secret.get("metadata") or {}
    refs = [(r.get("kind"), r.get("name"), r.get("uid"), bool(r.get("controller")))
            for r in meta.get("ownerReferences") or []]
    parts = [secret.get("data") or {}, secret.get("type") or "Opaque", meta.get("labels") or {},
             meta.get("annotations") or {}, refs, bool(secret.get("immutable"))]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()[:16]


def _ours(current: Mapping[str, Any]) -> bool:
    if ownedsecrets.controller_of(current) is not None:
        return ownedsecrets.controlled_by(current, GROUP, KIND)
    return SEALED_LABEL in ((current.get("metadata") or {}).get("labels") or {})


def desired_secret(current: Mapping[str, Any] | None, desired: Mapping[str, Any],
                   sealed: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Secret to write over ``current`` (None: not ours and no opt-in). Pure."""
    if current is None:
        return dict(desired)
    cmeta = current.get("metadata") or {}
    # Only the existing Secret can opt in (as with Bitnami): a SealedSecret's own annotations
    # must not let whoever may create SealedSecrets take over a Secret they could not write.
    opt = cmeta.get("annotations") or {}
    merge = opt.get(PATCH_ANNOTATION) == "true"
    # a patched Secret carries our label (for the drift watch) but stays its owner's: patch
    # never takes ownership unless managed is set too
    take = opt.get(MANAGED_ANNOTATION) == "true" or (_ours(current) and not merge)
    if not take and not merge:
        return None
    dmeta = desired.get("metadata") or {}
    meta = {k: v for k, v in cmeta.items() if k != "managedFields"}
    new: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
    if merge:
        meta["labels"] = {**(cmeta.get("labels") or {}), **(dmeta.get("labels") or {})}
        meta["annotations"] = {**(cmeta.get("annotations") or {}),
                               **(dmeta.get("annotations") or {})}
        new["data"] = {**(current.get("data") or {}), **(desired.get("data") or {})}
        new["type"] = current.get("type") or desired.get("type")
    else:
        meta["labels"] = dict(dmeta.get("labels") or {})
        meta["annotations"] = dict(dmeta.get("annotations") or {})
        new["data"] = dict(desired.get("data") or {})
        new["type"] = desired.get("type")
    if take:
        refs = [r for r in cmeta.get("ownerReferences") or [] if not r.get("controller")]
        meta["ownerReferences"] = refs + list(dmeta.get("ownerReferences") or [])
    for k in ("labels", "annotations", "ownerReferences"):
        if not meta.get(k):
            meta.pop(k, None)
    if "immutable" in desired:
        new["immutable"] = desired["immutable"]
    elif "immutable" in current:
        new["immutable"] = current["immutable"]
    return new


async def reconcile(ctx: Context, sealed: Mapping[str, Any]) -> Outcome:
    """Make the Secret match the SealedSecret. Raises :class:`kube.ApiError` for API failures."""
    meta = sealed.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    try:
        try:
            desired = await _unseal(ctx, sealed)
        except SecretOpsError as e:
            if reason_of(e) is not Reason.NO_KEY:
                raise
            await ctx.ring.load()  # another replica may have added a key
            desired = await _unseal(ctx, sealed)
    except SecretOpsError as e:
        return Outcome(False, reason_of(e), _unseal_message(e, sealed, ctx))
    desired.setdefault("metadata", {}).setdefault("labels", {})[SEALED_LABEL] = "true"
    if (meta.get("annotations") or {}).get(SKIP_OWNER_REFERENCES_ANNOTATION) == "true":
        desired["metadata"].pop("ownerReferences", None)  # on the SealedSecret itself too
    keys = ", ".join(sorted(desired.get("data") or {}))
    path = kube.secrets(ns, name)
    async with ctx.lock(ns, name):
        if _never_synced(sealed):
            # a new SealedSecret's Secret rarely exists: create it without reading first (a
            # create never overwrites; an existing Secret answers 409 and is read below)
            try:
                written = await ctx.api.create(kube.secrets(ns), dict(desired))
            except kube.ApiError as e:
                if e.status != 409:
                    raise
            else:
                ctx.fingerprints[(ns, name)] = fingerprint(written)
                return Outcome(True, Reason.UNSEALED, f"Secret {ns}/{name} created "
                               f"(keys: {keys})", wrote=True)
        current = await ctx.api.get(path)
        new = desired_secret(current, desired, sealed)
        if new is None:
            assert current is not None
            ctx.fingerprints.pop((ns, name), None)
            return Outcome(False, Reason.SECRET_NOT_OWNED, (
                f"Secret {ns}/{name} exists and is not managed by this SealedSecret: left "
                f"alone; annotate it {MANAGED_ANNOTATION}=true to let the controller take it "
                f"over, or {PATCH_ANNOTATION}=true to merge into it, then touch the "
                f"SealedSecret"))
        if current is not None and fingerprint(current) == fingerprint(new):
            ctx.fingerprints[(ns, name)] = fingerprint(current)
            return Outcome(True, Reason.UNSEALED, f"Secret {ns}/{name} is up to date "
                           f"(keys: {keys})")
        written, verb = await ownedsecrets.write(ctx.api, ns, name, current, new)
        ctx.fingerprints[(ns, name)] = fingerprint(written)
        return Outcome(True, Reason.UNSEALED, f"Secret {ns}/{name} {verb} (keys: {keys})",
                       wrote=True)


def _never_synced(sealed: Mapping[str, Any]) -> bool:
    """No Synced condition yet: the controller has not handled this SealedSecret before."""
    conditions = (sealed.get("status") or {}).get("conditions") or []
    return not any(isinstance(c, dict) and c.get("type") == SYNCED for c in conditions)


def status_of(sealed: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    """``status`` with the Synced condition for ``outcome`` (lastTransitionTime kept if same)."""
    status = sealed.get("status") or {}
    gen = (sealed.get("metadata") or {}).get("generation")
    extra: dict[str, Any] = {"lastUpdateTime": rfc3339(now())}
    if gen is not None:
        extra["observedGeneration"] = gen
    cond = conditions.condition(status, SYNCED, outcome.ok, outcome.reason.value,
                                outcome.message, **extra)
    out: dict[str, Any] = {"conditions": conditions.replace(status, cond)}
    if gen is not None:
        out["observedGeneration"] = gen
    return out


def _same_condition(sealed: Mapping[str, Any], outcome: Outcome) -> bool:
    status = sealed.get("status") or {}
    cond = {"type": SYNCED, "status": conditions.status_text(outcome.ok),
            "reason": outcome.reason.value, "message": outcome.message}
    return conditions.same(cond, status) and status.get("observedGeneration") == (
        sealed.get("metadata") or {}).get("generation")


def _gauge(ctx: Context, sealed: Mapping[str, Any], outcome: Outcome) -> None:
    meta = sealed.get("metadata") or {}
    ctx.metrics.sealed_condition.set(str(meta.get("namespace")), str(meta.get("name")), SYNCED,
                                     conditions.status_text(outcome.ok))


def _record(ctx: Context, sealed: Mapping[str, Any], outcome: Outcome, drift: bool) -> None:
    _gauge(ctx, sealed, outcome)
    if outcome.ok:
        ctx.metrics.unseals.inc()
        if outcome.wrote:
            msg = outcome.message + (" after it was changed or deleted" if drift else "")
            log.info("%s", msg)
            event(sealed, Reason.UNSEALED, msg)
    else:
        ctx.metrics.unseal_errors.labels(reason=outcome.reason.value).inc()
        log.warning("%s: %s", outcome.reason.value, outcome.message)
        event(sealed, outcome.reason, outcome.message)


def handled_mark(sealed: Mapping[str, Any]) -> bytes:
    """What a handled SealedSecret is remembered by: a digest (16 bytes, one per object) of its
    uid, ``generation`` (bumped by every spec change: values, template, scope), labels and
    annotations (so touching it makes the controller look again, e.g. after a Secret opted
    in)."""
    meta = sealed.get("metadata") or {}
    parts = [str(meta.get("uid")), int(meta.get("generation") or 0), meta.get("labels") or {},
             meta.get("annotations") or {}]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()[:16]


async def on_sealed(ctx: Context, body: Mapping[str, Any]) -> None:
    """The SealedSecret handler: reconcile (transient API errors retried with backoff), then
    the status (only when it changes) and an Event."""
    meta = body.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))

    async def attempt() -> Outcome:
        started = time.perf_counter()
        try:
            return await reconcile(ctx, body)
        finally:
            ctx.metrics.reconcile_duration.labels(kind=KIND).observe(
                time.perf_counter() - started)

    try:
        outcome = await kube.retrying(ctx.config, attempt,
                                      f"SealedSecret {ns}/{name}: Secret write")
    except kube.ApiError as e:
        outcome = Outcome(False, Reason.UPDATE_FAILED, str(e))
    except Exception as e:  # a bug must still leave a status behind (kopf will not retry)
        # the type only: an exception's text could hold anything, a value included
        log.error("SealedSecret %s/%s: reconcile failed: internal error (%s)", ns, name,
                  type(e).__name__)
        outcome = Outcome(False, Reason.UPDATE_FAILED,
                          f"internal error ({type(e).__name__}); see the controller log")
    _record(ctx, body, outcome, drift=False)
    if not (_same_condition(body, outcome) or (
            outcome.ok and not outcome.wrote and _synced_at_generation(body))):
        await _patch_status(ctx, body, status_of(body, outcome))
    if outcome.reason is Reason.UPDATE_FAILED:
        # API trouble, not the SealedSecret: any later event (the next re-list included)
        # tries again, where a permanent failure waits for the SealedSecret to change
        ctx.handled.pop((ns, name), None)
    else:
        ctx.handled[(ns, name)] = (handled_mark(body), outcome.ok)


def _synced_at_generation(sealed: Mapping[str, Any]) -> bool:
    """Already Synced=True for this generation (a resume that found the Secret up to date
    writes nothing)."""
    status = sealed.get("status") or {}
    gen = (sealed.get("metadata") or {}).get("generation")
    return status.get("observedGeneration") == gen and any(
        isinstance(c, dict) and c.get("type") == SYNCED and c.get("status") == "True"
        for c in status.get("conditions") or [])


async def _patch_status(ctx: Context, sealed: Mapping[str, Any],
                        status: Mapping[str, Any]) -> None:
    meta = sealed.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    try:
        await kube.retrying(ctx.config, lambda: ctx.api.merge_patch(
            kube.sealedsecrets(ns, name) + "/status", {"status": status}))
    except kube.ApiError as e:
        if e.status != 404:  # 404: deleted meanwhile
            log.error("SealedSecret %s/%s: status not written: %s", ns, name, e)


async def on_secret(ctx: Context, event_type: str | None, body: Mapping[str, Any]) -> None:
    """Drift self-heal for one of our Secrets that changed or went away."""
    meta = body.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    if event_type is None:
        return  # the initial listing: each SealedSecret's first event covers it
    if event_type != "DELETED":
        # the watch event of a Secret we are creating can come before the create's answer:
        # wait for the write in flight (it holds the Secret's lock and then records its
        # fingerprint) before taking the event for a change made by someone else
        async with ctx.lock(ns, name):
            if ctx.fingerprints.get((ns, name)) == fingerprint(body):
                return  # our own write, echoed

    async def repair() -> None:
        sealed = await ctx.api.get(kube.sealedsecrets(ns, name))
        if sealed is None or (sealed.get("metadata") or {}).get("deletionTimestamp"):
            ctx.fingerprints.pop((ns, name), None)
            return  # its SealedSecret is gone: the garbage collector has the Secret
        started = time.perf_counter()
        outcome = await reconcile(ctx, sealed)
        ctx.metrics.reconcile_duration.labels(kind=KIND).observe(time.perf_counter() - started)
        if outcome.wrote or not outcome.ok:
            _record(ctx, sealed, outcome, drift=True)
        else:
            _gauge(ctx, sealed, outcome)
        if not _same_condition(sealed, outcome):
            await ctx.api.merge_patch(kube.sealedsecrets(ns, name) + "/status",
                                      {"status": status_of(sealed, outcome)})

    try:
        await kube.retrying(ctx.config, repair)
    except kube.ApiError as e:
        log.error("Secret %s/%s: drift repair failed: %s", ns, name, e)


def _handled_as(ctx: Context, key: tuple[str, str], mark: bytes) -> bool:
    handled = ctx.handled.get(key)
    return handled is not None and handled[0] == mark


async def handle(ctx: Context, raw: Mapping[str, Any]) -> bool:
    """Handle a SealedSecret as listed or watched, unless it is being deleted or nothing
    changed since it was handled (:func:`handled_mark`). True: it was handled now."""
    meta = raw.get("metadata") or {}
    key = (str(meta.get("namespace")), str(meta.get("name")))
    mark = handled_mark(raw)
    if meta.get("deletionTimestamp") or _handled_as(ctx, key, mark):
        return False  # being deleted, or nothing new (our status write echoed, a re-list)
    async with ctx.handling(*key):
        if _handled_as(ctx, key, mark):
            return False  # handled meanwhile (the informer's listing and a catch-up met)
        await on_sealed(ctx, copy.deepcopy(dict(raw)))
    return True


async def catch_up(ctx: Context, wanted: Callable[[str], bool], concurrency: int = 16) -> int:
    """``--shards``: handle the SealedSecrets of newly held shards (``wanted`` namespaces) now,
    straight from one LIST, instead of waiting for the informer's listing of the whole cluster
    to reach them. The number handled."""
    scopes: list[str | None] = list(ctx.config.watch_namespaces) or [None]
    items: list[dict[str, Any]] = []
    for ns in scopes:
        items += await ctx.api.list(
            kube.sealedsecrets(ns) if ns else f"/apis/{kube.SEALED_GROUP_VERSION}/sealedsecrets")
    todo = [i for i in items if wanted(str((i.get("metadata") or {}).get("namespace")))]
    todo.sort(key=lambda i: not _never_synced(i))  # new objects first; the rest is a check
    gate = asyncio.Semaphore(concurrency)

    async def one(item: dict[str, Any]) -> bool:
        async with gate:
            return await handle(ctx, item)

    return sum(await asyncio.gather(*(one(i) for i in todo)))


def register(ctx: Context) -> list[Watch]:
    """What this half watches: SealedSecrets and our Secrets (:mod:`.informer`), with their
    handlers bound to ``ctx``. The informer drops another shard's objects, and the echoes of
    our own writes before it keeps a body."""

    # An event handler, not kopf's create/update/resume: what was handled is remembered in
    # memory (:func:`handled_mark`) and by status.observedGeneration, so nothing is written on
    # the object but its status. The first sight of each object after this replica starts
    # leading (the listing, kind None) reconciles it, as a resume handler would.
    async def sealed_secret(kind: str | None, raw: dict[str, Any]) -> None:
        key = _key(raw)
        if kind == "DELETED":
            ctx.handled.pop(key, None)
            ctx.metrics.sealed_condition.forget(*key)  # its series go with it
            return
        await handle(ctx, raw)

    def sealed_echo(kind: str | None, raw: dict[str, Any]) -> bool:
        # being deleted, or as handled (our status write echoed, a re-list): nothing to do
        return kind != "DELETED" and bool(
            (raw.get("metadata") or {}).get("deletionTimestamp")
            or _handled_as(ctx, _key(raw), handled_mark(raw)))

    # The watch is narrowed to our label on the server; no client-side label filter here: a
    # Secret that loses the label arrives as DELETED without it, and must be repaired like a
    # deleted one.
    async def owned_secret(kind: str | None, raw: dict[str, Any]) -> None:
        if secret_echo(kind, raw):
            return  # the echo after all (or kept queued behind a change); a write of it
        # under way (its event may come first) is waited for by on_secret, under its lock
        # kind None: re-listed after a watch gap, changed meanwhile: repair
        await on_secret(ctx, kind or "MODIFIED", raw)

    def secret_echo(kind: str | None, raw: dict[str, Any]) -> bool:
        if kind == "DELETED":
            return False
        known = ctx.fingerprints.get(_key(raw))
        # the echo of our own write (or a re-list); a first listing: each SealedSecret's first
        # event covers it
        return known == fingerprint(raw) or (kind is None and known is None)

    return [Watch(f"/apis/{kube.SEALED_GROUP_VERSION}", PLURAL, sealed_secret, sealed_echo),
            Watch("/api/v1", "secrets", owned_secret, secret_echo, label_selector=SEALED_LABEL)]


def _key(raw: Mapping[str, Any]) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


__all__ = ["SEALED_LABEL", "Outcome", "catch_up", "handle", "reconcile", "register",
           "status_of"]
