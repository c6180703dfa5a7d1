"""Sync and write: an ExternalSecret's Secret made from the scheduler's snapshot (leader only).

:meth:`SecretSync.apply` writes the Secret per ``creationPolicy`` (Owner, default: ownerReference
with ``controller: true``; Merge: into an existing Secret; Orphan; None: nothing written) with
the keyed fingerprint of its data (:mod:`.fingerprint`), unless another writer claims it
(:mod:`.ownership`: ``SecretConflict``); ``deletionPolicy: Delete`` drops the keys of a remote
secret that is NotFound and deletes the Secret (Merge: takes the merged keys out) once all are
(Retain, default, keeps it); a provider error leaves a Secret it wrote with its last good
values and says so (what the message says of the Secret is read first, never assumed). The
write itself is the shared :func:`secretops_controller.ownedsecrets.write`.

When the data of an existing Secret changes, the same write marks it :data:`.rollout.PENDING`
(the new fingerprint) and :func:`request_rollout` hands it to :mod:`.rollqueue`, which rolls the
workloads that use it and then has :meth:`SecretSync.settle` remove the mark; a Secret found
still marked for its current data (a leader stopped first) is handed over again.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from secretops_controller import kube, ownedsecrets
from secretops_controller.conditions import Outcome
from secretops_controller.context import Context
from secretops_controller.events import event
from secretops_controller.external import fingerprint, mapping, ownership, rollout
from secretops_controller.external.names import (
    API,
    KIND,
    OWNER_ANNOTATION,
    EsReason,
    Owner,
    name_of,
    path,
    target_of,
)
from secretops_controller.external.provider import RemoteRef
from secretops_controller.external.rollqueue import Rollouts
from secretops_controller.external.scheduler import Snapshot
from secretops_controller.external.status import provider_outcome

log = logging.getLogger(__name__)


class SecretSync:
    """What the writes of one leadership term remember: the resourceVersion of each Secret
    written (its watch echo is ours), the last whole writer of each Secret (it wins when the
    Secret is re-created), and the fingerprint key."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.written: dict[tuple[str, str], str] = {}  # Secret -> resourceVersion we wrote
        # Secret -> the ExternalSecret last seen writing it whole: wins when it is re-created
        self.claims: dict[tuple[str, str], str] = {}
        self._fp_key: bytes | None = None  # the fingerprint key, read when first needed
        self._fp_lock = asyncio.Lock()

    def reset(self) -> None:
        self.written.clear()
        self.claims.clear()
        self._fp_key = None  # read again: it may have been replaced while we did not lead

    async def fingerprint_key(self) -> bytes:
        """The key of the data fingerprints (:mod:`.fingerprint`), read or made once per
        leadership term. Raises :class:`kube.ApiError`, :class:`fingerprint.FingerprintKeyError`."""
        async with self._fp_lock:
            if self._fp_key is None:
                ns = self.ctx.config.namespace
                self._fp_key, made = await fingerprint.load_or_create(self.ctx.api, ns)
                if made:
                    log.info("made the fingerprint key (Secret %s/%s)", ns,
                             fingerprint.KEY_SECRET)
            return self._fp_key

    async def apply(self, es: Mapping[str, Any], owner: Owner, name: str, snap: Snapshot,
                    rivals: Sequence[str]) -> Outcome:
        """Write Secret ``name`` of ``owner`` from ``snap``; ``rivals``: the other
        ExternalSecrets known to target it."""
        spec = es.get("spec") or {}
        target = spec.get("target") or {}
        creation = target.get("creationPolicy") or "Owner"
        deletion = target.get("deletionPolicy") or "Retain"
        ns = owner[0]
        errors = {str(w): e for w, e in snap.errors.items()}
        parsed = mapping.parse_spec(spec)
        missing = ", ".join(sorted(str(r) for r in snap.missing))
        if snap.missing and deletion != "Delete":
            state = await self._state(ns, name, owner[1], creation)
            return Outcome(False, EsReason.SYNC_ERROR, (
                f"the remote secret {missing} does not exist; {state} (deletionPolicy "
                f"{deletion})"))
        if deletion == "Delete" and not snap.errors and _all_gone(parsed, snap):
            # deletionPolicy Delete, every remote secret gone (as ESO): the Secret is deleted,
            # or, merged into someone else's Secret, the merged keys are taken out of it
            return await self._remove(owner, ns, name, creation, missing)

        def build() -> mapping.SecretData:
            return mapping.build(parsed, snap, skip_missing=deletion == "Delete",
                                 pool=self.ctx.renderer)

        try:
            # templates render in a worker process: waited for in a thread, off the loop
            data = (await self.ctx.renderer.in_thread(build)
                    if parsed.template is not None and parsed.template.data else build())
        except mapping.MappingError as e:
            if errors:
                return provider_outcome(errors, await self._state(ns, name, owner[1], creation))
            reason = (EsReason.TEMPLATE_ERROR if (e.path or "").startswith("spec.target.template")
                      else EsReason.SYNC_ERROR)
            return Outcome(False, reason, f"{e.path}: {e.message}")
        try:
            key = await self.fingerprint_key()
        except fingerprint.FingerprintKeyError as e:
            log.error("the fingerprint key is unusable: %s", e)
            return Outcome(False, EsReason.SYNC_ERROR, (
                f"the controller's fingerprint key is unusable ({e}); "
                f"{await self._state(ns, name, owner[1], creation)}"))
        digest = fingerprint.fingerprint(key, ns, name, data.data)
        data = replace(data, annotations={**data.annotations, mapping.HASH_ANNOTATION: digest})
        extra = {"remoteVersions": data.versions, "dataHash": digest}
        wrote = False
        changed: str | None = None
        verb = "up to date"
        if creation != "None":
            async with self.ctx.lock(ns, name):
                current: Mapping[str, Any] | None = None
                if self._guess_absent(es, ns, name, creation, rivals):
                    # never synced, nobody else targets it: its Secret rarely exists; created
                    # without reading first (a create never overwrites: an existing Secret
                    # answers 409 and is read below, then handled as any other)
                    fresh = desired(None, data, es, creation, bool(target.get("immutable")))
                    try:
                        verb = await self._write(ns, name, None, fresh)
                    except kube.ApiError as e:
                        if e.status != 409:
                            raise
                        current = await self.ctx.api.get(kube.secrets(ns, name))
                    else:
                        self.claims[(ns, name)] = owner[1]
                        return self._synced(data, errors, snap, ns, name, owner, creation,
                                            "created", True, extra, None, missing)
                else:
                    current = await self.ctx.api.get(kube.secrets(ns, name))
                if current is None and creation == "Merge":
                    return Outcome(False, EsReason.MISSING, (
                        f"Secret {ns}/{name} does not exist (creationPolicy Merge writes into "
                        "an existing Secret only)"))
                conflict = await ownership.conflict(
                    lambda es_name: self.ctx.api.get(path(ns, es_name)), ns, owner[1], name,
                    creation, current, rivals, self.claims.get((ns, name)))
                if conflict is not None:
                    return Outcome(False, EsReason.CONFLICT, conflict)
                new = desired(current, data, es, creation, bool(target.get("immutable")))
                if current is not None and (current.get("data") or {}) != new["data"]:
                    changed = digest  # the data changed, not only its fingerprint
                    if self.ctx.config.uses_rollout:  # until every workload is rolled
                        new["metadata"]["annotations"][rollout.PENDING] = digest
                elif _annotations(current).get(rollout.PENDING) == digest:
                    changed = digest  # marked by a leader that stopped before it rolled
                if current is None or _differs(current, new):
                    verb = await self._write(ns, name, current, new)
                    wrote = True
                if creation in ownership.WHOLE:
                    self.claims[(ns, name)] = owner[1]
        return self._synced(data, errors, snap, ns, name, owner, creation, verb, wrote, extra,
                            changed, missing)

    def _guess_absent(self, es: Mapping[str, Any], ns: str, name: str, creation: str,
                      rivals: Sequence[str]) -> bool:
        """Whether ``es``'s Secret is likely not there yet: it never synced (no refresh, no
        data hash in its status), writes the whole Secret, no other ExternalSecret targets it
        and this term neither wrote nor saw a writer of it."""
        st = es.get("status") or {}
        return (creation in ownership.WHOLE and not rivals and not st.get("refreshTime")
                and not st.get("dataHash") and (ns, name) not in self.written
                and (ns, name) not in self.claims)

    @staticmethod
    def _synced(data: mapping.SecretData, errors: Mapping[str, Any], snap: Snapshot, ns: str,
                name: str, owner: Owner, creation: str, verb: str, wrote: bool,
                extra: dict[str, Any], changed: str | None, missing: str) -> Outcome:
        """The outcome of a sync that got as far as the write (or chose none)."""
        keys = ", ".join(sorted(data.data))
        if errors:
            state = (ownership.state(None, owner[1], ns, name, creation) if creation == "None"
                     else f"Secret {ns}/{name} holds the last values read")
            return replace(provider_outcome(errors, state, extra), changed=changed, wrote=wrote)
        if snap.missing:
            return Outcome(True, EsReason.SYNCED, (
                f"Secret {ns}/{name} {verb} (keys: {keys}); without the keys of {missing}, "
                "which does not exist (deletionPolicy Delete)"), wrote=wrote, extra=extra,
                changed=changed)
        if creation == "None":
            return Outcome(True, EsReason.SYNCED, f"values read (keys: {keys}); creationPolicy "
                                                  "None writes no Secret", extra=extra)
        return Outcome(True, EsReason.SYNCED, f"Secret {ns}/{name} {verb} (keys: {keys})",
                       wrote=wrote, extra=extra, changed=changed)

    async def _state(self, ns: str, name: str, es_name: str, creation: str) -> str:
        """What holds for the Secret when ``es_name`` cannot sync (read, not assumed)."""
        current = None if creation == "None" else await self.ctx.api.get(kube.secrets(ns, name))
        return ownership.state(current, es_name, ns, name, creation)

    async def _remove(self, owner: Owner, ns: str, name: str, creation: str,
                      missing: str) -> Outcome:
        why = f"the remote secret {missing} does not exist (deletionPolicy Delete)"
        if creation == "None":
            return Outcome(False, EsReason.DELETED, f"nothing written: {why}")
        async with self.ctx.lock(ns, name):
            current = await self.ctx.api.get(kube.secrets(ns, name))
            if current is None:
                return Outcome(False, EsReason.DELETED, f"Secret {ns}/{name} absent: {why}")
            if creation == "Merge":
                if owner[1] not in ownership.merged(current):
                    return Outcome(False, EsReason.DELETED, (
                        f"nothing merged into Secret {ns}/{name}: {why}"))
                await self._write(ns, name, current, unmerged(current, owner[1]))
                return Outcome(False, EsReason.DELETED, (
                    f"keys merged into Secret {ns}/{name} removed: {why}"), wrote=True)
            if ownership.writer(current) != owner[1]:
                return Outcome(False, EsReason.DELETED, (
                    f"{ownership.state(current, owner[1], ns, name, creation)}: {why}"))
            await self.ctx.api.delete(kube.secrets(ns, name))
            self.written.pop((ns, name), None)
            return Outcome(False, EsReason.DELETED, f"Secret {ns}/{name} deleted: {why}",
                           wrote=True)

    async def settle(self, ns: str, name: str, digest: str) -> None:
        """The rollout for data ``digest`` of Secret ``ns/name`` is sent: take the
        :data:`.rollout.PENDING` mark off, unless newer data is pending by now. Raises
        :class:`kube.ApiError`."""
        async with self.ctx.lock(ns, name):
            current = await self.ctx.api.get(kube.secrets(ns, name))
            if current is None or _annotations(current).get(rollout.PENDING) != digest:
                return
            # a PUT with the resourceVersion read (RBAC gives this half update, not patch)
            new = copy.deepcopy(dict(current))
            meta = new["metadata"]
            meta.pop("managedFields", None)
            meta["annotations"] = {k: v for k, v in _annotations(current).items()
                                   if k != rollout.PENDING}
            written = await self.ctx.api.replace(kube.secrets(ns, name), new)
            self.written[(ns, name)] = str((written.get("metadata") or {}).get(
                "resourceVersion"))

    async def _write(self, ns: str, name: str, current: Mapping[str, Any] | None,
                     new: dict[str, Any]) -> str:
        written, verb = await ownedsecrets.write(self.ctx.api, ns, name, current, new)
        self.written[(ns, name)] = str((written.get("metadata") or {}).get("resourceVersion"))
        return verb


def request_rollout(ctx: Context, rollouts: Rollouts, es: Mapping[str, Any], ns: str,
                    secret: str, data_hash: str) -> None:
    """The Secret's data is ``data_hash`` and its workloads are not rolled for it yet: hand it
    to the rollout queue (:mod:`.rollqueue`), or say why not (``--no-rollout``)."""
    listed = rollout.listed_workloads(es.get("spec") or {})
    if ctx.config.uses_rollout:
        rollouts.request(es, ns, secret, data_hash, listed)
    elif listed:  # no rights to list or patch workloads
        msg = (f"rollouts are off in this controller (--no-rollout): not rolled after "
               f"Secret {ns}/{secret} changed: " + ", ".join(f"{k}/{n}" for k, n in listed))
        log.warning("ExternalSecret %s: %s", name_of(es), msg)
        event(es, EsReason.ROLLOUT_SKIPPED, msg)


def desired(current: Mapping[str, Any] | None, data: mapping.SecretData,
            es: Mapping[str, Any], creation: str, immutable: bool) -> dict[str, Any]:
    """The Secret to write over ``current`` for ``creation`` (Owner / Merge / Orphan). Pure."""
    meta = es.get("metadata") or {}
    encoded = {k: base64.b64encode(v).decode() for k, v in data.data.items()}
    cmeta = copy.deepcopy(dict((current or {}).get("metadata") or {}))
    cmeta.pop("managedFields", None)
    new_meta: dict[str, Any] = {**cmeta, "name": cmeta.get("name") or target_of(es),
                                "namespace": meta.get("namespace")}
    new_meta["labels"] = {**(cmeta.get("labels") or {}), **data.labels}
    new_meta["annotations"] = {**(cmeta.get("annotations") or {}), **data.annotations,
                               OWNER_ANNOTATION: str(meta.get("name"))}
    if creation == "Merge":
        merged = ownership.merged(current)
        before = set(merged.get(str(meta.get("name")), ()))
        values = {k: v for k, v in ((current or {}).get("data") or {}).items()
                  if k not in before or k in encoded}  # keys it no longer produces go
        values.update(encoded)
        merged[str(meta.get("name"))] = sorted(encoded)
        new_meta["annotations"][mapping.MERGED_KEYS_ANNOTATION] = json.dumps(
            merged, sort_keys=True, separators=(",", ":"))
        kind = (current or {}).get("type") or data.type
    else:
        values = encoded
        kind = data.type
    if creation == "Owner":
        refs = [r for r in cmeta.get("ownerReferences") or [] if not r.get("controller")]
        refs.append(ownedsecrets.owner_reference(API, KIND, str(meta.get("name")),
                                                 str(meta.get("uid"))))
        new_meta["ownerReferences"] = refs
    new: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": new_meta,
                           "type": kind, "data": values}
    if immutable or (current or {}).get("immutable"):
        new["immutable"] = True
    return new


def unmerged(current: Mapping[str, Any], es_name: str) -> dict[str, Any]:
    """``current`` without what ``es_name`` merged into it: its keys, its entry in the merged
    keys; once no ExternalSecret has merged anything, our annotations and the managed label
    too (the Secret is someone else's again). Pure."""
    new = copy.deepcopy(dict(current))
    meta = new.setdefault("metadata", {})
    meta.pop("managedFields", None)
    merged = ownership.merged(current)
    gone = set(merged.pop(es_name, ()))
    still = {k for keys in merged.values() for k in keys}
    new["data"] = {k: v for k, v in (new.get("data") or {}).items()
                   if k not in gone or k in still}
    notes = dict(meta.get("annotations") or {})
    if merged:
        notes[mapping.MERGED_KEYS_ANNOTATION] = json.dumps(merged, sort_keys=True,
                                                           separators=(",", ":"))
        if notes.get(OWNER_ANNOTATION) == es_name:
            notes[OWNER_ANNOTATION] = sorted(merged)[0]
    else:
        for k in (OWNER_ANNOTATION, mapping.HASH_ANNOTATION, mapping.MERGED_KEYS_ANNOTATION):
            notes.pop(k, None)
        meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                          if k != mapping.MANAGED_LABEL}
    meta["annotations"] = notes
    return new


def _all_gone(spec: mapping.Spec, snap: Snapshot) -> bool:
    """Every remote secret of ``spec`` is gone: each ref NotFound, each find answered empty
    (only answers count: an error is never a reason to delete)."""
    return all(w in snap.missing if isinstance(w, RemoteRef)
               else w in snap.found and not snap.found[w] for w in spec.wants())


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _refs(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    # blockOwnerDeletion is left out of the comparison: Secrets written before it was dropped
    # keep it until their data next changes, rather than all being rewritten at once
    return [{k: v for k, v in r.items() if k != "blockOwnerDeletion"}
            for r in meta.get("ownerReferences") or []]


def _differs(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    cm, nm = current.get("metadata") or {}, new.get("metadata") or {}
    return bool((current.get("data") or {}) != (new.get("data") or {})
                or (current.get("type") or "Opaque") != new.get("type")
                or cm.get("labels") != nm.get("labels")
                or cm.get("annotations") != nm.get("annotations")
                or _refs(cm) != _refs(nm)
                or bool(current.get("immutable")) != bool(new.get("immutable")))


__all__ = ["SecretSync", "desired", "request_rollout", "unmerged"]
