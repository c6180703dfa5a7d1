"""Calls to key services: back-off while throttled (equal jitter: half of each doubling span
sure, capped), nothing else retried, and the shared limit on calls in flight taken around each
try."""

from __future__ import annotations

import pytest

from secretops.keys import remote


class Throttled(Exception):
    pass


def _flaky(failures: list[Exception]) -> tuple[list[int], object]:
    calls: list[int] = []

    def request() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    return calls, request


def test_throttled_calls_are_tried_again_with_doubling_waits() -> None:
    calls, request = _flaky([Throttled()] * 5)
    waits: list[float] = []
    got = remote.call(request, lambda e: isinstance(e, Throttled),  # type: ignore[arg-type]
                      sleep=waits.append, random=lambda: 1.0)
    assert got == "ok" and len(calls) == 6
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_half_of_each_wait_is_sure() -> None:
    # however the dice fall, the tries span enough time to outlast a quota of one request a
    # second (full jitter could spend all seven tries within a second)
    _, request = _flaky([Throttled()] * 20)
    waits: list[float] = []
    with pytest.raises(Throttled):
        remote.call(request, lambda e: isinstance(e, Throttled),  # type: ignore[arg-type]
                    sleep=waits.append, random=lambda: 0.0)
    assert waits == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0] and sum(waits) >= 7.8


def test_waits_are_capped_and_attempts_bounded() -> None:
    calls, request = _flaky([Throttled()] * 20)
    waits: list[float] = []
    with pytest.raises(Throttled):
        remote.call(request, lambda e: isinstance(e, Throttled),  # type: ignore[arg-type]
                    sleep=waits.append, random=lambda: 1.0)
    assert len(calls) == remote.ATTEMPTS and max(waits) == remote.MAX_WAIT


def test_other_failures_are_not_retried() -> None:
    calls, request = _flaky([ValueError("down")])
    with pytest.raises(ValueError):
        remote.call(request, lambda e: isinstance(e, Throttled),  # type: ignore[arg-type]
                    sleep=lambda s: None, random=lambda: 1.0)
    assert len(calls) == 1


def test_the_shared_gate_is_held_only_during_a_try(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    gate = multiprocessing.get_context("fork").BoundedSemaphore(1)
    monkeypatch.setattr(remote, "_gate", gate)
    held: list[bool] = []

    def request() -> str:
        held.append(not gate.acquire(block=False))  # taken by call(): cannot take it again
        if len(held) == 1:
            raise Throttled()
        return "ok"

    def sleep(seconds: float) -> None:
        assert gate.acquire(block=False)  # free while waiting
        gate.release()

    assert remote.call(request, lambda e: isinstance(e, Throttled), sleep=sleep,
                       random=lambda: 0.5) == "ok"
    assert held == [True, True]
