"""go-ini v1.67's parser and writer, as sops 3.11 configures them (private to the INI store).

``parse`` follows ``parser.go`` with ``LoadOptions{AllowNonUniqueSections: true}``; ``write``
follows ``File.WriteTo`` with go-ini's defaults (pretty format, ``=`` aligned, blank line between
sections). Both work on text lines that keep their ``\\n``, with Go's ``unicode.IsSpace`` for
trimming, so the quirks sops users see (inline comments, continuation lines, quote stripping,
comments attached to the following key or header) come out the same. See :mod:`.ini`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from secretops.errors import FormatError

# unicode.IsSpace, which Go's TrimSpace uses (Python's str.strip() also strips \x1c-\x1f).
_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501


def _trim(s: str) -> str:
    return s.strip(_SPACE)


@dataclass
class Section:
    """One section: its name, its header comment, and ``key -> [value, comment]``."""

    name: str
    comment: str = ""
    keys: dict[str, list[str]] = field(default_factory=dict)  # name -> [value, comment]


def _comment_lines(comment: str, trim_plain: bool) -> str:
    out = []
    for line in comment.split("\n"):
        if line[:1] in ("#", ";"):
            out.append(line[:1] + " " + _trim(line[1:]) + "\n")
        else:
            out.append("; " + (_trim(line) if trim_plain else line) + "\n")
    return "".join(out)


def _quote_key(key: str) -> str:
    if '"' in key or "=" in key or ":" in key:
        return "`" + key + "`"
    if "`" in key:
        return '"""' + key + '"""'
    return key


def _quote_value(value: str) -> str:
    if "\n" in value or "`" in value:
        return '"""' + value + '"""'
    if "#" in value or ";" in value:
        return "`" + value + "`"
    if len(_trim(value)) != len(value):
        return '"' + value + '"'
    return value


def _width(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))  # go-ini aligns by bytes


def write(sections: list[Section]) -> str:
    out: list[str] = []
    last = len(sections) - 1
    for i, sec in enumerate(sections):
        if sec.comment:
            out.append(_comment_lines(sec.comment, trim_plain=False))
        if i > 0 or sec.name.upper() != "DEFAULT":
            out.append(f"[{sec.name}]\n")
        elif not sec.keys:
            continue
        names = [_quote_key(k) for k in sec.keys]
        align = max((_width(n) for n in names), default=0)
        for name, (value, comment) in zip(names, sec.keys.values(), strict=True):
            if comment:
                out.append(_comment_lines(comment, trim_plain=True))
            pad = " " * (align - _width(name))
            out.append(f"{name}{pad} = {_quote_value(value)}\n")
        if i != last:
            out.append("\n")
    return "".join(out)


class Parser:
    """go-ini's ``parse`` with sops's options, over text lines that keep their ``\\n``."""

    def __init__(self, text: str) -> None:
        pieces = text.split("\n")
        self.lines = [p + "\n" for p in pieces[:-1]] + [pieces[-1]]
        self.pos = 0
        self.comment = ""

    def read(self) -> tuple[str, bool]:
        """The next line and whether the input ended with it (go-ini's ``readUntil``)."""
        if self.pos >= len(self.lines):
            return "", True
        line = self.lines[self.pos]
        self.pos += 1
        return line, self.pos == len(self.lines)

    def error(self, message: str) -> FormatError:
        return FormatError(f"line {self.pos}: {message}")

    def parse(self) -> list[Section]:
        section = Section("DEFAULT")
        sections = [section]
        count = 1
        eof = False
        while not eof:
            raw, eof = self.read()
            line = raw.lstrip(_SPACE)
            if not line:
                continue
            if line[0] in "#;":
                self.comment += line
                continue
            if line[0] == "[":
                close = line.rfind("]")
                if close == -1:
                    raise self.error("unclosed section header")
                if close == 1:
                    raise self.error("empty section name")
                section = Section(line[1:close])
                sections.append(section)
                self.comment += _clean_comment(line[close + 1 :])
                section.comment = _trim(self.comment)
                self.comment = ""
                count = 1
                continue
            name, offset = self.key_name(line)
            if name == "-":
                name = f"#{count}"
                count += 1
            value = self.value(line[offset:])
            if not name:
                raise self.error("empty key name")
            entry = section.keys.setdefault(name, ["", ""])
            entry[0] = value
            entry[1] = _trim(self.comment)
            self.comment = ""
            eof = eof or self.pos >= len(self.lines)
        return sections

    def key_name(self, line: str) -> tuple[str, int]:
        quote = ""
        if line[0] == '"':
            quote = '"""' if len(line) > 6 and line[:3] == '"""' else '"'
        elif line[0] == "`":
            quote = "`"
        if quote:
            start = len(quote)
            pos = line.find(quote, start)
            if pos == -1:
                raise self.error("missing closing key quote")
            i = _index_any(line[pos + start :], "=:")
            if i < 0:
                raise self.error("key-value delimiter '=' not found")
            return _trim(line[start:pos]), pos + i + start + 1
        end = _index_any(line, "=:")
        if end < 0:
            raise self.error("key-value delimiter '=' not found")
        if end == 0:
            raise self.error("empty key name")
        return _trim(line[:end]), end + 1

    def value(self, text: str) -> str:
        line = text.lstrip(_SPACE)
        if not line:
            return ""
        quote = '"""' if len(line) > 3 and line[:3] == '"""' else "`" if line[0] == "`" else ""
        if quote:
            start = len(quote)
            pos = line.rfind(quote, start)
            if pos == -1:
                return self.multiline(line, line[start:], quote)
            return line[start:pos]
        line = _trim(line)
        if line[-1] == "\\":
            return self.continuation(line[:-1])
        i = _index_any(line, "#;")
        if i > -1:
            self.comment += line[i:]
            line = _trim(line[:i])
        if _surrounded(line, "'") or _surrounded(line, '"'):
            line = line[1:-1]
        return line

    def multiline(self, first: str, value: str, quote: str) -> str:
        while True:
            line, eof = self.read()
            pos = line.rfind(quote)
            if pos > -1:
                value += line[:pos]
                self.comment += _trim(_clean_comment(line[pos:]))
                return value
            value += line
            if eof:
                raise self.error("missing closing key quote")

    def continuation(self, value: str) -> str:
        while True:
            line = _trim(self.read()[0])
            if not line:
                return value
            value += line
            if value[-1] != "\\":
                return value
            value = value[:-1]


def _index_any(s: str, chars: str) -> int:
    found = [i for i in (s.find(c) for c in chars) if i >= 0]
    return min(found) if found else -1


def _clean_comment(s: str) -> str:
    i = _index_any(s, "#;")
    return s[i:] if i >= 0 else ""


def _surrounded(s: str, q: str) -> bool:
    return len(s) >= 2 and s[0] == q and s[-1] == q and s.find(q, 1) == len(s) - 1
