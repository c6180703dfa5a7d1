"""The YAML store: sops-compatible trees, and output that keeps the file as it was written.

**Reading.** libyaml (through PyYAML's C event parser) reports where every scalar starts and
ends. One pass over the events builds the document trees sops would build (same values, same
types — see :mod:`._yamlscalar` — same comment lines in the same branches) and, beside them, a
*layout*: the text, and for every leaf in walk order the span of text it came from and its
style (plain, quoted, block; block or flow context).

**Writing.** With a layout, output is the original text with each changed leaf's span replaced
(``password: s3cret  # db`` becomes ``password: ENC[…]  #ENC[…]``) and the ``sops:`` block
appended to (or removed from) each document. Everything else — indentation, quoting, blank
lines, ``---``, key order, flow collections, anchors on kept values — stays byte-identical.
Values keep their style: a quoted value stays quoted, a block scalar becomes ``|-`` followed by
the ENC line and comes back as the same block on decryption (its chomping indicator is derived
from the value). Where splicing cannot be faithful to sops's tree, the document is re-emitted in
sops's style: aliases and merge keys (sops expands them, because each value's key path is
authenticated), and roots that are not block mappings. When the options ask for sops's output
(:attr:`StoreOptions.reindent`: ``--indent``, or ``stores.yaml.indent`` in ``.sops.yaml``),
every document is re-emitted, byte for byte as sops writes it with that indentation.

Comment lines belong to the branch that contains them: a comment's column decides between the
branches open at that point (the deepest whose items start at or before the comment's column),
which is where go-yaml, and so sops, attaches them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import yaml as _pyyaml

from secretops import yamlload
from secretops.core.cipher import ENC_PREFIX, is_encrypted
from secretops.core.tree import Branch, Comment, Seq, to_plain
from secretops.core.values import Timestamp
from secretops.errors import DumpError, FormatError, MetadataError
from secretops.limits import (
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_FLOW_STEPS,
    MAX_INPUT_BYTES,
    MAX_NODES,
    AliasBudget,
    check_input_size,
    too_deep,
    too_many_documents,
    too_many_nodes,
    too_much_expansion,
    too_much_flow,
)
from secretops.stores import Loaded, StoreOptions
from secretops.stores._output import check_writable, yaml_nodes
from secretops.stores._yamlemit import emit_document, emit_entry
from secretops.stores._yamlscalar import (
    UnsupportedScalar,
    literal_block,
    plain_allowed,
    plain_string,
    plain_word,
    render_number,
    render_str_inline,
    resolve_plain,
)

_E = _pyyaml.events
_COMMENT_RE = re.compile(r"(?:^|(?<=[ \t\n]))#[^\n]*")
_COMMENT_LINE = re.compile(r"(?m)^[ \t]*#[^\n]*(?:\n|\Z)")
DEFAULT_INDENT = 4
_NOKEY = object()
_frame_col = attrgetter("col")


class DocLayout:
    """Where one document sits in the text, and the spans of its leaves in walk order."""

    __slots__ = ("end", "indent", "root_block_map", "sops_range", "spans", "spliceable",
                 "start", "values")

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = -1
        self.spans: list[Any] = []
        self.root_block_map = False
        self.spliceable = True
        self.sops_range: tuple[int, int] | None = None
        self.indent: int | None = None
        self.values: list[Any] = []


# How many files :meth:`YamlStore.emit_metadata` wrote by splicing only the sops block (a count
# the tests read to see that the fast path is taken where it should be)
METADATA_SPLICES = [0]


class Layout(NamedTuple):
    text: str
    bom: bool
    eol: str
    docs: list[DocLayout]
    reemit: bool = False  # the tree's shape changed: keep only the indentation

    def for_reemit(self) -> Layout:
        return self._replace(reemit=True)


class _Frame:
    __slots__ = (
        "anchor", "col", "flow", "is_map", "key", "key_start", "node", "seen", "spans",
        "value_start", "visits",
    )

    def __init__(self, is_map: bool, flow: bool, col: int) -> None:
        self.is_map = is_map
        self.flow = flow
        self.col = col
        self.node: Branch | Seq = Branch() if is_map else Seq()
        self.spans: list[Any] = []
        self.key: Any = _NOKEY
        self.key_start = 0
        self.value_start = 0
        self.seen: set[Any] = set()
        self.anchor: str | None = None  # set with ``visits`` (when it opened) if anchored
        self.visits = 0


def _scalar_start(text: str, start: int, has_props: bool) -> int:
    """Skip an anchor and/or tag at the start of a scalar event's span."""
    if not has_props:
        return start
    i = start
    n = len(text)
    while i < n and text[i] in "&!":
        while i < n and text[i] not in " \t\r\n":
            i += 1
        while i < n and text[i] in " \t\r\n":
            i += 1
    return i


# Core-schema tags that change how go-yaml reads the text: sops drops them with the rest of the
# layout, and so must an encrypted value (``!!binary ENC[...]`` would not decode).
_TYPED_TAGS: dict[str, Any] = {
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": bool,
    "tag:yaml.org,2002:null": type(None),
    "tag:yaml.org,2002:binary": None,
    "tag:yaml.org,2002:timestamp": Timestamp,
}


def _anchor_end(text: str, start: int) -> int:
    """Skip an anchor (only) at the start of a scalar event's span."""
    if text[start] != "&":
        return start
    i = start
    while i < len(text) and text[i] not in " \t\r\n":
        i += 1
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


# First characters with which a plain scalar can resolve to something other than a string.
# first characters of plain words that may not stay plain: YAML 1.2 bools / nulls / numbers,
# and the YAML 1.1 bools (yes, on, off, y, n) that are quoted as sops quotes them
_MAY_RESOLVE = frozenset("tTfFnN~.+-0123456789<yYoO")


def _resolve(ev: Any) -> Any:
    tag = ev.tag
    if ev.style == "" and (tag is None or tag == "!"):
        return resolve_plain(ev.value)
    if tag in (None, "!", "tag:yaml.org,2002:str") or (ev.style != "" and tag is None):
        return ev.value
    if tag == "tag:yaml.org,2002:binary":
        import base64

        try:
            data = base64.b64decode("".join(ev.value.split()), validate=True)
        except ValueError:
            raise UnsupportedScalar("a value tagged binary is not valid base64") from None
        return data.decode("utf-8", "surrogateescape")
    if tag in _TYPED_TAGS:
        value = resolve_plain(ev.value)
        if tag == "tag:yaml.org,2002:float" and type(value) is int:
            return float(value)
        expected = _TYPED_TAGS[tag]
        if expected is not None and not isinstance(value, expected):
            raise UnsupportedScalar(f"a value tagged {tag.rsplit(':', 1)[-1]} is not one")
        return value
    return ev.value  # custom tags: go-yaml decodes the scalar as a string


class _Builder:
    """One pass over libyaml events: trees plus layouts."""

    __slots__ = ("anchor_sizes", "anchors", "budget", "doc", "docs", "expanded", "last_end",
                 "last_flow_closed", "last_frame", "last_was_value", "layouts", "metas",
                 "pending_comments", "root", "sops_frame_depth", "sops_key_start", "stack",
                 "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.docs: list[Branch] = []
        self.metas: list[Branch | None] = []
        self.layouts: list[DocLayout] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Any] = {}
        # nodes an anchor's value expands to (go-yaml's count); -1 while it is still open
        self.anchor_sizes: dict[str, int] = {}
        self.budget = AliasBudget()
        self.expanded = len(text)  # the text, and the bytes of the values aliases copy
        self.pending_comments: list[tuple[int, int]] = []
        self.root: _Frame | None = None
        self.doc: DocLayout | None = None
        self.sops_frame_depth = -1
        self.sops_key_start = 0
        self.last_end = 0
        self.last_frame: _Frame | None = None
        self.last_was_value = False
        self.last_flow_closed: tuple[_Frame, int] | None = None

    # -- comments ---------------------------------------------------------------------------
    def scan(self, start: int, end: int) -> int:
        """Find the comments between ``start`` and ``end``; how many there were."""
        if end <= start or self.text.find("#", start, end) < 0:
            return 0
        found = 0
        find = self.text.find
        for m in _COMMENT_RE.finditer(self.text, start, end):
            found += 1
            s, e = m.start(), m.end()
            if self.text[e - 1 : e] == "\r":
                e -= 1
            closed = self.last_flow_closed
            # find, not a slice: a slice copies the gap, quadratic over many comment lines
            if closed is not None and find("\n", closed[1], s) < 0:
                # after a flow collection, sops gives the line comment to that collection
                if self.sops_frame_depth < 0:
                    closed[0].node.insert(0, Comment(self.text[s + 1 : e]))
                    closed[0].spans.insert(0, ("c", s, e, "", False, closed[0].col))
                continue
            frame = self.last_frame
            if frame is not None and find("\n", self.last_end, s) < 0:
                # A line comment belongs with the key/value on its line, and sops puts it
                # before that item (which matters for the comment-regex rules).
                if self.sops_frame_depth >= 0:
                    continue
                at = len(frame.node) - 1 if self.last_was_value else len(frame.node)
                frame.node.insert(at, Comment(self.text[s + 1 : e]))
                frame.spans.insert(at, ("c", s, e, "", False, frame.col))
                continue
            self.pending_comments.append((s, e))
        return found

    def header_comment(self, frame: _Frame, start: int, end: int) -> None:
        """A comment after a block scalar's indicator (``key: | # note``) is inside the
        scalar's span, where the gap scan cannot see it. It goes before the item, as sops
        puts it; the splice leaves the header line's rest to it."""
        ind_end, hdr_end, _ = _block_header(self.text, start, end)
        m = _COMMENT_RE.search(self.text, ind_end, hdr_end)
        if m is not None:
            frame.node.append(Comment(self.text[m.start() + 1 : m.end()]))
            frame.spans.append(("c", m.start(), m.end(), "", False, frame.col))

    def place_comments(self) -> None:
        if not self.pending_comments or not self.stack:
            return
        text, stack = self.text, self.stack
        for s, e in self.pending_comments:
            col = s - (text.rfind("\n", 0, s) + 1)
            # the deepest frame that is flow or starts at or before the comment's column: flow
            # frames are the top of the stack (a flow collection holds only flow ones) and block
            # columns never decrease upwards, so a bisection finds it (a walk down 10,000
            # levels for each of a million comments would not end)
            if stack[-1].flow:
                at = len(stack) - 1
            else:
                at = max(bisect_right(stack, col, key=_frame_col) - 1, 0)
            target = stack[at]
            if self.sops_frame_depth >= 0 and at >= self.sops_frame_depth:
                continue  # comments inside the sops block are not part of the data
            target.node.append(Comment(text[s + 1 : e]))
            target.spans.append(("c", s, e, "", False, target.col))
        self.pending_comments.clear()

    # -- values -----------------------------------------------------------------------------
    def add_value(self, value: Any, span: Any, child: _Frame | None = None) -> None:
        frame = self.stack[-1]
        if frame.is_map:
            key = frame.key
            frame.key = _NOKEY
            frame.node.append((key, value))
            if frame is self.root and key == "sops" and self.sops_frame_depth < 0:
                self.sops_frame_depth = len(self.stack) if child is not None else -2
                self.sops_key_start = frame.key_start
                if child is None:
                    self.end_sops()
        else:
            frame.node.append(value)
        frame.spans.append(span)

    def end_sops(self) -> None:
        assert self.doc is not None
        text = self.text
        start = text.rfind("\n", 0, self.sops_key_start) + 1
        end = self.last_end
        if end > 0 and text[end - 1] != "\n":
            nl = text.find("\n", end)
            end = len(text) if nl < 0 else nl + 1
        self.doc.sops_range = (start, end)
        self.sops_frame_depth = -1

    def run(self) -> None:
        text = self.text
        find = text.find
        stack = self.stack
        pos = 0
        S, MS, ME, SS, SE, A = (_E.ScalarEvent, _E.MappingStartEvent, _E.MappingEndEvent,
                                _E.SequenceStartEvent, _E.SequenceEndEvent, _E.AliasEvent)
        parser = yamlload.event_parser(text)
        visits = 1  # nodes go-yaml would visit so far in this document (see limits.AliasBudget)
        room = MAX_NODES  # for this document's visits: the limit less comments, earlier documents
        next_hash = find("#")  # comments are looked for only in gaps that may hold one
        # libyaml walks every open flow collection for each token: bound that work
        flow_open = flow_steps = 0
        # one C call per event (yaml.parse adds a generator and a second call)
        for ev in iter(parser.get_event, None):
            t = type(ev)
            if flow_open:
                flow_steps += flow_open
                if flow_steps > MAX_FLOW_STEPS:
                    raise too_much_flow(ev.start_mark.line + 1)
            start = ev.start_mark.index
            if start > pos and 0 <= next_hash < start:
                if next_hash < pos:  # that '#' was inside a scalar: find the next
                    next_hash = find("#", pos)
                if 0 <= next_hash < start:
                    room -= self.scan(pos, start)
                    next_hash = find("#", start)
                    if visits > room:
                        raise too_many_nodes(ev.start_mark.line + 1)
            if t is S:
                visits += 1
                if visits > room:
                    raise too_many_nodes(ev.start_mark.line + 1)
                if self.pending_comments:
                    self.place_comments()
                self.last_flow_closed = None
                end = ev.end_mark.index
                pos = self.last_end = end
                raw = ev.value
                tag = ev.tag
                try:
                    if ev.style == "" and tag is None and raw and (
                        raw[0] not in _MAY_RESOLVE or plain_string(raw)
                    ):
                        value = raw  # cannot be null, bool, number or timestamp: a string
                    else:
                        value = _resolve(ev)
                except UnsupportedScalar as e:
                    raise FormatError(f"line {ev.start_mark.line + 1}: {e}") from None
                if not stack:  # a document that is a bare scalar
                    if value is not None:
                        raise FormatError(
                            f"line {ev.start_mark.line + 1}: YAML documents that are "
                            "values are not supported (the top level must be a mapping)"
                        )
                    continue
                frame = stack[-1]
                self.last_frame = frame
                anchor = ev.anchor
                if frame.is_map and frame.key is _NOKEY:
                    if type(value) is not str:
                        raise FormatError(
                            f"line {ev.start_mark.line + 1}: a {type(value).__name__} key "
                            "is not a string; sops supports only string keys (quote it)"
                        )
                    if anchor:
                        self.anchors[anchor] = value
                        self.anchor_sizes[anchor] = 1
                    if value in frame.seen:
                        raise FormatError(
                            f"line {ev.start_mark.line + 1}: mapping key {value!r} already "
                            "defined; duplicate keys are not allowed (sops rejects them too)"
                        )
                    frame.seen.add(value)
                    frame.key = value
                    frame.key_start = start
                    self.last_was_value = False
                    continue
                if anchor or tag:
                    if anchor:
                        self.anchors[anchor] = value
                        self.anchor_sizes[anchor] = 1
                    # typed tags go with the text they typed; an anchor and other tags stay
                    vstart = (_anchor_end(text, start) if tag in _TYPED_TAGS
                              else _scalar_start(text, start, True))
                    # a tagged plain scalar keeps its tag, which carries its type: plain
                    style = ("!" if tag and tag not in _TYPED_TAGS and ev.style == ""
                             and tag != "!" else ev.style)
                else:
                    vstart, style = start, ev.style
                if (style == "|" or style == ">") and self.sops_frame_depth < 0:
                    self.header_comment(frame, vstart, end)
                span = ("s", vstart, end, style, frame.flow, frame.col)
                if frame.is_map and frame is not self.root:
                    # add_value's common case: a value in a nested mapping
                    frame.node.append((frame.key, value))
                    frame.key = _NOKEY
                    frame.spans.append(span)
                else:
                    self.add_value(value, span)
                self.last_was_value = True
            elif t is MS or t is SS:
                visits += 1
                if len(stack) >= MAX_DEPTH:
                    raise too_deep(ev.start_mark.line + 1)
                if visits > room:
                    raise too_many_nodes(ev.start_mark.line + 1)
                self.last_flow_closed = None
                is_map = t is MS
                flow = bool(ev.flow_style)
                col = ev.start_mark.column
                child = _Frame(is_map, flow, col)
                pos = ev.end_mark.index
                if not self.stack:
                    if not is_map:
                        raise FormatError(
                            f"line {ev.start_mark.line + 1}: YAML documents that are sequences "
                            "are not supported (the top level must be a mapping)"
                        )
                    child.col = 0 if not flow else col
                    self.root = child
                    assert self.doc is not None
                    self.doc.root_block_map = not flow
                    self.stack.append(child)
                else:
                    parent = self.stack[-1]
                    if parent.is_map and parent.key is _NOKEY:
                        raise FormatError(
                            f"line {ev.start_mark.line + 1}: complex (non-scalar) mapping keys "
                            "are not supported; sops supports only string keys"
                        )
                    if parent.flow:
                        child.flow = True
                    self.add_value(child.node, child.spans, child)
                    self.stack.append(child)
                if child.flow:
                    flow_open += 1
                if ev.anchor:
                    self.anchors[ev.anchor] = child.node
                    self.anchor_sizes[ev.anchor] = -1
                    child.anchor, child.visits = ev.anchor, visits - 1
                if self.pending_comments:
                    self.place_comments()
            elif t is ME or t is SE:
                if self.pending_comments:
                    self.place_comments()
                pos = max(pos, ev.end_mark.index)
                closed_frame = self.stack.pop()
                if closed_frame.flow:
                    flow_open -= 1
                if closed_frame.anchor is not None:
                    self.anchor_sizes[closed_frame.anchor] = visits - closed_frame.visits
                if closed_frame.flow:
                    self.last_end = pos  # a flow collection ends at its bracket
                self.last_frame = None
                self.last_flow_closed = (closed_frame, pos) if closed_frame.flow else None
                if self.sops_frame_depth == len(self.stack):
                    self.end_sops()
            elif t is A:
                if self.pending_comments:
                    self.place_comments()
                pos = self.last_end = ev.end_mark.index
                try:
                    target = self.anchors[ev.anchor]
                except KeyError:
                    raise FormatError(
                        f"line {ev.start_mark.line + 1}: unknown anchor {ev.anchor!r}"
                    ) from None
                size = self.anchor_sizes[ev.anchor]
                if size < 0:  # go-yaml: "anchor … value contains itself"
                    raise FormatError(f"line {ev.start_mark.line + 1}: the alias {ev.anchor!r} "
                                      "refers to a value that contains it")
                # refused here, before anything is copied, when go-yaml would refuse it
                visits = self.budget.expand(visits + 1, size, ev.start_mark.line + 1)
                if visits > room:
                    raise too_many_nodes(ev.start_mark.line + 1)
                depth, size_bytes = _measure(target)
                self.expanded += size_bytes  # sops writes each copy: bound the bytes too
                if self.expanded > MAX_INPUT_BYTES:
                    raise too_much_expansion(ev.start_mark.line + 1)
                assert self.doc is not None
                self.doc.spliceable = False  # sops expands aliases: re-emit this document
                frame = self.stack[-1]
                if frame.is_map and frame.key is _NOKEY:
                    frame.key = target
                    frame.key_start = start
                    self.last_frame, self.last_was_value = frame, False
                    continue
                if len(stack) + depth > MAX_DEPTH:
                    raise too_deep(ev.start_mark.line + 1)
                value, spans = _copy_with_spans(target)
                self.add_value(value, spans)
                self.last_frame, self.last_was_value = frame, True
            elif t is _E.DocumentStartEvent:
                if ev.version is not None and tuple(ev.version) != (1, 1):
                    raise FormatError(
                        f"line {ev.start_mark.line + 1}: %YAML "
                        f"{'.'.join(map(str, ev.version))}: sops reads only YAML 1.1 "
                        "directives (go-yaml refuses this document)"
                    )
                if len(self.layouts) >= MAX_DOCUMENTS:
                    raise too_many_documents(ev.start_mark.line + 1)
                self.doc = DocLayout(start=ev.end_mark.index)
                room -= self.scan(start, ev.end_mark.index)  # comments between directives, ---
                pos = ev.end_mark.index
                self.anchors = {}
                self.anchor_sizes = {}
                self.budget = AliasBudget()
                visits = 1
            elif t is _E.DocumentEndEvent:
                assert self.doc is not None
                if self.root is None:
                    self.root = _Frame(True, False, 0)
                    self.stack.append(self.root)
                    self.place_comments()
                    self.stack.pop()
                    self.doc.root_block_map = False
                else:
                    self.stack.append(self.root)
                    self.place_comments()
                    self.stack.pop()
                self.doc.end = start
                self.budget.finish(visits)
                room -= visits
                self.finish_doc(self.root)
                self.root = None
                pos = ev.end_mark.index
        if self.pending_comments:
            self.pending_comments.clear()
        parser.dispose()

    def finish_doc(self, root: _Frame) -> None:
        assert self.doc is not None
        node, spans = root.node, root.spans
        meta = None
        for i, item in enumerate(node):
            if type(item) is tuple and item[0] == "sops":
                meta = item[1]
                if not isinstance(meta, Branch):
                    # sops refuses to encrypt it (exit 203) and cannot decrypt it: not data
                    raise FormatError(
                        f"document {len(self.docs) + 1}: the top-level sops entry is not a "
                        "mapping; sops keeps its metadata under that key",
                        hints=("rename the entry if this file is not encrypted",),
                    )
                del node[i]
                del spans[i]
                break
        self.docs.append(node if isinstance(node, Branch) else Branch())
        self.metas.append(meta if isinstance(meta, Branch) else None)
        self.doc.spans = _flatten(spans)
        values: list[Any] = []
        _leaves(node, values)
        self.doc.values = values
        self.doc.indent = _detect_indent(self.text, self.doc)
        self.layouts.append(self.doc)


def _measure(node: Any) -> tuple[int, int]:
    """How many levels of collections ``node`` holds (0 for a scalar), and the bytes of its
    keys and values (about what sops writes for each copy an alias makes)."""
    deepest, size, todo = 0, 0, [(node, 1)]
    while todo:
        value, level = todo.pop()
        if isinstance(value, Branch):
            deepest = max(deepest, level)
            for i in value:
                if type(i) is tuple:
                    size += len(i[0]) if type(i[0]) is str else 8
                    todo.append((i[1], level + 1))
        elif isinstance(value, Seq):
            deepest = max(deepest, level)
            todo += [(v, level + 1) for v in value]
        else:
            size += len(value) if isinstance(value, str | bytes) else 8
    return deepest, size


def _copy_with_spans(node: Any) -> tuple[Any, Any]:
    """An alias's value, copied (sops expands aliases, and each copy is changed on its own),
    with the spans of a value that has no text of its own: None for every leaf. Without
    recursion: a value may nest as deep as the limit allows."""
    if not isinstance(node, Branch | Seq):
        return node, None
    top: Any = type(node)()
    top_spans: list[Any] = []
    todo = [(node, top, top_spans)]
    while todo:
        src, dst, spans = todo.pop()
        is_branch = type(src) is Branch
        for item in src:
            value = item[1] if is_branch and type(item) is tuple else item
            if isinstance(value, Branch | Seq) and not (is_branch and type(item) is not tuple):
                child: Any = type(value)()
                child_spans: list[Any] = []
                todo.append((value, child, child_spans))
                dst.append((item[0], child) if is_branch else child)
                spans.append(child_spans)
            else:
                dst.append(item)
                spans.append(None)
    return top, top_spans


def _flatten(spans: list[Any]) -> list[Any]:
    """The spans of a document's frames (nested lists) in walk order."""
    out: list[Any] = []
    append = out.append
    todo = [iter(spans)]
    while todo:
        for s in todo[-1]:
            if type(s) is list:
                todo.append(iter(s))
                break
            append(s)
        else:
            todo.pop()
    return out


def _detect_indent(text: str, doc: DocLayout) -> int | None:
    m = re.search(r"^([^\s#-][^\n]*):[ \t]*(?:#[^\n]*)?\n((?:[ \t]*(?:#[^\n]*)?\n)*)( +)\S",
                  text[doc.start : doc.end] if doc.end >= 0 else text[doc.start :], re.M)
    if m and not m.group(1).startswith(" "):
        return len(m.group(3))
    return None


def yaml_step(indent: int) -> int:
    """sops's indent option as go-yaml applies it: 0 is sops's default, fewer than 2 or more
    than 9 spaces are 2 (``yaml_emitter_emit_stream_start``); negative is refused (exit 4)."""
    if indent < 0:
        raise DumpError("a negative YAML indentation is not accepted",
                        hints=("give --indent or stores.yaml.indent 0 (the default, 4) or more",))
    if indent == 0:
        return DEFAULT_INDENT
    return indent if 2 <= indent <= 9 else 2


def _decode(data: bytes) -> tuple[str, bool]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not valid UTF-8 text (byte offset {e.start})") from None
    bom = text.startswith("\ufeff")
    return (text[1:] if bom else text), bom


class YamlStore:
    """YAML documents (``---`` separated), comments kept and encrypted like sops does."""

    name = "yaml"

    def __init__(self, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()

    def load(self, data: bytes) -> Loaded:
        check_input_size(data)
        text, bom = _decode(data)
        if "\x00" in text:
            raise FormatError("the input contains NUL bytes; it is not YAML text")
        builder = _Builder(text)
        try:
            try:
                builder.run()
            except _pyyaml.YAMLError as e:
                # libyaml's own nesting limit (1,000) is below ours: lift it, read again
                if not (yamlload.nesting_refused(e) and yamlload.raise_nest_limit()):
                    raise
                builder = _Builder(text)
                builder.run()
        except _pyyaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(e, "problem", None) or "invalid YAML"
            raise FormatError(f"{where}{problem}") from None
        eol = "\r\n" if "\r\n" in text else "\n"
        metas = [m for m in builder.metas if m is not None]
        first = builder.metas[0] if builder.metas else None
        if first is None and metas:
            # sops reads only the first document's block, and would encrypt this one as data
            # next to the block it appends: two sops keys, a file nothing can read back
            later = next(i for i, m in enumerate(builder.metas) if m is not None) + 1
            raise FormatError(
                f"document {later}: a top-level sops entry, but the first document has none",
                hints=("rename the entry if this file is not encrypted",),
            )
        if any(to_plain(m) != to_plain(metas[0]) for m in metas[1:]):
            # sops reads only the first document's block; a differing copy means tampering
            raise MetadataError("the documents of this file carry different sops metadata")
        layout = Layout(text, bom, eol, builder.layouts)
        docs = builder.docs or [Branch()]
        return Loaded(docs, metas[0] if metas else None, layout)

    def indent_for(self, layout: Layout | None, doc: int = 0) -> int:
        """The step for what is written anew: the option's (as go-yaml takes it), else the
        document's own, else sops's 4."""
        if self.options.indent is not None:
            return yaml_step(self.options.indent)
        if layout is not None and doc < len(layout.docs) and layout.docs[doc].indent:
            return layout.docs[doc].indent or DEFAULT_INDENT
        return DEFAULT_INDENT

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes:
        try:
            out = self._emit(docs, metadata, layout).encode("utf-8")
            return out if metadata is None else check_writable(out, metadata,
                                                               yaml_nodes(docs, metadata))
        except UnicodeEncodeError:
            # bytes that are not UTF-8, read from a dotenv, INI or binary file (surrogate
            # escapes): a YAML file cannot hold them
            raise FormatError("the output would hold bytes that are not UTF-8 (from the input "
                              "file), which a YAML file cannot hold") from None

    def emit_metadata(self, docs: list[Branch], metadata: Branch, layout: Any) -> bytes | None:
        """The loaded text with only its ``sops:`` block replaced, when every value stays as
        loaded (``updatekeys`` and the other key-entry changes): what :meth:`emit` of the
        loaded documents writes, without walking their leaves. ``None`` where that emit would
        do more than splice the block (several documents, re-emitted or non-block-map roots,
        sops's indentation asked for): the caller emits the documents then."""
        if (self.options.reindent or not isinstance(layout, Layout) or layout.reemit
                or len(layout.docs) != 1):
            return None
        dl = layout.docs[0]
        if not (dl.spliceable and dl.root_block_map and dl.sops_range is not None):
            return None
        text = layout.text
        start, end = dl.sops_range
        ins = dl.end if dl.end >= 0 else len(text)
        head = text[:start] + text[end:ins]
        eol = layout.eol
        sep = eol if head and not head.endswith("\n") else ""
        out = "".join(("\ufeff" if layout.bom else "", head, sep,
                       emit_entry("sops", metadata, self.indent_for(layout, 0)).replace("\n", eol),
                       text[ins:]))
        METADATA_SPLICES[0] += 1
        return check_writable(out.encode("utf-8"), metadata, yaml_nodes(docs, metadata))

    def emit_value(self, value: Any) -> bytes:
        """go-yaml's ``Marshal`` of one value: a scalar on its line, a list as a block."""
        if isinstance(value, Seq):  # sops's yaml.Marshal: 4, whatever the indent option says
            out = emit_document(Branch([("x", value)]), DEFAULT_INDENT)
            lines = out.splitlines()[1:]
            cut = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
            return ("\n".join(line[cut:] for line in lines) + "\n").encode("utf-8")
        if isinstance(value, Comment):  # sops marshals its Comment struct
            return emit_document(Branch([("value", str(value))]), 4).encode("utf-8")
        if value is None:
            return b"null\n"
        return (render_number(value) + "\n").encode()

    def _emit(self, docs: list[Branch], metadata: Branch | None, layout: Any) -> str:
        if self.options.reindent:
            layout = None  # sops's output asked for (--indent, stores.yaml.indent)
        if isinstance(layout, Layout) and not layout.reemit and len(layout.docs) == len(docs):
            return ("\ufeff" if layout.bom else "") + _splice(self, docs, metadata, layout)
        parts = []
        for i, doc in enumerate(docs):
            body = emit_document(doc, self.indent_for(layout, i)) if doc or not metadata else ""
            if metadata is not None:
                body += emit_entry("sops", metadata, self.indent_for(layout, i))
            parts.append(body)
        return "---\n".join(parts)


def _leaves(node: Any, out: list[Any]) -> None:
    """Every leaf (scalars and comments) in walk order, without recursion."""
    append = out.append
    todo = [(type(node) is Seq, iter(node))]
    while todo:
        is_seq, items = todo[-1]
        for item in items:
            if is_seq:
                if isinstance(item, _BRANCHES):
                    todo.append((type(item) is Seq, iter(item)))
                    break
                append(item)
            elif type(item) is tuple:
                v = item[1]
                if isinstance(v, _BRANCHES):
                    todo.append((type(v) is Seq, iter(v)))
                    break
                append(v)
            else:
                append(item)
        else:
            todo.pop()


_BRANCHES = (Branch, Seq)


def _render(value: Any, span: tuple[Any, ...], text: str, eol: str, step: int,
            old: Any = None) -> str:
    """The new text of one leaf's span (``old``: the value the span held)."""
    kind, start, end, style, flow, _ = span
    if kind == "c" or isinstance(value, Comment):
        return "#" + str(value)
    if isinstance(value, Timestamp):
        return str(value)  # resolves back to the same timestamp when plain
    if isinstance(value, str) and not is_encrypted(value):
        return _render_plain_str(value, span, text, eol, step)
    if isinstance(value, str):  # ENC[...] going in: keep the quoting
        if style == '"' and not (
            type(old) is str and render_str_inline(old, flow) == text[start:end]
        ):
            return f'"{value}"'
        # double quotes that decrypting a plain ENC[...] writes anyway ("yes", "1:20") are not
        # kept: the value goes back plain, as sops writes it, so decrypt → encrypt is stable
        if style == "'" or flow:
            return f"'{value}'"
        return value
    if value is None:
        return text[start:end]
    if isinstance(value, bool | int | float):
        return render_number(value)
    return render_str_inline(str(value), flow)


def _render_plain_str(value: str, span: tuple[Any, ...], text: str, eol: str, step: int) -> str:
    _, start, end, style, flow, col = span
    if style == "" and plain_word(value):
        return value  # the common case: a plain word that stays a plain string
    if style == "!":
        if "\n" not in value and plain_allowed(value, flow):
            return value
        style = ""
    if flow and style == "'":
        # plain and single-quoted both encrypt to 'ENC[...]' in flow: plain when it is valid
        # (the usual case), else the single quotes the span had
        out = render_str_inline(value, flow, None)
        return out if not out.startswith(('"', "'")) else render_str_inline(value, flow, "'")
    if not flow and "\n" in value and style == "":
        # a multi-line plain scalar comes back as a literal block; its span ends mid-line, so
        # the original line break follows
        block = literal_block(value, _block_indent(text, start, end, col, step))
        if block is not None:
            return block.replace("\n", eol)
        return render_str_inline(value, flow, '"')
    if style in ("'", '"'):
        return render_str_inline(value, flow, style)
    # A plain ENC[...] says nothing about the original's quoting (sops writes every value
    # plain): strings a YAML 1.1 reader (kubectl, Helm) would take for a bool or a number —
    # yes, on, y, 1:20 — are double-quoted, byte for byte as sops decrypts them.
    return render_str_inline(value, flow, None)


def _block_indent(text: str, start: int, end: int, col: int, step: int) -> str:
    """The indentation of a block scalar's content (from its first non-empty line)."""
    nl = text.find("\n", start, end)
    if nl >= 0:
        m = re.compile(r"(?:[ \t]*\r?\n)*( +)\S").match(text, nl + 1, end)
        if m:
            return m.group(1)
    return " " * (col + step)


# a typed tag (!!binary, !!str …) stays in a value's span, to be dropped with the old text
_BLOCK_INDICATOR = re.compile(r"(?:![^ \t\r\n]*[ \t]+)?([|>][0-9+-]*)")


def _block_header(text: str, start: int, end: int) -> tuple[int, int, str]:
    """A block scalar's header line: where its indicator (``|``, ``>2-``, …) ends, where the
    line ends (before its line break), and the indicator. What lies between the two ends —
    spaces, a comment — is kept."""
    m = _BLOCK_INDICATOR.match(text, start, end)
    ind_end, indicator = (m.end(), m.group(1)) if m else (start + 1, text[start : start + 1])
    nl = text.find("\n", start, end)
    if nl < 0:
        return ind_end, end, indicator
    return ind_end, nl - 1 if text[nl - 1 : nl] == "\r" else nl, indicator


def _block_tail(text: str, body_start: int, end: int, indent: int) -> str:
    """The empty lines that close a block scalar's span, kept as they were: lines of at most
    ``indent`` spaces (a line with more is content — the spaces beyond are the value's)."""
    tail_start = end
    while tail_start > body_start:
        nl = text.rfind("\n", body_start, tail_start - 1)
        if nl < 0:
            break
        line = text[nl + 1 : tail_start].rstrip("\r\n")
        if line.strip(" ") or len(line) > indent:
            break
        tail_start = nl + 1
    return text[tail_start:end]


def _render_block(value: Any, span: tuple[Any, ...], text: str, eol: str,
                  step: int) -> list[tuple[int, int, str]]:
    """A new value in a block scalar's span, as two edits around the header line's rest
    (spaces and a comment there stay, or are replaced on their own): one replaces the
    indicator, the other the line break and the body."""
    _, start, end, style, flow, col = span
    ind_end, hdr_end, indicator = _block_header(text, start, end)
    indent = _block_indent(text, start, end, col, step)
    digits = [c for c in indicator if c.isdigit()]
    width = col + int(digits[0]) if digits else len(indent)  # an indentation indicator
    tail = _block_tail(text, hdr_end, end, width)
    head, body = _block_pieces(value, style, flow, indent, eol, tail)
    return [(start, ind_end, head), (hdr_end, end, body)]


def _block_pieces(value: Any, style: str, flow: bool, indent: str, eol: str,
                  tail: str) -> tuple[str, str]:
    if isinstance(value, str) and not isinstance(value, Comment | Timestamp):
        if is_encrypted(value):  # going in: the ENC line, chomping stripped
            return f"{style}-", f"{eol}{indent}{value}{eol}{tail}"
        block = literal_block(value, indent, folded=(style == ">"))
        if block is None and style == ">":
            block = literal_block(value, indent)
        if block is not None:
            head, _, lines = block.partition("\n")
            # a keep-chomped block owns its trailing empty lines; others leave them after it
            rest = eol + lines.replace("\n", eol) + eol if lines else eol
            return head, rest + ("" if head.endswith("+") else tail)
        return render_str_inline(value, flow, '"'), eol + tail
    if isinstance(value, bool | int | float):
        return render_number(value), eol + tail
    return render_str_inline(str(value), flow), eol + tail


def _splice(store: YamlStore, docs: list[Branch], metadata: Branch | None, layout: Layout) -> str:
    text, eol = layout.text, layout.eol
    pieces: list[str] = []
    pos = 0
    for i, (doc, dl) in enumerate(zip(docs, layout.docs, strict=True)):
        step = store.indent_for(layout, i)
        # a root that is not a block map (a JSON text read as YAML) cannot take or lose the
        # sops entry by splicing: sops re-emits it in block style, and so do we
        if not dl.spliceable or (not dl.root_block_map and (
                (metadata is not None and doc) or dl.sops_range is not None)):
            end = dl.end if dl.end >= 0 else len(text)
            # comments before the document's start are in its tree, and re-emitted with it
            pieces.append(_COMMENT_LINE.sub("", text[pos : dl.start]))
            if dl.start > 0 and text[dl.start - 1] not in "\n":
                pieces.append(eol)
            body = emit_document(doc, step) if doc or metadata is None else ""
            if metadata is not None:
                body += emit_entry("sops", metadata, step)
            pieces.append(body.replace("\n", eol))
            pos = end
            continue
        leaves: list[Any] = []
        _leaves(doc, leaves)
        edits: list[tuple[int, int, str]] = []
        add = edits.append
        for value, old, span in zip(leaves, dl.values, dl.spans, strict=True):
            if span is None or value is None or (type(value) is type(old) and value == old):
                continue  # unchanged leaves keep their exact text
            start, end = span[1], span[2]
            if type(value) is str and span[3] == "" and span[0] == "s" and (
                (not span[4] and value.startswith(ENC_PREFIX)) or plain_word(value)
            ):
                add((start, end, value))  # _render's common cases, without the call
                continue
            if span[3] in ("|", ">") and span[0] == "s" and not isinstance(value, Comment):
                edits += _render_block(value, span, text, eol, step)
                continue
            if span[0] == "s" and isinstance(value, Comment):
                # sops writes comments inside lists as "- ENC[...type:comment]" items
                dash = text.rfind("- ", text.rfind("\n", 0, start) + 1, start)
                if dash >= 0 and not text[dash + 2 : start].strip():
                    start = dash
            add((start, end, _render(value, span, text, eol, step, old)))
        if dl.sops_range is not None:
            edits.append((dl.sops_range[0], dl.sops_range[1], ""))
        edits.sort(key=itemgetter(0))
        for start, end, new in edits:
            pieces.append(text[pos:start])
            pieces.append(new)
            pos = end
        if metadata is not None:
            ins = dl.end if dl.end >= 0 else len(text)
            pieces.append(text[pos:ins])
            pos = ins
            last = next((p for p in reversed(pieces) if p), "")
            if last and not last.endswith("\n"):
                pieces.append(eol)
            pieces.append(emit_entry("sops", metadata, step).replace("\n", eol))
    pieces.append(text[pos:])
    return "".join(pieces)
