"""Limits on input: how large a file may be, how deeply it may nest, how far its aliases expand.

Every file the CLI reads is checked against these before (size) or while (nesting, aliases) it
is parsed, so a planted file cannot make ``decrypt``, ``check``, ``git diff`` or the merge driver
hang or exhaust memory. The numbers, and why each is what it is, are in ``docs/security.md``
("Limits on input"); a test keeps that table in step with the constants here.

* **Input size** — :data:`MAX_INPUT_BYTES` for data files and manifests, :data:`MAX_CONFIG_BYTES`
  for ``.sops.yaml``. Checked on the bytes, before any parsing.
* **File lists** — :data:`MAX_FILE_LIST_BYTES` for a ``--files-from`` list and
  :data:`MAX_FILES` names in one many-file run (directories walked included): the names are
  the one thing such a run keeps for every file.
* **Nodes** — :data:`MAX_NODES` values, collections and comments per file, and
  :data:`MAX_DOCUMENTS` YAML documents: what a file costs in memory and time grows with these,
  not with its bytes. Counted as the file is read (YAML), or bounded before it is (the others).
* **Nesting** — :data:`MAX_DEPTH` mappings and sequences, the top-level mapping counting as one:
  what sops can write and read back (go-yaml stops at 10,000 block or flow levels, Go's
  ``encoding/json`` at 10,000).
* **Flow nesting** — :data:`MAX_FLOW_STEPS`: libyaml's scanner walks every open flow
  collection (``{…}``, ``[…]``) for every token it reads, so a YAML file costs it the sum,
  over its values, of the flow collections around each: 25 KB of ``{a: {a: …`` 5,000 deep
  took seconds, a million values 10,000 deep would take hours. The YAML readers add it up
  event by event and refuse past the limit, so libyaml never does more than that much of this
  work. Block nesting costs it nothing of the kind (the depth limit still applies).
* **Aliases** — go-yaml v3's rule (``allowedAliasRatio`` in its ``decode.go``), which is why sops
  refuses a "billion laughs" with "excessive aliasing": counting every node a decoder visits
  with aliases expanded, once more than 100 visits came through aliases and more than 1,000 were
  made in all, at most 99% may come through aliases up to 400,000 visits, sliding to 10% at
  4,000,000 and beyond. :class:`AliasBudget` applies it per YAML document, before an alias is
  expanded, so no more than that is ever built.
* **Indentation** — :data:`MAX_INDENT` spaces per level of JSON output (``--indent``,
  ``stores.json.indent`` in a ``.sops.yaml`` someone else may have written): each level of
  each line repeats it, so an unbounded one turns a small file into gigabytes. YAML needs no
  limit: go-yaml, and so sops and secretops, take more than 9 as 2.

Pure: no I/O.
"""

from __future__ import annotations

from secretops.errors import ConfigError, DumpError, FormatError

MAX_INPUT_BYTES = 128 * 1024 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 10_000
MAX_INDENT = 64  # JSON spaces per level (--indent, stores.*.indent): see check_indent
# many-file commands (secretops.bulk): a --files-from list, and the files of one run
MAX_FILE_LIST_BYTES = 64 * 1024 * 1024
MAX_FILES = 1_000_000
#: Values, mappings, sequences and comments in one file, aliases expanded: what its tree holds.
#: Each costs secretops ~0.3-1 KB while it reads, encrypts and writes it, and a value takes as
#: little as 2 bytes of YAML (``1,``), so the size limit alone let 128 MiB cost ~50 GB.
MAX_NODES = 1_000_000
#: YAML documents in one file: sops writes the whole ``sops:`` block (~1 KB) into each.
MAX_DOCUMENTS = 10_000
#: For every value of a YAML file, the flow collections around it, added up (see
#: :func:`too_much_flow`): a million values may sit 16 flow levels deep, a plain nest of
#: flow mappings may reach ~3,200 levels (flow sequences ~4,000); block style is not counted.
MAX_FLOW_STEPS = 16 * MAX_NODES

_RATIO_LOW = 400_000
_RATIO_HIGH = 4_000_000


class LimitError(FormatError):
    """An input is over one of the documented limits (exit code: that of invalid input)."""


def check_input_size(data: bytes | str, what: str = "the input") -> None:
    """Refuse data files and manifests over :data:`MAX_INPUT_BYTES`."""
    if len(data) > MAX_INPUT_BYTES:
        raise LimitError(
            f"{what} is {len(data):,} bytes, over the limit of {MAX_INPUT_BYTES:,} bytes",
            hints=("see 'Limits on input' in docs/security.md",),
        )


def check_config_size(data: bytes, file: str) -> None:
    """Refuse a ``.sops.yaml`` over :data:`MAX_CONFIG_BYTES`."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the config is {len(data):,} bytes, over the limit of {MAX_CONFIG_BYTES:,} bytes",
            file=file,
        )


def check_indent(indent: int) -> None:
    """Refuse JSON indentation over :data:`MAX_INDENT` spaces, before anything is written."""
    if indent > MAX_INDENT:
        raise DumpError(
            f"a JSON indentation of {indent:,} spaces is over the limit of {MAX_INDENT}",
            hints=("see 'Limits on input' in docs/security.md",),
        )


def too_many_nodes(line: int | None = None) -> LimitError:
    where = f"line {line}: " if line is not None else ""
    return LimitError(
        f"{where}the file holds more than {MAX_NODES:,} values, mappings, sequences and "
        "comments (aliases expanded)",
        hints=("see 'Limits on input' in docs/security.md",),
    )


def check_lines(data: bytes) -> None:
    """Refuse a line-based file (dotenv, INI) of more than :data:`MAX_NODES` lines: each line,
    blank or not, is an object while it is parsed."""
    if data.count(b"\n") >= MAX_NODES:
        raise LimitError(
            f"the file has more than {MAX_NODES:,} lines",
            hints=("see 'Limits on input' in docs/security.md",),
        )


def too_many_documents(line: int) -> LimitError:
    return LimitError(
        f"line {line}: the file holds more than {MAX_DOCUMENTS:,} YAML documents",
        hints=("see 'Limits on input' in docs/security.md",),
    )


def too_much_expansion(line: int) -> LimitError:
    return LimitError(
        f"line {line}: the values aliases copy would make the file larger than "
        f"{MAX_INPUT_BYTES:,} bytes",
        hints=("see 'Limits on input' in docs/security.md",),
    )


def too_deep(line: int | None = None) -> LimitError:
    where = f"line {line}: " if line is not None else ""
    return LimitError(
        f"{where}nested more than {MAX_DEPTH:,} levels deep (sops cannot read it back either)",
        hints=("see 'Limits on input' in docs/security.md",),
    )


def too_much_flow(line: int) -> LimitError:
    return LimitError(
        f"line {line}: values nested too deeply in flow collections ({{...}} or [...]): "
        f"over {MAX_FLOW_STEPS:,} levels counted for all the values together",
        hints=("write deeply nested data in block style (one level per indentation)",
               "see 'Limits on input' in docs/security.md"),
    )


def allowed_alias_ratio(visits: int) -> float:
    """go-yaml v3's ``allowedAliasRatio``: the share of visits that may come through aliases."""
    if visits <= _RATIO_LOW:
        return 0.99
    if visits >= _RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (visits - _RATIO_LOW) / (_RATIO_HIGH - _RATIO_LOW)


def _excessive(visits: int, aliased: int) -> bool:
    return aliased > 100 and visits > 1000 and aliased / visits > allowed_alias_ratio(visits)


class AliasBudget:
    """go-yaml's alias rule for one document, checked in document order.

    The parser counts the nodes it reads itself (``visits``, the document node included) and
    calls :meth:`expand` before it expands an alias of ``size`` nodes (the alias itself
    excluded). Between aliases only direct visits are made, during which the aliased share only
    falls, except where the allowed share falls faster (400,000 to 4,000,000 visits); go-yaml
    checks at every visit, so the points where its test can first fail — just before and after
    each expansion, 4,000,000 visits, the document's end — are checked here.
    """

    __slots__ = ("aliased", "checked")

    def __init__(self) -> None:
        self.aliased = 0
        self.checked = 0  # visits at the last check

    def _check_run(self, visits: int, line: int | None) -> None:
        if self.aliased <= 100:
            self.checked = visits
            return
        if (_excessive(visits, self.aliased)
                or (self.checked < _RATIO_HIGH <= visits
                    and _excessive(_RATIO_HIGH, self.aliased))):
            where = f"line {line}: " if line is not None else ""
            raise LimitError(
                f"{where}the document expands too many aliases (excessive aliasing: the limit "
                "sops also applies)",
                hints=("see 'Limits on input' in docs/security.md",),
            )
        self.checked = visits

    def expand(self, visits: int, size: int, line: int | None = None) -> int:
        """Account for an alias (already counted in ``visits``) about to be expanded into
        ``size`` nodes; returns the new visit count. Raises :class:`LimitError` when go-yaml
        would refuse the document here."""
        self._check_run(visits, line)
        visits += size
        self.aliased += size
        self._check_run(visits, line)
        return visits

    def finish(self, visits: int) -> None:
        """The document ended after ``visits`` visits."""
        if self.aliased:
            self._check_run(visits, None)
