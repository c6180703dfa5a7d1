"""A Kubernetes API emulator for tests: ``python -m tests.k8s.emulator --port P``.

Standalone (no apiserver, no etcd): an in-memory store with the apiserver's semantics
(resourceVersion, generation, finalizers, garbage collection, CRDs with schema validation and a
status subresource, watch with resume/bookmarks/410) behind an aiohttp app that kopf, the
``kubernetes`` client and kubectl talk to unchanged; plus service-account tokens (TokenRequest,
TokenReview, issuer discovery), an audit log of service-account calls, a fault mode,
``services/proxy`` and an optional TLS mode. What it does not reproduce is listed in
``docs/testing.md``.
"""

from .server import Emulator, start
from .store import Store

__all__ = ["Emulator", "Store", "start"]
