"""Bounds on what the stores write: output is held to the limits input is read with.

Two ways a file within the limits on input makes far larger output:

* **Indentation.** Where a store writes a tree in its own style (JSON always; YAML where it
  cannot splice into the original text: aliases expanded, a root that is not a block mapping,
  another input format), every line is indented by its depth. A 104 KB file nesting 50,000
  values 2,000 levels deep (``{a: [[[…1,1,1…]]]}``) became 408 MB of YAML (1.2 GB of memory)
  or 104 MB of JSON; 2 MB at the depth limit would make tens of GB. :func:`check_indentation`
  adds up the indentation before anything is written and refuses past
  :data:`~secretops.limits.MAX_INPUT_BYTES`.
* **The metadata.** An encrypted file carries its ``sops`` block in every document, and its
  values grow into ``ENC[…]`` strings: a file just inside a limit can encrypt into one past it,
  which no command would read back. :func:`check_writable` refuses such output, so that what
  secretops writes, it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secretops.core.tree import Branch, Seq
from secretops.limits import MAX_INPUT_BYTES, MAX_NODES, LimitError

_HINT = ("see 'Limits on input' in docs/security.md",)


def count_nodes(node: Any) -> int:
    """Nodes as the YAML reader counts them (the most any reader counts): every collection,
    key, value and comment."""
    count, todo = 0, [node]
    while todo:
        value = todo.pop()
        count += 1
        if isinstance(value, Branch):
            for item in value:
                if type(item) is tuple:
                    count += 1  # the key
                    todo.append(item[1])
                else:
                    count += 1  # a comment
        elif isinstance(value, Seq):
            todo += value
    return count


def yaml_nodes(docs: list[Branch], metadata: Branch) -> Callable[[], int]:
    """The nodes the YAML reader will count in these documents, each with its sops block."""
    return lambda: sum(count_nodes(doc) + 1 for doc in docs) + len(docs) * (
        count_nodes(metadata) + 1)


def check_writable(out: bytes, metadata: Branch | None, nodes: Callable[[], int]) -> bytes:
    """``out``, an encrypted file, if its store's reader would accept it: within the size
    limit, and within the node limit as ``nodes()`` counts them the way that reader does.
    Plaintext output passes (it holds fewer nodes than the file it came from)."""
    if metadata is None:
        return out
    if len(out) > MAX_INPUT_BYTES:
        raise LimitError(
            f"the encrypted file would be {len(out):,} bytes, over the limit of "
            f"{MAX_INPUT_BYTES:,} bytes, and no command could read it back", hints=_HINT)
    if len(out) > MAX_NODES:  # a node takes at least a byte: shorter output is within
        count = nodes()
        if count > MAX_NODES:
            raise LimitError(
                f"the encrypted file would hold {count:,} nodes (values, mappings, sequences, "
                f"comments or lines) with its sops metadata, more than {MAX_NODES:,}, and no "
                "command could read it back", hints=_HINT)
    return out


def check_indentation(doc: Any, map_child: Callable[[int], int],
                      seq_child: Callable[[int], int]) -> None:
    """Refuse to write ``doc`` when the indentation of its lines alone would pass
    :data:`~secretops.limits.MAX_INPUT_BYTES`: each item on a line of its own, the items of
    what a map entry holds at column ``map_child(column)``, of what a list item holds at
    ``seq_child(column)`` (the emitter's own rules)."""
    total = 0
    todo: list[tuple[Any, int]] = [(doc, 0)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, Branch):
            child = map_child(level)
            for item in node:
                total += level
                if type(item) is tuple and isinstance(item[1], Branch | Seq):
                    todo.append((item[1], child))
        elif isinstance(node, Seq):
            child = seq_child(level)
            for value in node:
                total += level
                if isinstance(value, Branch | Seq):
                    todo.append((value, child))
        if total > MAX_INPUT_BYTES:
            raise LimitError(
                f"the output would be over {MAX_INPUT_BYTES:,} bytes, most of it indentation "
                "(the file nests many values deeply)", hints=_HINT)
