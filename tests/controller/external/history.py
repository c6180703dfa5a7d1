"""Every version of one Secret, as a watch delivers them: a flip cannot slip between two polls."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
from urllib.parse import quote, urlsplit

from tests.fixtures.k8s import K8s


class SecretHistory:
    """Watch Secret ``ns/name`` from now on; :attr:`versions` holds each version's data
    (``None``: deleted). Use as a context manager (the watch is closed at the end)."""

    def __init__(self, k8s: K8s, ns: str, name: str) -> None:
        url = urlsplit(k8s.url)
        assert url.scheme == "http" and url.hostname, "a plain-HTTP emulator"
        self._conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        self._conn.request("GET", f"/api/v1/namespaces/{ns}/secrets?watch=true&fieldSelector="
                                  f"{quote(f'metadata.name={name}')}&timeoutSeconds=600")
        self._resp = self._conn.getresponse()
        assert self._resp.status == 200, self._resp.status
        self.versions: list[dict[str, bytes] | None] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # the stream ends when close() shuts the socket down: whatever the reader then raises
        with contextlib.suppress(Exception):
            for line in self._resp:
                if not line.strip():
                    continue
                ev = json.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "DELETED":
                    self.versions.append(None)
                elif ev.get("type") in ("ADDED", "MODIFIED"):
                    self.versions.append({k: base64.b64decode(v) for k, v in (
                        obj.get("data") or {}).items()})

    def seen(self) -> list[dict[str, bytes] | None]:
        return list(self.versions)

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._conn.close()

    def __enter__(self) -> SecretHistory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
