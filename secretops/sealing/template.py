"""``spec.template.data``: Secret entries rendered from the unsealed values, in a sandbox.

The engine is jinja2's ``ImmutableSandboxedEnvironment`` (no attribute access to internals, no
mutation, bounded ``range``), with multiplication and powers bounded too, strict undefined
names, and no access to the environment, files or network. Values are the context, by name
(``{{ password }}``) and in the mapping ``values`` (``{{ values["tls.crt"] }}``).

The common Go-template forms that Bitnami and External Secrets users write are converted first:
``{{ .password }}`` and ``{{ index . "tls.crt" }}`` both become ``values[...]``, and a pipe to
one of the filters below works in both languages: ``{{ .user | b64enc }}``.

Filters besides jinja2's own: ``b64enc``, ``b64dec``, ``sha256sum``, ``quote``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from secretops.errors import ExitCode, SecretOpsError

MAX_OUTPUT = 1 << 20  # a whole Secret may hold at most 1 MiB
_MAX_REPEAT = 1 << 20
_BLOCK = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
_INDEX = re.compile(r'\bindex\s+\.\s+("(?:[^"\\]|\\.)*")')
_FIELD = re.compile(r'(?<![\w\]".)])\.([A-Za-z_][A-Za-z0-9_]*)')


class TemplateError(SecretOpsError):
    code = ExitCode.TEMPLATE_ERROR


def convert_go(text: str) -> str:
    """Rewrite ``.key`` and ``index . "key"`` inside ``{{ }}`` to jinja2's ``values["key"]``."""

    def block(m: re.Match[str]) -> str:
        body = _INDEX.sub(lambda i: f"values[{i.group(1)}]", m.group(2))
        body = _FIELD.sub(lambda f: f'values["{f.group(1)}"]', body)
        return "{{" + m.group(1) + body + m.group(3) + "}}"

    return _BLOCK.sub(block, text)


def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Env(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise SecurityError("exponent too large")
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, str | bytes | list | tuple) and isinstance(n, int) \
                            and len(seq) * n > _MAX_REPEAT:
                        raise SecurityError("repetition too large")
            return super().call_binop(context, operator, left, right)

    env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update({
        "b64enc": lambda s: base64.b64encode(_bytes(s)).decode("ascii"),
        "b64dec": lambda s: base64.b64decode(_bytes(s)).decode("utf-8", "surrogateescape"),
        "sha256sum": lambda s: hashlib.sha256(_bytes(s)).hexdigest(),
        "quote": lambda s: '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"',
    })
    env.globals.clear()
    return env


def _bytes(s: Any) -> bytes:
    return s if isinstance(s, bytes) else str(s).encode("utf-8", "surrogateescape")


def _safe_reason(e: Exception, values: Mapping[str, str]) -> str:
    """The error's message unless it could contain a value; then only its type."""
    text = str(e).splitlines()[0] if str(e) else ""
    if not text or any(v and v in text for v in values.values()):
        return type(e).__name__
    return text[:200]


def _path(key: str) -> str:
    return f'["spec"]["template"]["data"]["{key}"]'


def check_syntax(templates: Mapping[str, str]) -> None:
    """Parse every template without rendering it: what can be said about templates without
    the values (a render's success or failure depends on them, so it must not be shown to
    anyone who may not read the Secret)."""
    from jinja2 import TemplateError as JinjaError

    env = _env()
    for key, text in templates.items():
        try:
            env.parse(convert_go(text))
        except JinjaError as e:
            raise TemplateError(f"template does not parse: {str(e).splitlines()[0][:200]}",
                                path=_path(key)) from None


def render_all(templates: Mapping[str, str], values: Mapping[str, bytes]) -> dict[str, bytes]:
    """Render every template; a failing one raises :class:`TemplateError` naming its key."""
    if not templates:
        return {}
    from jinja2 import TemplateError as JinjaError
    from jinja2.exceptions import SecurityError

    env = _env()
    strs = {k: v.decode("utf-8", "surrogateescape") for k, v in values.items()}
    context: dict[str, Any] = dict(strs)
    context["values"] = strs
    out: dict[str, bytes] = {}
    for key, text in templates.items():
        path = _path(key)
        try:
            rendered = env.from_string(convert_go(text)).render(context)
        except SecurityError as e:
            raise TemplateError(f"the sandbox refused the template: {_safe_reason(e, strs)}",
                                path=path) from None
        except (JinjaError, ArithmeticError, TypeError, ValueError, LookupError) as e:
            raise TemplateError(f"template failed: {_safe_reason(e, strs)}", path=path,
                                hints=("refer to values as {{ .name }}, {{ index . \"a.b\" }} "
                                       "or {{ values[\"a.b\"] }}",)) from None
        data = rendered.encode("utf-8", "surrogateescape")
        if len(data) > MAX_OUTPUT:
            raise TemplateError("the rendered template is larger than 1 MiB", path=path)
        out[key] = data
    return out
