"""Helpers for the emulator's tests: polling with a deadline, reading a raw watch stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # polling interval of a loop with a deadline


def watch_events(
    url: str, path: str, count: int | None = None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Open a raw watch (``path`` includes ``watch=true``) and read its events.

    Returns after ``count`` events, or when the server closes the stream.
    """
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        events: list[dict[str, Any]] = []
        while count is None or len(events) < count:
            line = resp.readline()
            if not line:
                break
            events.append(json.loads(line))
        return events
    finally:
        conn.close()
