"""The sealing key ring: age keys kept as Secrets in the controller's namespace.

Each key is one Secret labelled ``secretops.dev/sealing-key: "true"``, made by
:func:`secretops.sealing.keyring.keyring_secret` (format: docs/crypto.md, "Key ring"). All keys
unseal; only the **newest** is published for sealing — served on ``GET /v1/cert`` and in the
ConfigMap ``secretops-sealing-recipients`` — so a renewal moves new SealedSecrets to the new
key while old ones keep opening.

A new key is made when the ring is empty, when the newest key is older than
``--key-renew-period`` (0: never), or when it was made before ``--key-cutoff-time``. Keys are
never deleted by the controller. Several replicas may race to make a key: names are the
creation second, so the loser gets 409 and re-reads the ring.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from secretops.sealing import IdentitySet
from secretops.sealing.keyring import (
    CREATED_ANNOTATION,
    KEY_LABEL,
    RECIPIENT_ANNOTATION,
    format_recipients_file,
    identities_from_secrets,
    keyring_secret,
)
from secretops_controller import kube
from secretops_controller.config import RECIPIENTS_CONFIGMAP, Config
from secretops_controller.metrics import Metrics
from secretops_controller.runtime import now, rfc3339

log = logging.getLogger(__name__)
RECIPIENTS_KEY = "recipients.txt"


@dataclass(frozen=True)
class Key:
    name: str
    created: datetime
    recipient: str


def parse_keys(secrets: list[dict[str, Any]]) -> list[Key]:
    """The ring's keys, oldest first (pure: from the listed Secrets)."""
    keys = []
    for s in secrets:
        meta = s.get("metadata") or {}
        ann = meta.get("annotations") or {}
        try:
            created = datetime.fromisoformat(str(ann[CREATED_ANNOTATION]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            created = datetime.fromisoformat(
                str(meta.get("creationTimestamp", "1970-01-01T00:00:00Z")).replace("Z", "+00:00"))
        keys.append(Key(str(meta.get("name")), created, str(ann.get(RECIPIENT_ANNOTATION, ""))))
    return sorted(keys, key=lambda k: (k.created, k.name))


def renewal_due(keys: list[Key], at: datetime, period: float,
                cutoff: datetime | None) -> str | None:
    """Why a new key is needed now, or None (pure)."""
    if not keys:
        return "the key ring is empty"
    newest = keys[-1]
    if cutoff is not None and newest.created < cutoff:
        return f"the newest key {newest.name} was made before the cutoff time {rfc3339(cutoff)}"
    if period > 0 and at - newest.created >= timedelta(seconds=period):
        return f"the newest key {newest.name} is older than the renew period"
    return None


class KeyRing:
    """The ring as the controller sees it; :meth:`ensure` keeps it current."""

    def __init__(self, api: kube.Kube, config: Config, metrics: Metrics) -> None:
        self.api = api
        self.config = config
        self.metrics = metrics
        self.keys: list[Key] = []
        self.identities = IdentitySet()
        self._lock = asyncio.Lock()
        self._published = ""

    @property
    def newest(self) -> Key | None:
        return self.keys[-1] if self.keys else None

    def recipients_file(self) -> str:
        """What ``seal --cert`` reads: the newest key only (older keys only unseal)."""
        newest = self.newest
        if newest is None:
            return ""
        comment = (f"secretops sealing key {newest.name} (created {rfc3339(newest.created)})\n"
                   f"from the controller in namespace {self.config.namespace}")
        return format_recipients_file([newest.recipient], comment)

    async def load(self) -> None:
        """Re-read the ring from the API."""
        items = await self.api.list(kube.secrets(self.config.namespace), f"{KEY_LABEL}=true")
        for item in items:
            item.setdefault("kind", "Secret")  # list items carry no kind
        keys = parse_keys(items)
        ids = identities_from_secrets(items, "key ring") if items else IdentitySet()
        self.keys, self.identities = keys, ids
        self.metrics.sealing_keys.set(len(keys))
        if keys:
            self.metrics.newest_key_created = keys[-1].created.timestamp()

    async def ensure(self) -> Key | None:
        """Load the ring, add a key if one is due, publish the recipients. The new key, if any."""
        async with self._lock:
            await self.load()
            made = None
            why = renewal_due(self.keys, now(), self.config.key_renew_period,
                              self.config.key_cutoff_time)
            if why:
                made = await self._create(why)
                await self.load()
            await self._publish()
            return made

    async def _create(self, why: str) -> Key | None:
        from pyrage import x25519

        ident = x25519.Identity.generate()
        created = now()
        secret = keyring_secret(str(ident), str(ident.to_public()), created,
                                self.config.namespace)
        try:
            await self.api.create(kube.secrets(self.config.namespace), secret)
        except kube.ApiError as e:
            if e.status == 409:  # another replica made it this second
                return None
            raise
        key = Key(secret["metadata"]["name"], created.replace(microsecond=0),
                  str(ident.to_public()))
        log.info("created sealing key %s (%s): %s", key.name, key.recipient, why)
        return key

    async def _publish(self) -> None:
        text = self.recipients_file()
        if not text or text == self._published:
            return
        path = kube.configmaps(self.config.namespace, RECIPIENTS_CONFIGMAP)
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": RECIPIENTS_CONFIGMAP, "namespace": self.config.namespace,
                             "labels": {"app.kubernetes.io/name": "secretops"}},
                "data": {RECIPIENTS_KEY: text}}
        try:
            await self.api.merge_patch(path, {"data": body["data"]})
        except kube.ApiError as e:
            if e.status != 404:
                raise
            await self.api.create(kube.configmaps(self.config.namespace), body)
        self._published = text

    async def run(self) -> None:
        """Renew and re-read the ring forever (a task started with the operator)."""
        while True:
            delay = self.config.key_refresh_interval
            newest = self.newest
            if newest is not None and self.config.key_renew_period > 0:
                due = newest.created + timedelta(seconds=self.config.key_renew_period)
                delay = min(delay, max((due - now()).total_seconds(), 0.05))
            await asyncio.sleep(delay)
            try:
                await self.ensure()
            except kube.ApiError as e:
                log.warning("key ring: %s (retrying in %.1f s)", e,
                            self.config.retry_base_delay)
                await asyncio.sleep(self.config.retry_base_delay)

