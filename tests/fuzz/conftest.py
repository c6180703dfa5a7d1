"""The fuzz suite's session hooks: per-target counts at the end, gpg stopped, kept inputs.

With pytest-xdist each worker counts its own inputs; the counts travel to the controller in
``workeroutput`` and are added up there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fuzz import harness, seeds

_TOTALS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="session", autouse=True)
def _fuzz_session() -> Iterator[None]:
    yield
    seeds.stop_gpg()


def _merge(stats: dict[str, dict[str, Any]]) -> None:
    for target, s in stats.items():
        t = _TOTALS.setdefault(target, {"inputs": 0, "distinct": 0, "outcomes": Counter(),
                                        "slowest": 0.0, "seconds": 0.0})
        t["inputs"] += s["inputs"]
        t["distinct"] += s["distinct"]
        t["outcomes"].update(s["outcomes"])
        t["slowest"] = max(t["slowest"], s["slowest"])
        t["seconds"] += s["seconds"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    if harness.KEPT:
        harness.write_kept()
    stats = harness.STATS.as_json()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fuzz_stats"] = json.dumps(stats)
    else:
        _merge(stats)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get("fuzz_stats")
    if raw:
        _merge(json.loads(raw))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TOTALS:
        return
    tr = terminalreporter
    tr.section("fuzz: inputs per target")
    total = distinct = 0
    for target in sorted(_TOTALS):
        t = _TOTALS[target]
        total += t["inputs"]
        distinct += t["distinct"]
        top = ", ".join(f"{k} {v}" for k, v in t["outcomes"].most_common(4))
        tr.write_line(f"{target:20} {t['inputs']:7} inputs ({t['distinct']} distinct), "
                      f"{t['seconds']:7.1f} s, slowest {t['slowest']:.2f} s; {top}")
    tr.write_line(f"{'total':20} {total:7} inputs ({distinct} distinct)")
