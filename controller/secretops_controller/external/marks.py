"""What the external-secrets half remembers of the stores and ExternalSecrets it handled, and
the annotations an earlier version's kopf left on them.

Stores and ExternalSecrets are handled from their watch events, as SealedSecrets are: an object
is looked at when this leader first sees it (kopf's listing at start, then an event per object)
and again when its ``generation`` (any spec change), labels or annotations change —
:func:`mark`, a 16-byte digest kept per object. Our own status writes change none of them, so
their echoes are not handled again; the refreshes are the scheduler's, not the watch's. kopf
keeps no state of its own on them: no diffbase, no progress annotation, no PATCH.

Versions before this one used kopf's create/update/resume handlers, whose state kopf kept in
annotations under ``secretops.dev/`` (:func:`kopf_leftover`): the diffbase
``last-handled-configuration``, the ``kopf-managed`` marker and, for a handler that was still
retrying, its progress record (named after the handler: ``register._locals_.store`` and
``register._locals_.external_secret``). The first look at such an object removes them with
one merge patch (:func:`leftovers_patch`); they count for no mark, so that patch's echo is not
a change, and for no ``syncedResourceVersion`` (:func:`without_leftovers`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from secretops_controller import kube
from secretops_controller.external.names import KIND, name_of, owner_of, path, store_id, store_path

log = logging.getLogger(__name__)

_PREFIX = "secretops.dev/"
_KOPF_KEYS = frozenset(_PREFIX + k for k in ("last-handled-configuration", "kopf-managed",
                                             "touch-dummy"))
# kopf's progress records of the old handlers: their ids were the qualified names of functions
# defined in the external half's register(), with "<" and ">" made "_"
_PROGRESS = _PREFIX + "register._locals_."


def kopf_leftover(key: str) -> bool:
    """An annotation kopf kept its state in before this version (never one a user sets)."""
    return key in _KOPF_KEYS or key.startswith(_PROGRESS)


def without_leftovers(annotations: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in annotations.items() if not kopf_leftover(k)}


def mark(obj: Mapping[str, Any]) -> bytes:
    """What a handled object is remembered by: a digest of its uid, ``generation``, labels and
    annotations (kopf's leftovers apart: their removal changes nothing)."""
    meta = obj.get("metadata") or {}
    parts = [str(meta.get("uid")), int(meta.get("generation") or 0), meta.get("labels") or {},
             without_leftovers(meta.get("annotations") or {})]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()[:16]


def leftovers_patch(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that removes kopf's leftover annotations from ``obj`` (None: it has
    none, the usual case after the first start of this version)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    gone = sorted(k for k in annotations if kopf_leftover(k))
    if not gone:
        return None
    return {"metadata": {"annotations": dict.fromkeys(gone)}}


async def drop_leftovers(api: kube.Kube, obj: dict[str, Any]) -> bool:
    """Remove kopf's leftover annotations from ``obj`` (an upgrade: once per object; nothing to
    do otherwise), and take the patched ``resourceVersion`` and annotations into ``obj``: a
    write guarded by its version then succeeds (not a 409 and a sync again). False: the object
    is gone."""
    patch = leftovers_patch(obj)
    if patch is None:
        return True
    where = path(*owner_of(obj)) if obj.get("kind") == KIND else store_path(*store_id(obj))
    try:
        out = (await api.merge_patch(where, patch)).get("metadata") or {}
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = out.get("resourceVersion", meta.get("resourceVersion"))
        meta["annotations"] = dict(out.get("annotations") or {})
    except kube.ApiError as e:
        if e.status == 404:
            return False
        if e.transient:
            raise
        # refused (an RBAC without patch): the annotations stay, harmless; handle it anyway
        log.warning("%s %s: the previous version's kopf annotations not removed: %s",
                    obj.get("kind"), name_of(obj), e)
        return True
    log.info("%s %s: the previous version's kopf annotations removed", obj.get("kind"),
             name_of(obj))
    return True
