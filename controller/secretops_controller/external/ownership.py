"""Who may write a Secret: the claims recorded on it, and which ExternalSecret wins a conflict.

Two writers of one Secret that each think it is theirs make it flip between their values at
every refresh. So before an ExternalSecret writes, the claims recorded on the existing Secret
are read (:func:`rivals`, pure):

* a **controller ownerReference** to any other object (another ExternalSecret with
  ``creationPolicy: Owner``, a SealedSecret, anything) — as in ESO;
* the label ``secretops.dev/sealed-by``: a SealedSecret writes it (with
  ``skip-set-owner-references`` it has no ownerReference; merged into with the SealedSecret
  ``patch`` opt-in, it still rewrites its own keys);
* the annotation ``secretops.dev/external-secret``: the ExternalSecret that wrote the whole
  Secret (``Owner`` or ``Orphan``: Orphan leaves no ownerReference, so this is its only mark);
* the annotation ``secretops.dev/merged-keys``: the ExternalSecrets that merged keys into it.

``Owner`` and ``Orphan`` write the whole Secret: any other live claim is a conflict.
``Merge`` writes only its keys: it conflicts only with a writer of the whole Secret (another
ExternalSecret, or a SealedSecret that replaces the data), never with other mergers.
Annotations are only marks, so a claim by another ExternalSecret counts only while that
ExternalSecret exists and still targets the Secret with a matching policy
(:func:`still_claims`); a stale mark (its ExternalSecret deleted) is taken over.

When nothing live is recorded (the Secret does not exist, or nobody marked it), the winner
among the ExternalSecrets that want the whole Secret is the one the controller saw write it
last (a Secret deleted by hand goes back to its writer), else the **oldest** by
``creationTimestamp``, then name (:func:`oldest`). The loser writes nothing and reports the
conflict (reason ``SecretConflict``), naming the winner; it takes over by itself when the
winner is deleted or retargeted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from secretops.sealing.format import KIND as SEALED_KIND
from secretops.sealing.format import PATCH_ANNOTATION
from secretops_controller.external.mapping import MERGED_KEYS_ANNOTATION
from secretops_controller.ownedsecrets import SEALED_LABEL, controller_of, refers_to

GROUP = "secretops.dev"
KIND = "ExternalSecret"
OWNER_ANNOTATION = "secretops.dev/external-secret"  # on the Secret: the ExternalSecret's name
WHOLE = frozenset({"Owner", "Orphan"})  # the policies that write the whole Secret


@dataclass(frozen=True)
class Claim:
    kind: str  # ExternalSecret, SealedSecret, or the kind of another controller
    name: str
    how: str  # "controller", "label", "annotation", "merge"

    @property
    def external(self) -> bool:
        """A mark of another ExternalSecret that only counts while it still claims."""
        return self.kind == KIND and self.how != "controller"

    def describe(self, ns: str, secret: str) -> str:
        where = f"Secret {ns}/{secret}"
        if self.how == "controller":
            return f"{where} is controlled by {self.kind} {self.name}"
        if self.how == "label":
            return (f"{where} is written by SealedSecret {self.name} (label "
                    f"{SEALED_LABEL})")
        if self.how == "merge":
            return (f"ExternalSecret {self.name} merges keys into {where} "
                    "(creationPolicy Merge)")
        return f"{where} was written by ExternalSecret {self.name}"


def controller(secret: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return controller_of(secret)


def merged(secret: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """ExternalSecret name → the keys it merged into ``secret``."""
    notes = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    try:
        value = json.loads(notes.get(MERGED_KEYS_ANNOTATION) or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): [str(x) for x in v] for k, v in value.items() if isinstance(v, list)}


def _is_external(ref: Mapping[str, Any]) -> bool:
    return refers_to(ref, GROUP, KIND)


def writer(secret: Mapping[str, Any]) -> str | None:
    """The ExternalSecret recorded as writer of the whole Secret (Owner or Orphan), if any."""
    ref = controller(secret)
    if ref is not None:
        return str(ref.get("name")) if _is_external(ref) else None
    if merged(secret):
        return None  # the owner annotation of a merged Secret names a merger, not a writer
    name = ((secret.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
    return str(name) if name else None


def mine(secret: Mapping[str, Any], me: str) -> bool:
    """``me`` wrote ``secret`` (whole, or merged keys into it)."""
    return writer(secret) == me or me in merged(secret)


def rivals(secret: Mapping[str, Any], me: str, creation: str) -> list[Claim]:
    """The claims on ``secret`` that keep ExternalSecret ``me`` (with ``creation``) from
    writing it, if they still hold (see :attr:`Claim.external`). Pure."""
    meta = secret.get("metadata") or {}
    name = str(meta.get("name"))
    whole = creation in WHOLE
    # a SealedSecret merging in (its patch opt-in) keeps other keys: only a whole write clashes
    patched = (meta.get("annotations") or {}).get(PATCH_ANNOTATION) == "true"
    ref = controller(secret)
    out: list[Claim] = []
    if ref is not None and not (_is_external(ref) and ref.get("name") == me):
        kind = str(ref.get("kind"))
        # Merge into a Secret that some other controller owns is fine (as ESO), unless that
        # controller rewrites the data: another ExternalSecret, a SealedSecret
        if whole or kind == KIND or (kind == SEALED_KIND and not patched):
            out.append(Claim(kind, str(ref.get("name")), "controller"))
    if (SEALED_LABEL in (meta.get("labels") or {}) and (whole or not patched)
            and not any(c.kind == SEALED_KIND for c in out)):
        out.append(Claim(SEALED_KIND, name, "label"))
    mergers = merged(secret)
    if whole:
        out += [Claim(KIND, m, "merge") for m in sorted(mergers) if m != me]
    if ref is None and not mergers:
        annotated = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
        if annotated and annotated != me:
            out.append(Claim(KIND, str(annotated), "annotation"))
    return out


def still_claims(es: Mapping[str, Any] | None, secret: str, how: str) -> bool:
    """ExternalSecret ``es`` (as read now; None: gone) still claims Secret ``secret`` the way
    its mark says (``merge``: with Merge; otherwise writing the whole Secret)."""
    if es is None or (es.get("metadata") or {}).get("deletionTimestamp"):
        return False
    target = ((es.get("spec") or {}).get("target")) or {}
    if str(target.get("name") or (es.get("metadata") or {}).get("name")) != secret:
        return False
    policy = target.get("creationPolicy") or "Owner"
    return policy == "Merge" if how == "merge" else policy in WHOLE


def age(es: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key: older first (RFC 3339 UTC stamps sort as text), then by name."""
    meta = es.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name")))


def oldest(candidates: Sequence[Mapping[str, Any]]) -> str | None:
    """The name of the oldest ExternalSecret among ``candidates``."""
    if not candidates:
        return None
    return str((min(candidates, key=age).get("metadata") or {}).get("name"))


GetExternalSecret = Callable[[str], Awaitable[Mapping[str, Any] | None]]


async def conflict(get: GetExternalSecret, ns: str, me: str, name: str, creation: str,
                   current: Mapping[str, Any] | None, others: Sequence[str],
                   last: str | None) -> str | None:
    """Why ExternalSecret ``ns/me`` may not write Secret ``name`` (the message names who
    does), or None. ``get`` reads an ExternalSecret of ``ns`` by name (None: gone);
    ``others``: the other ExternalSecrets known to target the Secret; ``last``: the one the
    controller last saw writing it whole.

    A live claim recorded on the Secret wins. With none, among the ExternalSecrets that want
    the whole Secret, ``last``, else the oldest. Reads an ExternalSecret only when another
    claimant is recorded on the Secret or targets it."""
    how_to = "; change spec.target.name of one of them"
    if current is not None:
        for claim in rivals(current, me, creation):
            if not claim.external or still_claims(await get(claim.name), name, claim.how):
                return f"{claim.describe(ns, name)}: left alone{how_to}"
        if creation not in WHOLE or writer(current) == me:
            return None
    if not others:
        return None
    claimants = [es for es in [await get(me), *[await get(o) for o in others]]
                 if es is not None and still_claims(es, name, "whole")]
    names = {str((es.get("metadata") or {}).get("name")) for es in claimants}
    winner, why = last, "which wrote it last"
    if last not in names:
        winner, why = oldest(claimants), "which is older"
    if winner is None or winner == me:
        return None
    return (f"ExternalSecret {winner} also writes the whole Secret {ns}/{name}, {why}: "
            f"left alone{how_to}")


def state(secret: Mapping[str, Any] | None, me: str, ns: str, name: str, creation: str) -> str:
    """What is true of the Secret while ``me`` cannot sync: said, never assumed. Pure."""
    where = f"Secret {ns}/{name}"
    if creation == "None":
        return "no Secret is written (creationPolicy None)"
    if secret is None:
        return f"{where} does not exist and is not written"
    if mine(secret, me):
        return f"{where} keeps the values this ExternalSecret last wrote"
    return f"{where} exists but was not written by this ExternalSecret: left alone"


__all__ = ["WHOLE", "Claim", "GetExternalSecret", "age", "conflict", "controller", "merged",
           "mine", "oldest", "rivals", "state", "still_claims", "writer"]
