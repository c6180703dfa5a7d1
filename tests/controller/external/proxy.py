"""A counting HTTP proxy between a provider client and OpenBao / moto, in a thread.

Every request is forwarded to the upstream server and recorded as ``(method, path, operation)``
(``operation``: the ``X-Amz-Target`` header of AWS JSON calls, else ""), so tests count the
requests a provider really makes; the remote keys an AWS JSON call names (``SecretIdList``,
``SecretId``, ``Names``, ``Name``) are recorded in ``keys``, one list per request.
``cut = True`` drops every connection without an answer, as an outage would (the servers keep
their in-memory state: they are never restarted).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class CountingProxy:
    upstream: str
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    keys: list[list[str]] = field(default_factory=list)  # AWS: the keys each request names
    stamps: list[float] = field(default_factory=list)  # time.monotonic() of each request
    cut: bool = False
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.stamps.clear()
            self.keys.clear()

    def count(self, operation: str | None = None, path_part: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, p, op in self.requests
                       if (operation is None or op == operation)
                       and (path_part is None or path_part in p))

    def start(self) -> CountingProxy:
        proxy = self
        target = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are two writes: with Nagle on, the second waits for the
            # client's delayed ACK, adding ~40 ms to every proxied request
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                if proxy.cut:
                    self.close_connection = True
                    self.connection.close()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                op = self.headers.get("X-Amz-Target", "")
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, op))
                    proxy.stamps.append(time.monotonic())
                    proxy.keys.append(_aws_keys(body) if op else [])
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward
            do_LIST = _forward  # Vault's LIST verb

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def keys_read(self, operation: str) -> list[str]:
        """Every remote key the AWS calls of ``operation`` named, repeats included."""
        with self._lock:
            return [k for (_, _, op), keys in zip(self.requests, self.keys, strict=True)
                    if op == operation for k in keys]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)


def _aws_keys(body: bytes | None) -> list[str]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    keys = [*(doc.get("SecretIdList") or []), *(doc.get("Names") or [])]
    keys += [doc[f] for f in ("SecretId", "Name") if isinstance(doc.get(f), str)]
    return [str(k) for k in keys]
