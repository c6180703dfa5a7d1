"""Deep flow nesting (``{a: {a: …`` and ``[[[…``): libyaml's work is bounded, without a clock.

libyaml's scanner walks every open flow collection for every token it reads, so its work on a
file is the sum, over the events it yields, of the flow collections open at each (a block
collection adds nothing). 25 KB of flow mappings 5,000 deep took it seconds, a million values
under 10,000 levels would take hours. The readers count that work as they take the events and
refuse past :data:`~secretops.limits.MAX_FLOW_STEPS`: a parser wrapped here counts the same
work on its own and must never see more than that, whatever the input's size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secretops import yamlload
from secretops.errors import SecretOpsError
from secretops.limits import MAX_DEPTH, MAX_FLOW_STEPS
from secretops.stores import get_store
from tests.helpers import AgeKey, secretops, sops

CORPUS = Path(__file__).resolve().parents[1] / "testdata" / "fuzz" / "store-yaml"
FLOW_MESSAGE = "nested too deeply in flow collections"


class CountingParser:
    """A libyaml parser that adds up, event by event, the flow collections open at each."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self.open = 0
        self.work = 0

    def get_event(self) -> Any:
        ev = self._parser.get_event()
        self.work += self.open
        if getattr(ev, "flow_style", False) and type(ev).__name__.endswith("StartEvent"):
            self.open += 1
        elif type(ev).__name__ in ("MappingEndEvent", "SequenceEndEvent") and self.open:
            # a block collection inside a flow one cannot be: an end closes a flow one while
            # any is open
            self.open -= 1
        return ev

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


@pytest.fixture
def parsers(monkeypatch: pytest.MonkeyPatch) -> list[CountingParser]:
    made: list[CountingParser] = []
    real = yamlload.event_parser

    def counting(text: str, strings: bool = False) -> CountingParser:
        made.append(CountingParser(real(text, strings) if strings else real(text)))
        return made[-1]

    monkeypatch.setattr(yamlload, "event_parser", counting)
    return made


def _store(data: bytes) -> object:
    return get_store("yaml").load(data)


def _manifest(data: bytes) -> object:
    return yamlload.load_all(data, "m.yaml")


def _config(data: bytes) -> object:
    return yamlload.load(data, ".sops.yaml", config=True)


READERS: dict[str, Callable[[bytes], object]] = {
    "store": _store, "manifest": _manifest, "config": _config}


def _flow_maps(levels: int, after: str = "") -> bytes:
    return ("{a: " * levels + "x" + "}" * levels + after).encode()


HOSTILE = {
    # the fuzz corpus's: 25 KB, 5,000 levels of flow mappings, then text that is not YAML
    "corpus-deep-flow": (CORPUS / "slow-deep-flow-833534a980.yaml").read_bytes(),
    # the same shape at twice the depth: four times the work, if it were all done
    "deep-flow-x2": _flow_maps(MAX_DEPTH - 10, "a: x\n"),
    # many values under deep flow nesting: depth times values
    "values-under-flow": b"a: " + b"[" * 2000 + b"1," * 20_000 + b"1" + b"]" * 2000 + b"\n",
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", HOSTILE)
def test_refused_before_libyaml_does_more_than_the_limit(
        name: str, reader: str, parsers: list[CountingParser]) -> None:
    with pytest.raises(SecretOpsError, match=FLOW_MESSAGE) as e:
        READERS[reader](HOSTILE[name])
    assert e.value.code == (5 if reader == "config" else 150)
    assert parsers, "the reader took its events from yamlload.event_parser"
    # the last event counted may be the one over the limit: it sits at most MAX_DEPTH deep
    assert all(p.work <= MAX_FLOW_STEPS + MAX_DEPTH for p in parsers), [
        p.work for p in parsers]


@pytest.mark.parametrize("reader", READERS)
def test_flow_nesting_within_the_limit_is_read(reader: str,
                                               parsers: list[CountingParser]) -> None:
    # a nest of flow mappings 3,000 deep, and a long flat flow list: the limit is on the sum
    text = b"a: " + _flow_maps(3000) + b"\nb: [" + b"1," * 200_000 + b"1]\n"
    READERS[reader](text)
    assert sum(p.work for p in parsers) <= MAX_FLOW_STEPS


def test_block_nesting_costs_no_flow_steps(parsers: list[CountingParser]) -> None:
    _store(b"a:\n" + b"- " * (MAX_DEPTH - 1) + b"x\n")
    assert parsers and all(p.work == 0 for p in parsers)


def test_the_cli_refuses_deep_flow_with_a_hint(tmp_path: Path, age_key: AgeKey) -> None:
    path = tmp_path / "deep.yaml"
    path.write_bytes(HOSTILE["corpus-deep-flow"])
    r = secretops("encrypt", "--age", age_key.recipient, str(path))
    assert r.code == 150 and not r.out
    lines = r.err.splitlines()
    assert lines[0].startswith(f"secretops: error: {path}: line 1: values {FLOW_MESSAGE}")
    assert lines[1] == ("secretops: hint: write deeply nested data in block style (one level "
                        "per indentation)")


def test_flow_nesting_sops_writes_back_in_block_style(sops_bin: str, age_key: AgeKey,
                                                      tmp_path: Path) -> None:
    """A flow nest within the limit encrypts; sops decrypts it (in block style, as it writes
    every file), and that output, however deep, is read at no flow cost."""
    plain = tmp_path / "flow.yaml"
    plain.write_text("a: " + "{b: " * 3000 + "x" + "}" * 3000 + "\n")
    ours = secretops("encrypt", "--age", age_key.recipient, str(plain))
    assert ours.code == 0, ours.err
    (tmp_path / "ours.enc.yaml").write_bytes(ours.out)
    theirs = sops(sops_bin, "decrypt", str(tmp_path / "ours.enc.yaml"))
    assert theirs.code == 0, theirs.err
    assert theirs.out.rstrip().endswith(b"b: x")
    back = secretops("decrypt", str(tmp_path / "ours.enc.yaml"))
    assert back.code == 0 and back.out == plain.read_bytes(), back.err
