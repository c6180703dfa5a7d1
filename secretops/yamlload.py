"""The one way secretops parses YAML: every read goes through here, with the limits applied.

Two entry points:

* :func:`event_parser` — libyaml's event parser, for the YAML store, which builds its trees from
  the events itself (the hot path) and applies the limits of :mod:`secretops.limits` as it goes;
* :func:`load` / :func:`load_all` — Python objects as PyYAML's safe loader makes them (or every
  scalar a string, ``strings=True``), for ``.sops.yaml``, the Kubernetes manifests of the
  sealing commands and the other small YAML inputs. The size is checked first; then one pass
  over the events builds the node graph without recursion, counting nesting and alias
  expansion as go-yaml does, before PyYAML's constructor turns it into objects (aliases stay
  shared references there: nothing is copied).

A test (``tests/test_yaml_loader.py``) fails if any other module calls PyYAML's loading
functions, so no read can skip the limits.
"""

from __future__ import annotations

from typing import Any

import yaml as _pyyaml

from secretops.errors import ConfigError, FormatError, SecretOpsError
from secretops.limits import (
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_FLOW_STEPS,
    MAX_NODES,
    AliasBudget,
    LimitError,
    check_config_size,
    check_input_size,
    too_deep,
    too_many_documents,
    too_many_nodes,
    too_much_flow,
)

_CSafe = getattr(_pyyaml, "CSafeLoader", None)
_CBase = getattr(_pyyaml, "CBaseLoader", None)
SafeParser: Any = _CSafe or _pyyaml.SafeLoader
_BaseParser: Any = _CBase or _pyyaml.BaseLoader
YAMLError = _pyyaml.YAMLError
_nest_limit_raised = False


def nesting_refused(err: BaseException) -> bool:
    """Did libyaml refuse the text for its own nesting limit (1,000 levels, below ours)?"""
    return "maximum nesting depth" in str(getattr(err, "problem", "") or "")


def raise_nest_limit() -> bool:
    """Let libyaml nest as deep as :data:`MAX_DEPTH` allows; False if it cannot be changed
    (no libyaml, or one without the setting). Done only when a file needs it: ctypes costs
    a CLI's start-up a few milliseconds."""
    global _nest_limit_raised
    if _nest_limit_raised:
        return False
    _nest_limit_raised = True
    ext = getattr(_pyyaml, "_yaml", None) or getattr(_pyyaml, "cyaml", None)
    path = getattr(ext, "__file__", None)
    if _CSafe is None or not path:
        return False
    import ctypes

    try:
        setter = ctypes.CDLL(path).yaml_set_max_nest_level
    except (OSError, AttributeError):
        return False
    # libyaml counts block and flow levels apart, with a level or two of its own: our check
    # (on the events) is the one that refuses
    setter(2 * MAX_DEPTH + 16)
    return True


def event_parser(text: str, strings: bool = False) -> Any:
    """A libyaml parser over ``text`` (``get_event()`` until ``None``; ``dispose()``);
    ``strings``: PyYAML's base loader, which resolves no scalar. Whoever reads its events
    applies the limits, :data:`~secretops.limits.MAX_FLOW_STEPS` included: libyaml's own
    work grows with it."""
    return (_BaseParser if strings else SafeParser)(text)


def _compose(parser: Any) -> list[Any]:
    """The node graph of every document, built from the events without recursion."""
    E, N = _pyyaml.events, _pyyaml.nodes
    docs: list[Any] = []
    stack: list[Any] = []  # open collections: (node, pending key or None, anchor, visits)
    anchors: dict[str, tuple[Any, int]] = {}
    root: Any = None
    budget = AliasBudget()
    visits = 1
    room = MAX_NODES  # for this document's visits: the limit less the earlier documents'
    resolve = parser.resolve
    flow_open = flow_steps = 0  # see limits.MAX_FLOW_STEPS
    for ev in iter(parser.get_event, None):
        t = type(ev)
        node: Any = None
        if flow_open:
            flow_steps += flow_open
            if flow_steps > MAX_FLOW_STEPS:
                raise too_much_flow(ev.start_mark.line + 1)
        if t is E.ScalarEvent:
            visits += 1
            if visits > room:
                raise too_many_nodes(ev.start_mark.line + 1)
            tag = ev.tag
            if tag is None or tag == "!":
                tag = resolve(N.ScalarNode, ev.value, ev.implicit)
            node = N.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
            if ev.anchor:
                anchors[ev.anchor] = (node, 1)
        elif t is E.AliasEvent:
            if ev.anchor not in anchors:
                raise FormatError(f"line {ev.start_mark.line + 1}: unknown anchor {ev.anchor!r}")
            node, size = anchors[ev.anchor]
            if size < 0:
                raise FormatError(f"line {ev.start_mark.line + 1}: the anchor {ev.anchor!r} "
                                  "refers to a value that contains it")
            visits = budget.expand(visits + 1, size, ev.start_mark.line + 1)
            if visits > room:  # shared here, but the commands walk the expanded tree
                raise too_many_nodes(ev.start_mark.line + 1)
        elif t is E.MappingStartEvent or t is E.SequenceStartEvent:
            visits += 1
            if len(stack) >= MAX_DEPTH:
                raise too_deep(ev.start_mark.line + 1)
            if visits > room:
                raise too_many_nodes(ev.start_mark.line + 1)
            is_map = t is E.MappingStartEvent
            kind = N.MappingNode if is_map else N.SequenceNode
            tag = ev.tag
            if tag is None or tag == "!":
                tag = resolve(kind, None, ev.implicit)
            coll = kind(tag, [], ev.start_mark, None, flow_style=ev.flow_style)
            if ev.flow_style:
                flow_open += 1
            if ev.anchor:
                anchors[ev.anchor] = (coll, -1)  # its size is known when it closes
            stack.append([coll, None, ev.anchor, visits - 1])
            continue
        elif t is E.MappingEndEvent or t is E.SequenceEndEvent:
            coll, _, anchor, start = stack.pop()
            if coll.flow_style:
                flow_open -= 1
            coll.end_mark = ev.end_mark
            if anchor:
                anchors[anchor] = (coll, visits - start)
            node = coll
        elif t is E.DocumentStartEvent:
            if len(docs) >= MAX_DOCUMENTS:
                raise too_many_documents(ev.start_mark.line + 1)
            anchors, root, budget, visits = {}, None, AliasBudget(), 1
            continue
        elif t is E.DocumentEndEvent:
            budget.finish(visits)
            room -= visits
            docs.append(root)
            continue
        else:
            continue
        if not stack:
            root = node
            continue
        top = stack[-1]
        parent = top[0]
        if isinstance(parent, N.SequenceNode):
            parent.value.append(node)
        elif top[1] is None:
            top[1] = node
        else:
            parent.value.append((top[1], node))
            top[1] = None
    return docs


def _construct(parser: Any, node: Any) -> Any:
    if node is None:
        return None
    try:
        return parser.construct_document(node)
    except RecursionError:
        # a collection used as a mapping key is built recursively by PyYAML; nothing else is
        raise LimitError("a mapping key or a chain of merge keys nests too deeply") from None
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError):
        # an explicit tag the text does not fit (``!!int apiVersion``, ``!!int ''``,
        # ``!!binary é``, ``!!float []``): PyYAML's constructors raise plain exceptions
        raise FormatError("a value does not fit its YAML tag (such as !!int on text)") from None


def _parse(data: bytes | str, strings: bool) -> list[Any]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    for attempt in (0, 1):
        parser = event_parser(text, strings)
        try:
            nodes = _compose(parser)
            return [_construct(parser, n) for n in nodes]
        except YAMLError as e:
            if attempt == 0 and nesting_refused(e) and raise_nest_limit():
                continue
            raise
        finally:
            parser.dispose()
    raise AssertionError("unreachable")


def _fail(err: Exception, source: str, config: bool) -> SecretOpsError:
    if isinstance(err, SecretOpsError):
        err.file = err.file or source
        if config and not isinstance(err, ConfigError):
            return ConfigError(f"the config is not valid YAML: {err.message}", file=source,
                               hints=err.hints)
        return err
    if isinstance(err, UnicodeDecodeError):
        why = "not valid UTF-8 text"
    else:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        why = f"{where}{getattr(err, 'problem', None) or 'invalid YAML'}"
    if config:
        return ConfigError(f"the config is not valid YAML: {why}", file=source)
    return FormatError(f"not valid YAML: {why}", file=source)


def load_all(data: bytes | str, source: str = "<input>", *, config: bool = False,
             strings: bool = False) -> list[Any]:
    """Every document of ``data`` (``None`` for an empty one), within the limits.

    ``config``: ``data`` is a ``.sops.yaml`` (its size limit, and :class:`ConfigError` for
    every failure, exit 5); else a data file or manifest (:class:`FormatError`, exit 150).
    ``strings``: every scalar stays the text it was written as (PyYAML's base loader).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if config:
        check_config_size(raw, source)
    else:
        try:
            check_input_size(raw)
        except SecretOpsError as e:
            raise e.with_file(source) from None
    try:
        return _parse(data, strings)
    except (YAMLError, UnicodeDecodeError, SecretOpsError) as e:
        raise _fail(e, source, config) from None


def load(data: bytes | str, source: str = "<input>", *, config: bool = False,
         strings: bool = False) -> Any:
    """The first document of ``data`` (``None`` if it has none), within the limits."""
    docs = load_all(data, source, config=config, strings=strings)
    return docs[0] if docs else None
