"""The INI store: sections ↔ one document of nested branches, as sops 3.11 (go-ini v1.67) does it.

The document is a branch of sections, each a branch of ``key: str`` pairs, so the key path (and
the encryption AAD) of a value is ``section:key:``. Reading follows go-ini's parser as sops
configures it (``ini.LoadSources(LoadOptions{AllowNonUniqueSections: true})``):

* keys before the first header go to an implicit ``DEFAULT`` section, which is always the first
  section of the tree, even when empty; a repeated ``[name]`` starts another section of that name;
* ``key = value`` or ``key: value``; key and value are trimmed; key case is kept; a repeated key
  in a section keeps its first position and takes the last value;
* in an unquoted value the first ``#`` or ``;`` starts an inline comment, a trailing ``\\``
  continues the value on the next line, and one pair of surrounding ``"`` or ``'`` is removed;
  a value in backquotes or in triple double quotes (which may span lines) is taken literally;
  nothing is interpolated (``%`` is plain text);
* comment lines (``#`` or ``;``) attach to the next key, or to the next section header when one
  comes first; a key's comment follows the key in the tree and is written before it. A comment
  at the end of the file is lost, as in sops.

Writing follows go-ini's ``WriteTo`` with sops's settings: ``[name]`` headers (none for a
leading ``DEFAULT``), a blank line between sections, ``=`` aligned one space after the longest key
of the section, comments as ``; text``, and values quoted when go-ini must (multi-line or a
backquote: ``\"\"\"``, ``#``/``;``: backquotes, outer spaces: ``"``). Metadata goes in a last
``[sops]`` section, flattened (see :mod:`secretops.stores._flatten`). sops writes those keys in
random order; we keep the order of the loaded file (``layout``) or else the wire order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secretops.core.tree import Branch, Comment, Seq
from secretops.errors import DumpError
from secretops.limits import check_input_size, check_lines
from secretops.stores import Loaded, StoreOptions
from secretops.stores._flatten import flatten_metadata, unflatten_metadata, val_to_string
from secretops.stores._goini import Parser, Section, write
from secretops.stores._output import check_writable


@dataclass(frozen=True)
class IniLayout:
    """What the tree does not say about a loaded file: the order of the ``[sops]`` keys."""

    sops_keys: tuple[str, ...] = ()


class IniStore:
    """``.ini`` files."""

    name = "ini"

    def __init__(self, options: StoreOptions) -> None:
        self.options = options

    def load(self, data: bytes) -> Loaded:
        check_input_size(data)
        check_lines(data)
        if data[:2] in (b"\xfe\xff", b"\xff\xfe"):
            data = data[2:]
        elif data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
        sections = Parser(data.decode("utf-8", "surrogateescape")).parse()
        doc = Branch()
        metadata = None
        layout = IniLayout()
        for sec in sections:
            if sec.name == "sops":
                if metadata is None:  # sops reads the first [sops] section
                    flat = [(k, v[0]) for k, v in sec.keys.items()]
                    metadata = unflatten_metadata(flat)
                    layout = IniLayout(tuple(sec.keys))
                continue
            items = Branch()
            if sec.comment:
                items.append(Comment(_strip_comment_char(sec.comment)))
            for key, (value, comment) in sec.keys.items():
                items.append((key, value))
                if comment:
                    items.append(Comment(_strip_comment_char(comment)))
            doc.append((sec.name, items))
        return Loaded(docs=[doc], metadata=metadata, layout=layout)

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes:
        sections: list[Section] = []
        for doc in docs:
            for item in doc:
                if type(item) is tuple:
                    sections.append(_section_from_tree(*item))
        if metadata is not None:
            flat = flatten_metadata(metadata)
            if isinstance(layout, IniLayout) and layout.sops_keys:
                rank = {k: i for i, k in enumerate(layout.sops_keys)}
                flat.sort(key=lambda kv: rank.get(kv[0], len(rank)))  # stable: new keys last
            sections.append(Section("sops", keys={k: [v, ""] for k, v in flat}))
        out = write(sections).encode("utf-8", "surrogateescape")
        return check_writable(out, metadata, lambda: out.count(b"\n") + 1)  # its lines

    def emit_value(self, value: Any) -> bytes:
        """sops's INI ``EmitValue``: Go's ``json.Marshal`` of the value, compact."""
        from secretops.stores.json import go_marshal

        return go_marshal(value).encode("utf-8", "surrogateescape")


def _strip_comment_char(comment: str) -> str:
    if comment.startswith(";"):
        return comment.lstrip("; ")
    if comment.startswith("#"):
        return comment.lstrip("# ")
    return comment


def _section_from_tree(name: Any, tree: Any) -> Section:
    if not isinstance(name, str) or not name:
        raise DumpError("an INI section needs a non-empty name")
    if not isinstance(tree, Branch):
        raise DumpError(f"cannot write {name!r} as an INI section: its value is not a map")
    sec = Section(name)
    items = list(tree)
    if items and isinstance(items[0], Comment):
        sec.comment = str(items.pop(0))
    last: list[str] | None = None
    for item in items:
        if isinstance(item, Comment):
            if last is not None:
                last[1] = str(item)
            continue
        key, value = item
        if not isinstance(key, str) or not key:
            raise DumpError(f"[{name}]: an INI key needs a non-empty name")
        if isinstance(value, Branch | Seq | dict | list):
            raise DumpError(f"[{name}] {key}: cannot use a complex value in an INI file")
        text = val_to_string(value)
        if key in sec.keys:
            sec.keys[key][0] = text
        else:
            sec.keys[key] = [text, ""]
        last = sec.keys[key]
    return sec
