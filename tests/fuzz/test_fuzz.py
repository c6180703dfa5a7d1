"""The fuzz suite: every target of :mod:`tests.fuzz.targets` under the harness.

* ``test_target`` — the default run: each target, derandomized (the same inputs every run, so
  CI never flakes on a new one), a few dozen inputs each;
* ``test_saved_inputs`` — every input kept in ``tests/testdata/fuzz/<target>/`` (inputs that
  once broke a rule, and interesting ones from long runs) replayed through its target;
* ``test_long`` — the long run, behind the ``fuzz`` marker (``pytest -m fuzz tests/fuzz``):
  new random inputs each run, ``SECRETOPS_FUZZ_EXAMPLES`` per target (default 2,000); the
  per-target counts are printed at the end (see ``conftest.py``).

How to run each, and what each target covers: ``docs/testing.md`` ("Fuzzing").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import FUZZ_DATA, run_input, warm
from tests.fuzz.mutate import MAX_INPUT
from tests.fuzz.targets import FUZZ

DEFAULT_EXAMPLES = int(os.environ.get("SECRETOPS_FUZZ_DEFAULT_EXAMPLES", "40"))
LONG_EXAMPLES = int(os.environ.get("SECRETOPS_FUZZ_EXAMPLES", "2000"))
_HEALTH = list(HealthCheck)
_warmed: set[str] = set()


def _fuzz(name: str, data: st.DataObject) -> None:
    fuzz = FUZZ[name]
    if name not in _warmed:
        warm(fuzz.target, fuzz.warm_seed())
        _warmed.add(name)
    data_in = data.draw(fuzz.inputs(), label="input")
    # a strategy past the bound is the harness's bug, not a finding against the product
    assert len(data_in) <= MAX_INPUT, f"{name}'s strategy made {len(data_in):,} bytes, " \
                                      f"over the bound of {MAX_INPUT:,}"
    run_input(fuzz.target, data_in)


@pytest.mark.parametrize("name", sorted(FUZZ))
@settings(max_examples=DEFAULT_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=_HEALTH, print_blob=False)
@given(data=st.data())
def test_target(name: str, data: st.DataObject) -> None:
    _fuzz(name, data)


@pytest.mark.fuzz
@pytest.mark.timeout(0)
@pytest.mark.parametrize("name", sorted(FUZZ))
def test_long(name: str) -> None:
    examples = max(1, int(LONG_EXAMPLES * FUZZ[name].weight))

    @settings(max_examples=examples, derandomize=False, database=None, deadline=None,
              suppress_health_check=_HEALTH, print_blob=True)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _fuzz(name, data)

    run()


def _saved() -> list[Path]:
    return sorted(p for p in FUZZ_DATA.glob("*/*") if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("path", _saved(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_inputs(path: Path) -> None:
    fuzz = FUZZ[path.parent.name]
    if fuzz.target.name not in _warmed:
        warm(fuzz.target, fuzz.warm_seed())
        _warmed.add(fuzz.target.name)
    run_input(fuzz.target, path.read_bytes())


def test_every_saved_input_has_a_target() -> None:
    assert {p.parent.name for p in _saved()} <= set(FUZZ)
