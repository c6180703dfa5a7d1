"""ESO Go templates → the sandbox: the translation renders what ESO renders, or is refused.

Each form is rendered twice — by ``tests/gotemplate.py`` (Go's semantics, written from Go's and
sprig's sources) and by the sandbox from the translation — and the bytes must be equal, or both
must fail. Issue 15 item 12: ``printf "%s:%s" .u .p | b64enc`` (a dockerconfigjson ``auth``)
rendered ``u:`` plus the base64 of the password only.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secretops.errors import SecretOpsError
from secretops.esogo import Untranslatable, convert_template
from secretops.sealing.template import render_all
from tests.gotemplate import GoError, render

VALUES = {"u": b"user", "p": b"pa:ss\xff w\xc3\xa9", "a": b"", "b": b"x-y-z", "c": b"  \r\n"}


def _ours(jinja: str, values: dict[str, bytes]) -> bytes | None:
    try:
        return render_all({"k": jinja}, values)["k"]
    except SecretOpsError:
        return None


def _theirs(go: str, values: dict[str, bytes]) -> bytes | None:
    try:
        return render(go, values)
    except GoError:
        return None


FORMS = [
    '{{ printf "%s:%s" .u .p | b64enc }}',  # the dockerconfigjson auth
    '{"auths":{"r.io":{"auth":"{{ printf "%s:%s" .u .p | b64enc }}"}}}',
    '{{ .u | printf "%s:%s" .p | b64enc }}',  # the piped value is printf's last argument
    '{{ printf "%s" .u | b64enc | sha256sum }}',
    '{{ b64enc .u | printf "<%s>" }}',
    '{{ .p | replace ":" "-" | b64enc }}',
    '{{ replace "-" "" .b | toString }}',
    '{{ .a | default "fallback" | b64enc }}',
    '{{ .u | default "fallback" }}',
    '{{ default .u .a }}',
    '{{ index . "u" | b64enc }}',
    '{{ index . "nope" }}!',  # Go's index of a missing key is ""
    '{{ printf "%v=%s%%" .u .b }}',
    'a \r\n{{- .u -}} \f b',  # Go trims only space, tab, CR, LF
    'x{\r{{ .u }}',
    "{% if 1 %}{# c #}{{ .u }}{{/* note */}}}",
    '{{ "}}" }}{{ `raw\r\\n` }}',
    "{{ .p }}",
]


@pytest.mark.parametrize("go", FORMS)
def test_each_form_renders_what_eso_renders(go: str) -> None:
    jinja = convert_template(go)
    assert _ours(jinja, VALUES) == _theirs(go, VALUES) is not None, jinja


def test_the_dockerconfigjson_auth_is_whole() -> None:
    out = _ours(convert_template('{{ printf "%s:%s" .u .p | b64enc }}'), VALUES)
    assert out is not None and base64.b64decode(out) == b"user:pa:ss\xff w\xc3\xa9"


@pytest.mark.parametrize("go", [
    "{{ .missing }}",
    '{{ .missing | default "x" }}',  # missingkey=error comes first
    '{{ default .missing "given" }}',
    '{{ replace .missing "" .u }}',
    '{{ printf "%s" .missing | b64enc }}',
])
def test_where_eso_fails_the_translation_fails(go: str) -> None:
    assert _theirs(go, VALUES) is None
    assert _ours(convert_template(go), VALUES) is None


@pytest.mark.parametrize(("go", "why"), [
    ("{{ .p | b64dec }}", "'b64dec': no exact counterpart"),
    ("{{ .p | quote }}", "'quote'"),
    ("{{ .p | upper }}", "'upper'"),
    ("{{ .p | lower }}", "'lower'"),
    ("{{ .p | trim }}", "'trim'"),
    ("{{ .p | title }}", "'title'"),
    ('{{ printf "%s" 5 }}', "the number 5"),
    ('{{ printf "%d" .u }}', "printf verbs"),
    ('{{ printf "%s %s" .u }}', "fewer arguments"),
    ('{{ default "x" }}', "default with 1 arguments"),
    ('{{ "\\x41" }}', "escapes"),
    ("{{ range $k, $v := . }}{{ $k }}{{ end }}", "variables"),
    ("{{ if .a }}x{{ end }}", "'if'"),
    ("{{ .a | toJson }}", "'toJson'"),
    ("{{ (.a | b64enc) }}", "parenthesised"),
    ("{{ .a.b }}", "nested field"),
    ("{{ .a ", "unterminated"),
    ("{{/* a */ .x }}", "comment"),
    ("{{ }}", "empty"),
])
def test_what_has_no_exact_counterpart_is_refused(go: str, why: str) -> None:
    with pytest.raises(Untranslatable, match=why):
        convert_template(go)


# ---- generated forms --------------------------------------------------------------------------
_TEXT = st.text(alphabet=" \t\r\n\f\x1c{}%#-|.:ab\u00e9\u2028", max_size=8).filter(
    lambda t: "{{" not in t and not t.endswith("{"))
_OPERAND = st.sampled_from(['.u', '.p', '.a', '.b', '.missing', 'index . "u"',
                            'index . "missing"', '"lit"', '"x:%y"', '`r\\a\rw`', '"\\u00e9\\n"'])
_LIT = st.sampled_from(['""', '"-"', '":"', '"a"', '"\\t"'])
_FMT = st.lists(st.sampled_from(["%s", "%v", "%%", "-", ":", "é"]), max_size=4).map("".join)


@st.composite
def _pipeline(draw: st.DrawFn) -> str:
    """A Go pipeline of functions the converter translates, in function and piped forms."""
    op = draw(_OPERAND)
    head = draw(st.sampled_from(["", "b64enc", "sha256sum", "toString", "replace", "default",
                                 "printf"]))
    if head == "":
        stage = op
    elif head == "replace":
        stage = f"replace {draw(_LIT)} {draw(_LIT)} {op}"
    elif head == "default":
        stage = f"default {draw(_LIT)} {op}"
    elif head == "printf":
        fmt = draw(_FMT)
        n = fmt.count("%s") + fmt.count("%v")
        ops = [draw(_OPERAND) for _ in range(n)]
        stage = " ".join(["printf", f'"{fmt}"', *ops])
        stage = stage if "index" not in stage else op  # index takes no arguments after it
    else:
        stage = f"{head} {op}" if not op.startswith("index") else op
    stages = [stage]
    for _ in range(draw(st.integers(0, 3))):
        nxt = draw(st.sampled_from(["b64enc", "sha256sum", "toString", "replace", "default",
                                    "printf"]))
        if nxt == "replace":
            nxt = f"replace {draw(_LIT)} {draw(_LIT)}"
        elif nxt == "default":
            nxt = f"default {draw(_LIT)}"
        elif nxt == "printf":
            fmt = draw(_FMT) + "%s"
            n = fmt.count("%s") + fmt.count("%v") - 1
            nxt = " ".join(["printf", f'"{fmt}"', *[draw(_OPERAND) for _ in range(n)]])
            nxt = nxt if "index" not in nxt else "toString"
        stages.append(nxt)
    left = draw(st.sampled_from(["{{ ", "{{- ", "{{"]))
    right = draw(st.sampled_from([" }}", " -}}", "}}"]))
    return left + " | ".join(stages) + right


@st.composite
def _template(draw: st.DrawFn) -> str:
    parts = [draw(_TEXT)]
    for _ in range(draw(st.integers(1, 3))):
        parts += [draw(st.one_of(_pipeline(), st.just("{{/* c */}}"))), draw(_TEXT)]
    return "".join(parts)


@given(_template(), st.dictionaries(st.sampled_from(["u", "p", "a", "b"]),
                                    st.binary(max_size=12), min_size=4))
def test_generated_forms_render_alike_or_are_refused(go: str, values: dict[str, bytes]) -> None:
    try:
        jinja = convert_template(go)
    except Untranslatable:
        return  # refusing is allowed; changing meaning is not
    assert _ours(jinja, values) == _theirs(go, values), (go, jinja)
