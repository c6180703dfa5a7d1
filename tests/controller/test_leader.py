"""Leader election on a coordination.k8s.io/v1 Lease (issue 7: "two controller replicas → one
leader in steady state, the other takes over when it stops").

Two controller processes run against one emulator with short Lease timings. Only the holder of
the Lease runs kopf (watches and handlers); the other serves HTTP from the key ring it reads. The
leader is stopped with SIGTERM (it releases the Lease: takeover within a retry period) and with
SIGKILL (nothing released: takeover once the Lease expires). Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
from secretops_controller import kube
from secretops_controller.leader import LeaderElector, LeaseRecord, claim, micro_time, released
from secretops_controller.shardelect import ShardElector
from secretops_controller.shards import lease_name

from tests.controller.conftest import SYSTEM_NS, Controller, prepare_cluster
from tests.controller.helpers import (
    CANARY,
    apply,
    events,
    leads,
    lease,
    metrics,
    seal,
    secret,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s

APP = "leader"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.2
ELECTION = ("--lease-duration", f"{LEASE_DURATION}s", "--renew-deadline", f"{RENEW_DEADLINE}s",
            "--retry-period", f"{RETRY_PERIOD}s", "--key-renew-period", "0",
            "--key-refresh-interval", "0.5s")
TAKEOVERS: dict[str, float] = {}
REPLICAS: list[Controller] = []  # started in this module (the fixture stops them all)


def _replica(start_controller: Any, name: str) -> Controller:
    ctl: Controller = start_controller(*ELECTION, env={"POD_NAME": name})
    REPLICAS.append(ctl)
    return ctl


def _holder(k8s: K8s) -> str:
    return str(((lease(k8s, SYSTEM_NS) or {}).get("spec") or {}).get("holderIdentity") or "")


def _unsealed_by(k8s: K8s, cert: Path, name: str) -> None:
    apply(k8s, seal(cert, "-n", APP, "--name", name, "--from-literal", f"v={CANARY}"))
    wait_for(lambda: values(secret(k8s, APP, name)) == {"v": CANARY.encode()}, timeout=15,
             what=f"Secret {name} unsealed")


def _steady(k8s: K8s, leader: Controller, follower: Controller, holder: str,
            period: float) -> None:
    """For ``period`` seconds (several renewals), every sample shows one and the same leader."""
    first = (lease(k8s, SYSTEM_NS) or {})["spec"]["renewTime"]
    end = time.monotonic() + period
    while time.monotonic() < end:
        assert _holder(k8s) == holder
        assert (leads(leader), leads(follower)) == (True, False)
        time.sleep(0.05)  # sampling interval of a check that must hold throughout
    assert (lease(k8s, SYSTEM_NS) or {})["spec"]["renewTime"] > first  # the leader renews


def _takeover(k8s: K8s, ctl: Controller, holder: str, timeout: float) -> float:
    started = time.monotonic()
    wait_for(lambda: leads(ctl) is True and _holder(k8s) == holder, timeout=timeout,
             what=f"{holder} leading")
    return time.monotonic() - started


@pytest.fixture(scope="module")
def cluster(k8s_emulator: K8s) -> K8s:
    prepare_cluster(k8s_emulator, APP)
    return k8s_emulator


def test_one_leader_unseals_once_and_sigterm_hands_over(
        cluster: K8s, k8s: K8s, start_controller: Any, tmp_path: Path) -> None:
    a = _replica(start_controller, "replica-a")
    wait_for(lambda: leads(a), what="replica-a leading")
    b = _replica(start_controller, "replica-b")  # healthy (serves HTTP) without leading
    assert leads(b) is False

    spec = (lease(k8s, SYSTEM_NS) or {})["spec"]
    assert spec["holderIdentity"] == "replica-a"
    assert spec["leaseDurationSeconds"] == 3 and spec["acquireTime"] and spec["renewTime"]
    transitions = int(spec.get("leaseTransitions") or 0)
    _steady(k8s, a, b, "replica-a", 3 * RETRY_PERIOD + 0.5)

    status, text = b.get("/v1/cert")  # any replica serves the cert, from the ring it reads
    assert status == 200 and (200, text) == a.get("/v1/cert")
    cert = tmp_path / "cert.txt"
    cert.write_text(text)
    _unsealed_by(k8s, cert, "first")
    wait_for(lambda: metrics(a).get("secretops_unseals_total", 0) >= 1, what="a counted it")
    wait_for(lambda: "Secret leader/first created" in a.logs(),
             what="the leader's log line")  # written just after the Secret
    assert "Secret leader/first" not in b.logs()  # the follower ran no handler
    wait_for(lambda: len(events(k8s, APP, "first", "Unsealed")) == 1, what="one Event")
    mb = metrics(b)
    assert mb["secretops_leader"] == 0 and mb.get("secretops_unseals_total", 0) == 0
    assert metrics(a)["secretops_leader"] == 1

    first_path = f"/apis/secretops.dev/v1alpha1/namespaces/{APP}/sealedsecrets/first"
    wait_for(lambda: (k8s.request("GET", first_path)[1].get("status") or {}).get(
        "observedGeneration") == 1, what="first's status written")
    first = k8s.request("GET", first_path)[1]
    # handled by an event handler: kopf leaves no progress or diffbase annotation behind
    assert not any(k.startswith("secretops.dev/")
                   for k in first["metadata"].get("annotations") or {}), first["metadata"]

    stopped = time.monotonic()
    a.stop()  # SIGTERM: handlers stop, then the Lease is released
    took = _takeover(k8s, b, "replica-b", timeout=LEASE_DURATION)
    TAKEOVERS["sigterm"] = time.monotonic() - stopped
    assert took < LEASE_DURATION  # well before the Lease would have expired
    assert "released Lease secretops-system/secretops-controller" in a.logs()
    spec = (lease(k8s, SYSTEM_NS) or {})["spec"]
    assert spec["leaseTransitions"] >= transitions + 1
    assert metrics(b)["secretops_leader"] == 1

    _unsealed_by(k8s, cert, "after-sigterm")
    wait_for(lambda: "Secret leader/after-sigterm created" in b.logs(),
             what="the leader's log line")  # written just after the Secret
    # the new leader looked at "first" once (as a resume) and found it up to date: no write
    # to the Secret, no Event, not even a status write
    wait_for(lambda: metrics(b).get("secretops_unseals_total", 0) >= 2,
             what="the new leader checked first")
    assert len(events(k8s, APP, "first", "Unsealed")) == 1
    assert k8s.request("GET", first_path)[1]["metadata"]["resourceVersion"] == \
        first["metadata"]["resourceVersion"]


def test_sigkill_takeover_after_the_lease_expires(
        k8s: K8s, start_controller: Any, tmp_path: Path) -> None:
    running = [c for c in REPLICAS if c.proc is not None and c.proc.poll() is None]
    b = wait_for(lambda: next((c for c in running if leads(c)), None),
                 what="the leader from the previous test") if running else None
    if b is None:  # this test run alone
        b = _replica(start_controller, "replica-b")
        wait_for(lambda: leads(b), what="replica-b leading")
    holder = _holder(k8s)
    c = _replica(start_controller, "replica-c")
    assert leads(c) is False
    status, text = c.get("/v1/cert")
    assert status == 200
    cert = tmp_path / "cert.txt"
    cert.write_text(text)
    transitions = (lease(k8s, SYSTEM_NS) or {})["spec"]["leaseTransitions"]

    killed = time.monotonic()
    b.kill()  # no release: the Lease still names the dead holder
    assert _holder(k8s) == holder
    took = _takeover(k8s, c, "replica-c", timeout=LEASE_DURATION + 5)
    TAKEOVERS["sigkill"] = took
    assert took >= LEASE_DURATION - 2 * RETRY_PERIOD - 0.5  # it waited for the expiry
    assert took <= LEASE_DURATION + 5
    spec = (lease(k8s, SYSTEM_NS) or {})["spec"]
    assert spec["leaseTransitions"] == transitions + 1
    print(f"takeover after SIGTERM {TAKEOVERS.get('sigterm', float('nan')):.2f} s, "
          f"after SIGKILL {took:.2f} s (lease {LEASE_DURATION} s) from {killed:.0f}")

    _unsealed_by(k8s, cert, "after-sigkill")
    wait_for(lambda: "Secret leader/after-sigkill created" in c.logs(),
             what="the leader's log line")  # written just after the Secret


def test_claim_decisions() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    stamp = micro_time(at)
    assert stamp == "2026-01-01T00:00:00.000000Z"
    new = claim(None, "me", False, at, 2.5)
    assert new == LeaseRecord("me", 3, stamp, stamp, 0)  # whole seconds, rounded up
    held = LeaseRecord("other", 15, "t0", "t1", 4)
    assert claim(held, "me", False, at, 15) is None  # held and fresh
    taken = claim(held, "me", True, at, 15)  # expired on our clock
    assert taken == LeaseRecord("me", 15, stamp, stamp, 5)
    mine = LeaseRecord("me", 15, "t0", "t1", 5)
    renewed = claim(mine, "me", False, at, 15)
    assert renewed == LeaseRecord("me", 15, "t0", stamp, 5)  # acquireTime, transitions kept
    free = released(mine, at)
    assert free.holder == "" and free.transitions == 5
    assert claim(free, "other", False, at, 15) == LeaseRecord("other", 15, stamp, stamp, 6)


@pytest.mark.parametrize("shards", [1, 3])
def test_a_kopf_stop_does_not_end_the_election(
        cluster: K8s, monkeypatch: pytest.MonkeyPatch, shards: int) -> None:
    """kopf, when it stops (deposed, or the held shards changed), cancels every task created
    since it started, ours included ("hung tasks", kopf's run_tasks). A Lease request then in
    flight must cost one renewal at most: before, its task's CancelledError (``wait_for``'s
    inner task, or a shard's task in the round's ``gather``) ended the election, and ``serve``
    re-raised it: the whole controller exited (bench --scale at 5,000, under load)."""
    k8s = cluster
    monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig))
    base = f"stray-{shards}"
    names = [lease_name(base, i) for i in range(shards)]

    async def scenario() -> tuple[bool, frozenset[int] | bool]:
        api = kube.Kube(kube.login)
        timings = {"lease_duration": 8.0, "renew_deadline": 6.0, "retry_period": 0.1}
        elector: LeaderElector | ShardElector = (
            LeaderElector(api, SYSTEM_NS, base, "me", **timings) if shards == 1 else
            ShardElector(api, SYSTEM_NS, base, "me", shards, **timings))
        election = asyncio.create_task(elector.run(), name="election")  # before kopf, as serve

        def holding() -> frozenset[int] | bool:
            return (elector.is_leader if isinstance(elector, LeaderElector)
                    else elector.held == frozenset(range(shards)) and elector.held)

        try:
            await _until(holding, 10, "the Leases held")
            stop = asyncio.Event()

            async def operator() -> None:  # what operator._kopf does around kopf
                existing = asyncio.all_tasks()
                root = asyncio.create_task(stop.wait(), name="kopf root")
                await kopf.run_tasks([root], ignored=existing)

            running = asyncio.create_task(operator(), name="kopf operator")
            # the next renewal of every Lease is held up by the API: in flight when kopf stops
            k8s.delay(2000, count=shards, match={"verb": "update", "resource": "leases",
                                                 "name": names})
            await _until(lambda: not k8s.faults()["rules"], 10, "the renewals in flight")
            running.cancel()  # what operator._lead does when the shards change
            with contextlib.suppress(asyncio.CancelledError):
                await running
            # the election goes on, and renews again once the API answers
            stopped = micro_time(datetime.now(UTC))

            def renewed_since() -> bool:
                return all(str((lease(k8s, SYSTEM_NS, n) or {}).get("spec", {}).get(
                    "renewTime") or "") > stopped for n in names)

            await _until(lambda: election.done() or renewed_since(), 15,
                         "renewals after kopf stopped")
            return election.done(), holding()
        finally:
            await _stop(k8s, election, api)

    ended, held = asyncio.run(scenario())
    assert not ended, "the election ended when kopf stopped"
    assert held


async def _stop(k8s: K8s, election: asyncio.Task[None], api: kube.Kube) -> None:
    """A test's end: no fault left, the election cancelled, the client closed."""
    k8s.clear_faults()
    election.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await election
    await api.close()


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)  # polling interval of a loop with a deadline
    return result


class _BrokenLeaseWrites(kube.Kube):
    """The API client, except that writes of the Lease named ``broken`` raise an error no
    Lease step expects (a bug, a malformed answer): no server can be made to raise it."""

    broken = ""

    async def replace(self, path: str, obj: Any) -> dict[str, Any]:
        if self.broken and path.endswith("/" + self.broken):
            raise RuntimeError("unexpected failure of one shard's renewal")
        return await super().replace(path, obj)


def test_one_shards_unexpected_failure_does_not_drop_the_others(
        cluster: K8s, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round renews every held shard at once (a TaskGroup). Before, one renewal raising an
    unexpected error cancelled its siblings' renewals in flight, round after round, so the
    healthy shards were lost at their renew deadline too; and the broken one was never given
    up (only an ApiError counted towards the renew deadline)."""
    k8s = cluster
    monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig))
    base = "broken-shard"
    bad, good = lease_name(base, 0), lease_name(base, 1)

    async def scenario() -> tuple[bool, frozenset[int]]:
        api = _BrokenLeaseWrites(kube.login)
        elector = ShardElector(api, SYSTEM_NS, base, "me", 2, lease_duration=3.0,
                               renew_deadline=2.0, retry_period=0.1)
        election = asyncio.create_task(elector.run())
        try:
            await _until(lambda: elector.held == frozenset({0, 1}), 10, "both shards held")
            # the healthy renewal is still in flight when the broken one raises
            k8s.delay(300, match={"verb": "update", "resource": "leases", "name": good})
            api.broken = bad
            since = micro_time(datetime.now(UTC))

            def renewed() -> bool:
                return str((lease(k8s, SYSTEM_NS, good) or {}).get("spec", {}).get(
                    "renewTime") or "") > since

            # the broken shard is given up at its renew deadline; the healthy one is kept
            await _until(lambda: election.done() or (renewed() and 0 not in elector.held), 8,
                         "the healthy shard renewed, the broken one given up")
            return election.done(), elector.held
        finally:
            await _stop(k8s, election, api)

    ended, held = asyncio.run(scenario())
    assert not ended
    assert held == frozenset({1})
