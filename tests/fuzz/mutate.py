"""Structured text mutations: what a hand, a bad merge or an attacker does to a file's bytes.

Each mutation works on the lines and tokens of a real seed file, not on random bytes: a line
deleted, repeated (hundreds of times: key entries, stanzas, sections), moved or re-indented; a
token of the format's own syntax inserted (anchors and aliases, tags, flow brackets, document
markers, section headers, quotes, escapes, BOMs, NULs, non-ASCII and invalid UTF-8); a value
wrapped in thousands of brackets (the nesting limit); a "billion laughs" put in front; a base64
character changed; the file cut short. One to four mutations per input, so most inputs still
parse and reach the code behind the parser. Positions are drawn as integers, so hypothesis
shrinks a failing input toward the start of the file and fewer, smaller changes.
"""

from __future__ import annotations

from hypothesis import strategies as st

_COMMON = [b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\r", b"\r\n", b"\t",
           b"\n", b" ", b"\\", b"'", b'"', b"#", b"=", b":", b"ENC[AES256_GCM,", b"sops",
           b"\xf0\x9f\x94\x91", b"\xed\xa0\x80", b"-", b"%", b"\x1b["]
TOKENS: dict[str, list[bytes]] = {
    "yaml": [b"&a ", b"*a", b"<<: *a\n", b"!!binary ", b"!!str ", b"!!int ", b"!!float ",
             b"!!timestamp ", b"!!map ", b"!!seq ", b"!!set ", b"!!omap ", b"!custom ",
             b"!!python/object/apply:os.system ", b"? ", b"- ", b"{", b"}", b"[", b"]", b",",
             b"---\n", b"...\n", b"%YAML 1.1\n", b"%TAG !e! tag:e,2000:\n", b"|", b">-",
             b"|+2", b": ", b"~", b".inf", b".nan", b"1e999", b"0x1F", b"0o17", b"1_000",
             b"2001-12-14t21:59:43.10-05:00", b"yes", b"<<: ", b"!<tag:yaml.org,2002:str> ",
             b"sops:\n", b"    enc: ", b"mac: ", b"version: ", b"lastmodified: "],
    "json": [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\u0000", b"\\ud800", b"\\uDFFF",
             b"1e999", b"-0", b"NaN", b"Infinity", b"null", b"true", b"0x10", b"1.0e+",
             b'"sops":', b'"enc":', b'"mac":', b'"version":', b"/*", b"//"],
    "dotenv": [b"export ", b"=", b"==", b"sops_", b"sops_age__list_0__map_enc=",
               b"sops_mac=", b"sops_version=", b"sops_lastmodified=", b"__list_",
               b"__map_", b"\\n", b"$", b"${X}", b"#ENC["],
    "ini": [b"[", b"]", b"[sops]\n", b"[DEFAULT]\n", b"=", b" = ", b";", b"#",
            b"age__list_0__map_enc = ", b"mac = ", b"version = ", b'"""', b"`",
            b"\\\n", b"[a.b]\n", b"[]\n"],
    "binary": [b"{", b"}", b'"data":', b'"sops":', b"data: ", b"sops:\n"],
    "armor": [b"-----BEGIN AGE ENCRYPTED FILE-----\n", b"-----END AGE ENCRYPTED FILE-----\n",
              b"-----BEGIN PGP MESSAGE-----\n", b"-----END PGP MESSAGE-----\n", b"=", b"==",
              b"+", b"/", b"-> X25519 ", b"-> scrypt ", b"-> ssh-ed25519 ", b"--- ",
              b"age-encryption.org/v1\n", b"Comment: x\n", b"Version: x\n"],
}


def _offset(draw: st.DrawFn, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def _insert(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    at = _offset(draw, data)
    token = draw(st.sampled_from(TOKENS.get(fmt, []) + _COMMON))
    return data[:at] + token * draw(st.sampled_from([1, 1, 1, 2, 7, 300])) + data[at:]


def _delete(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    at = _offset(draw, data)
    return data[:at] + data[at + draw(st.integers(1, 64)):]


def _cut(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    return data[:_offset(draw, data)]


def _repeat_lines(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    j = min(len(lines), i + draw(st.integers(1, 6)))
    times = draw(st.sampled_from([2, 3, 10, 65, 101, 400, 2000]))
    return b"".join(lines[:j] + lines[i:j] * (times - 1) + lines[j:])


def _drop_line(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    lines = _lines(data)
    del lines[draw(st.integers(0, len(lines) - 1))]
    return b"".join(lines)


def _swap_lines(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    lines = _lines(data)
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _indent(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from([b" ", b"  ", b"\t", b"    " * 8, b""]))
    lines[i] = how + lines[i].lstrip(b" ") if draw(st.booleans()) else how + lines[i]
    return b"".join(lines)


def _replace_bytes(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    at = _offset(draw, data)
    new = draw(st.binary(min_size=1, max_size=8))
    return data[:at] + new + data[at + len(new):]


def _flip_base64(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    """One character of a base64 run (an ENC field, an armored key, a MAC) changed."""
    at = _offset(draw, data)
    for i in range(at, len(data)):
        if chr(data[i]).isalnum():
            new = draw(st.sampled_from([b"A", b"/", b"+", b"=", b"\xc3\xa9", b"-", b"_"]))
            return data[:i] + new + data[i + 1:]
    return data


def _nest(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    """Brackets around a stretch of the file, hundreds to past the 10,000-level limit deep."""
    depth = draw(st.sampled_from([3, 200, 1000, 5000, 10_001]))
    at = _offset(draw, data)
    end = min(len(data), at + draw(st.integers(0, 40)))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{", b"}"), (b"{a: ", b"}"),
                                           (b'{"a":', b"}"), (b"- ", b"")]))
    if opener == b"- ":  # block sequences: one more indentation each level
        return data[:at] + b"".join(b"  " * n + b"-\n" for n in range(depth // 10)) + data[at:]
    return data[:at] + opener * depth + data[at:end] + closer * depth + data[end:]


def _laughs(draw: st.DrawFn, data: bytes, fmt: str) -> bytes:
    """A "billion laughs" in front of the file (or inside it: the aliases name an anchor)."""
    levels = draw(st.integers(2, 9))
    width = draw(st.integers(2, 10))
    out = [b"l0: &l0 [" + b",".join([b"lol"] * width) + b"]\n"]
    for n in range(1, levels):
        out.append(b"l%d: &l%d [" % (n, n) + b",".join([b"*l%d" % (n - 1)] * width) + b"]\n")
    bomb = b"".join(out)
    return bomb + data if draw(st.booleans()) else data + b"\n" + bomb


def _splice(draw: st.DrawFn, data: bytes, fmt: str, others: list[bytes]) -> bytes:
    """Lines of another seed of the same format put in."""
    other = _lines(draw(st.sampled_from(others)))
    i = draw(st.integers(0, len(other) - 1))
    piece = b"".join(other[i:i + draw(st.integers(1, 8))])
    at = _offset(draw, data)
    return data[:at] + piece + data[at:]


_MUTATIONS = [_insert, _insert, _delete, _cut, _repeat_lines, _drop_line, _swap_lines, _indent,
              _replace_bytes, _flip_base64, _flip_base64, _nest, _laughs]


#: The largest input a mutation may make: repeats of repeats grow without bound otherwise (one
#: input reached 1.6 GB). Sizes past the limits on input are the limit tests' job
#: (tests/limits); the parsers' cost per byte is the fuzz suite's.
MAX_INPUT = 1 << 20


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], fmt: str) -> bytes:
    """A seed with one to four structured text mutations (a mutation that would make the
    input larger than :data:`MAX_INPUT` is skipped)."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 9)) == 0:
            new = _splice(draw, data, fmt, seeds)
        else:
            new = draw(st.sampled_from(_MUTATIONS))(draw, data, fmt)
        data = new if len(new) <= MAX_INPUT else data
    return data
