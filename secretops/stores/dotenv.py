"""The dotenv store: ``KEY=value`` lines ↔ one flat document, exactly as sops 3.11 reads and writes.

sops's dotenv format is deliberately simple (``stores/dotenv/store.go``), and so is this one:

* the file is split on ``\\n``; empty lines are skipped (and not written back);
* a line starting with ``#`` is a comment (the text after ``#``, spaces kept);
* any other line is split at its first ``=``: the key is everything before it, **untrimmed**
  (``export A`` is the key ``export A``), the value everything after it, also untrimmed — quotes,
  spaces and ``#`` are part of the value. A ``\\r`` before the newline stays in the value. A line
  without ``=`` is an error;
* the two characters ``\\n`` in a value are read as a newline and written back as ``\\n``;
* every value is a string; duplicate keys are kept.

Bytes that are not UTF-8 are kept (as surrogate escapes) so they round-trip exactly, as Go's
byte strings do. In an encrypted file the metadata is the set of keys starting with ``sops_``,
flattened (see :mod:`secretops.stores._flatten`) and written sorted after the data.
"""

from __future__ import annotations

from typing import Any

from secretops.core.tree import Branch, Comment, Seq
from secretops.errors import DumpError, ExitCode, FormatError, SecretOpsError
from secretops.limits import check_input_size, check_lines
from secretops.stores import Loaded, StoreOptions
from secretops.stores._flatten import flatten_metadata, unflatten_metadata, val_to_string
from secretops.stores._output import check_writable

PREFIX = "sops_"


class DotenvStore:
    """``.env`` files."""

    name = "dotenv"

    def __init__(self, options: StoreOptions) -> None:
        self.options = options

    def load(self, data: bytes) -> Loaded:
        check_input_size(data)
        check_lines(data)
        text = data.decode("utf-8", "surrogateescape")
        doc = Branch()
        flat: list[tuple[str, str]] = []
        for number, line in enumerate(text.split("\n"), 1):
            if not line:
                continue
            if line[0] == "#":
                doc.append(Comment(line[1:]))
                continue
            key, eq, value = line.partition("=")
            if not eq:
                raise FormatError(f"line {number}: invalid dotenv line (no '=')")
            value = value.replace("\\n", "\n")
            if key.startswith(PREFIX):
                flat.append((key[len(PREFIX) :], value))
            else:
                doc.append((key, value))
        metadata = unflatten_metadata(flat) if flat else None
        return Loaded(docs=[doc], metadata=metadata)

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes:
        if not docs:
            raise FormatError("there is no document to write")
        lines: list[str] = []
        for item in docs[0]:
            if type(item) is not tuple:
                lines.append(f"#{item}\n")
                continue
            key, value = item
            if isinstance(value, Branch | Seq | dict | list):
                raise SecretOpsError(
                    f"cannot use complex value in dotenv file; offending key {key}",
                    code=ExitCode.ERROR_DUMPING_TREE,
                )
            text = value.replace("\n", "\\n") if isinstance(value, str) else val_to_string(value)
            lines.append(f"{key}={text}\n")
        if metadata is not None:
            # sops sorts the flattened keys (Go's sort.Strings; UTF-8 byte order = code point order)
            for key, value in sorted(flatten_metadata(metadata)):
                lines.append(f"{PREFIX}{key}={value}\n")
        out = "".join(lines).encode("utf-8", "surrogateescape")
        return check_writable(out, metadata, lambda: out.count(b"\n") + 1)  # its lines

    def emit_value(self, value: Any) -> bytes:
        """sops's dotenv ``EmitValue`` writes strings only (and those never come here)."""
        kind = {bool: "bool", int: "int", float: "float64", type(None): "<nil>"}.get(
            type(value), "[]interface {}" if isinstance(value, Seq) else "a comment")
        raise DumpError(f"the dotenv store only supports emitting strings, got {kind}")
