"""The pure rules of sharding (``secretops_controller.shards``, issue 20): which shard a namespace
is in, how many shards a replica holds, what it takes, asks for and gives up, and which writes
the guard lets through. The controllers themselves, against the emulator, are
``test_sharding.py``."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secretops_controller.shards import (
    WANTED_BY,
    Ownership,
    Seen,
    fair_share,
    lease_name,
    may_write,
    plan,
    replicas_seen,
    shard_of,
)


def test_a_namespace_has_one_shard_for_good() -> None:
    # SHA-256 of the name: the same in every process and Python version (hash() is not)
    assert [shard_of(ns, 6) for ns in ("default", "team-a", "team-b", "kube-system")] == [
        shard_of(ns, 6) for ns in ("default", "team-a", "team-b", "kube-system")]
    assert shard_of("default", 6) == int.from_bytes(
        bytes.fromhex("37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f")[:8],
        "big") % 6
    assert {shard_of(f"ns-{i}", 1) for i in range(50)} == {0}
    spread = Counter(shard_of(f"ns-{i}", 6) for i in range(6000))
    assert set(spread) == set(range(6))
    assert all(800 < n < 1200 for n in spread.values()), spread


def test_lease_names_and_shares() -> None:
    assert lease_name("secretops-controller", 0) == "secretops-controller"
    assert lease_name("secretops-controller", 5) == "secretops-controller-shard-5"
    assert [fair_share(6, r) for r in (0, 1, 2, 3, 4, 6, 7)] == [6, 6, 3, 2, 2, 1, 1]


def free(n: int) -> list[Seen]:
    return [Seen(i, exists=False) for i in range(n)]


def test_alone_it_takes_every_shard() -> None:
    p = plan(free(6), set(), "a")
    assert (p.share, p.want, sorted(p.take), p.give_up, p.announce) == (
        6, 6, list(range(6)), (), None)


def test_a_new_replica_asks_the_busiest_and_gets_that_shard() -> None:
    seen = [Seen(i, "a" if i < 4 else "b", live=True) for i in range(6)]
    p = plan(seen, set(), "c")
    assert (p.share, p.want, p.take) == (2, 2, ())
    assert p.announce in (1, 2, 3)  # one of a's (four > share), never shard 0
    # a sees the ask: c counts, a's share is 2: it gives up the asked shard first
    asked = [Seen(s.shard, s.holder, True, "c" if s.shard == p.announce else "")
             for s in seen]
    assert replicas_seen(asked, "a") == {"a", "b", "c"}
    mine = plan(asked, {0, 1, 2, 3}, "a")
    assert mine.give_up[0] == p.announce and len(mine.give_up) == 2
    assert 0 not in mine.give_up  # shard 0 (cluster duties) is given up last
    # released for c: b (under its share now) leaves it to c, c takes it
    released = [Seen(s.shard, "" if s.shard in mine.give_up else s.holder, True,
                     s.wanted_by) for s in asked]
    assert p.announce not in plan(released, {4, 5}, "b").take
    assert plan(released, set(), "c").take[0] == p.announce


def test_the_shards_of_a_dead_replica_are_taken_once_expired() -> None:
    live = [Seen(i, "abc"[i // 2], live=True) for i in range(6)]
    assert plan(live, {0, 1}, "a").want == 0  # balanced: nothing to do
    dead = [Seen(s.shard, s.holder, s.holder != "c") for s in live]  # c's not renewed
    p = plan(dead, {0, 1}, "a")
    assert (p.share, p.want) == (3, 1) and set(p.take) == {4, 5}
    # while still live (not expired on our clock) they are not free
    assert plan(live, {0, 1}, "a").take == ()


def test_no_replica_keeps_more_than_its_share() -> None:
    seen = [Seen(i, "a" if i < 5 else "b", live=True) for i in range(6)]
    assert plan(seen, {0, 1, 2, 3, 4}, "a").give_up == (4, 3)
    assert plan(seen, {5}, "b").announce in (1, 2, 3, 4)  # it may ask too: a gives up anyway


def test_an_ask_is_granted_when_it_evens_out() -> None:
    seen = [Seen(i, "abc"[i // 2], live=True) for i in range(6)]
    p = plan(seen, set(), "d")  # 4 replicas, share 2: d holds none, asks for one
    assert (p.want, p.take) == (2, ()) and p.announce is not None
    asked = [Seen(s.shard, s.holder, True, "d" if s.shard == p.announce else "")
             for s in seen]
    owner = seen[p.announce].holder
    mine = {s.shard for s in seen if s.holder == owner}
    assert plan(asked, mine, owner).give_up == (p.announce,)  # 2 vs 0: granted
    # 2,2,1,1: no one asks any more (no one holds two more than another)
    after = [Seen(s.shard, "d" if s.shard == p.announce else s.holder, True) for s in seen]
    for me in "abcd":
        held = {s.shard for s in after if s.holder == me}
        q = plan(after, held, me)
        assert (q.give_up, q.announce, q.take) == ((), None, ()), (me, q)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=12),
       st.randoms(use_true_random=False))
def test_replicas_converge_to_their_fair_share(replicas: int, count: int,
                                               rnd: random.Random) -> None:
    """A model of the Lease store (a write is atomic, as with resourceVersions): replicas
    start one by one, each round each replica applies its plan; after a few rounds every shard
    is held by exactly one replica, and none holds more than its fair share."""
    holder = {i: "" for i in range(count)}
    wanted = {i: "" for i in range(count)}
    made: set[int] = set()
    names = [f"r{n}" for n in range(replicas)]
    considered: dict[str, dict[int, str]] = {n: {} for n in names}
    for rounds in range(8 * replicas + 6):
        started = names[:1 + rounds // 2]
        for me in rnd.sample(started, len(started)):
            for i, who in considered[me].items():  # asks answered last round: removed
                if holder[i] == me and wanted[i] == who:
                    wanted[i] = ""
            seen = [Seen(i, holder[i], bool(holder[i]) or bool(wanted[i]), wanted[i],
                         i in made) for i in range(count)]
            held = {i for i in range(count) if holder[i] == me}
            p = plan(seen, held, me)
            for i in p.give_up:
                holder[i] = ""
            got = 0
            for i in p.take:
                if got < p.want and (holder[i] in ("", me)) and wanted[i] in ("", me):
                    holder[i], wanted[i] = me, ""
                    made.add(i)
                    got += 1
            if p.announce is not None and got < p.want and not wanted[p.announce]:
                wanted[p.announce] = me
            considered[me] = {i: wanted[i] for i in range(count)
                              if holder[i] == me and wanted[i] and i not in p.give_up}
    counts = Counter(holder.values())
    assert "" not in counts, holder
    share = fair_share(count, replicas)
    assert max(counts.values()) <= share, (counts, share)


def test_the_write_guard_rules() -> None:
    home = "secretops-system"
    ns = next(f"ns-{i}" for i in range(100) if shard_of(f"ns-{i}", 6) == 3)
    assert may_write(ns, {3}, 6, home) and not may_write(ns, {0, 1, 2, 4, 5}, 6, home)
    assert may_write(None, {0}, 6, home) and not may_write(None, {1}, 6, home)
    assert may_write(home, set(), 6, home)  # Leases, the key ring: every replica's place
    assert may_write(ns, set(), 1, home)  # one shard: leadership decides, not the guard


def test_ownership_handles_only_the_active_shards() -> None:
    ns = next(f"ns-{i}" for i in range(100) if shard_of(f"ns-{i}", 6) == 2)
    o = Ownership(6, "home", held=frozenset({0, 2}))
    assert o.handles(ns) and o.handles(None) and o.cluster_duties
    o.surplus = frozenset({2})  # being given up: its handlers stop before the release
    assert not o.handles(ns) and o.active == {0}
    assert Ownership().handles("anything") and Ownership().cluster_duties


@pytest.mark.parametrize("count", [2, 6, 64])
def test_every_shard_has_a_lease_name_of_its_own(count: int) -> None:
    names = {lease_name("x", i) for i in range(count)}
    assert len(names) == count and WANTED_BY.startswith("secretops.dev/")


def test_what_is_remembered_survives_only_a_shard_held_throughout() -> None:
    """kopf starts again whenever the held shards change; what this replica remembers of the
    objects of a shard it held all along stays good, of a shard taken back (another replica
    may have handled it meanwhile) it does not."""
    ns = {s: next(f"ns-{i}" for i in range(200) if shard_of(f"ns-{i}", 6) == s)
          for s in range(6)}
    o = Ownership(6, "home")
    o.acquired({1, 2})
    o.held = frozenset({1, 2})
    before = o.snapshot()
    o.acquired({3})  # gained: its objects get a first look
    o.held = frozenset({1, 2, 3})
    assert [o.kept_since(before, ns[s]) for s in (1, 2, 3)] == [True, True, False]
    o.held = frozenset({1, 3})  # 2 lost, then taken back: a new term
    o.acquired({2})
    o.held = frozenset({1, 2, 3})
    assert [o.kept_since(before, ns[s]) for s in (1, 2, 3)] == [True, False, False]
    o.surplus = frozenset({1})  # being given up: not handled any more
    assert not o.kept_since(before, ns[1])
