"""``spec.template.data``: Secret entries rendered from the unsealed values, in a sandbox.

The engine is jinja2's ``ImmutableSandboxedEnvironment`` (no attribute access to internals, no
mutation, bounded ``range``), with multiplication and powers bounded too, strict undefined
names, and no access to the environment, files or network. Values are the context, by name
(``{{ password }}``) and in the mapping ``values`` (``{{ values["tls.crt"] }}``).

The common Go-template forms that Bitnami and External Secrets users write are converted first:
``{{ .password }}`` and ``{{ index . "tls.crt" }}`` both become ``values[...]``, and a pipe to
one of the filters below works in both languages: ``{{ .user | b64enc }}``.

Filters besides jinja2's own: ``b64enc``, ``b64dec``, ``sha256sum``, ``quote``.

**Bounded while it runs.** :func:`render_all` renders in a worker process
(:mod:`secretops.sealing.workers`): at most ``Limits.timeout`` seconds (then the worker is
killed), ``Limits.memory`` bytes of memory, and :data:`MAX_OUTPUT` bytes of output for all the
keys of one object together, counted chunk by chunk as jinja2 generates them.

**Failures say nothing about the values.** A template's failure could depend on the values
(``{{ values[password[::-1]] }}`` names the reversed password in jinja2's own message; an
``{% if %}`` can pick which error happens), so no exception text is ever shown. When a render
fails, the templates are rendered again with every value replaced by an empty string: if that
fails too, the failure does not depend on the values and the message names the key and a
fixed :class:`Category`; if it succeeds, the message is one fixed sentence
(:data:`VALUE_DEPENDENT`) with no key. Either way the message is a function of the templates
and the value *names* alone; what remains is the one bit "it failed" (see docs/security.md).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import re
import threading
from collections.abc import Mapping
from enum import Enum
from typing import Any

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing.workers import Limits, WorkerError, WorkerPool, WorkerTimeout

MAX_OUTPUT = 1 << 20  # a whole Secret may hold at most 1 MiB
_MAX_REPEAT = 1 << 20
_BLOCK = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
_INDEX = re.compile(r'\bindex\s+\.\s+("(?:[^"\\]|\\.)*")')
_FIELD = re.compile(r'(?<![\w\]".)])\.([A-Za-z_][A-Za-z0-9_]*)')
DATA_PATH = '["spec"]["template"]["data"]'
VALUE_DEPENDENT = ("a template fails with the actual values but renders with empty ones: "
                   "what failed is not shown, since it depends on the values")
HINT = "test the template with sample values: docs/sealing.md, \"Templates\""


class TemplateError(SecretOpsError):
    code = ExitCode.TEMPLATE_ERROR


class Category(Enum):
    """Why a template failed, as fixed text (the only detail ever reported)."""

    SYNTAX = "does not parse"
    UNDEFINED = "uses an undefined name, key or attribute"
    SANDBOX = "does something the sandbox forbids"
    ERROR = "fails (a wrong type or value for an operation or filter)"
    TOO_LARGE = "renders to more than 1 MiB (all keys of the object together)"
    TIMEOUT = "did not finish within the time limit"
    RESOURCES = "exceeded the renderer's memory or CPU limit"
    INTERNAL = "failed in the renderer"


def convert_go(text: str) -> str:
    """Rewrite ``.key`` and ``index . "key"`` inside ``{{ }}`` to jinja2's ``values["key"]``."""

    def block(m: re.Match[str]) -> str:
        body = _INDEX.sub(lambda i: f"values[{i.group(1)}]", m.group(2))
        body = _FIELD.sub(lambda f: f'values["{f.group(1)}"]', body)
        return "{{" + m.group(1) + body + m.group(3) + "}}"

    return _BLOCK.sub(block, text)


def sandbox() -> Any:
    """The sandboxed jinja2 environment every user template is parsed and rendered in."""
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


def _path(key: str) -> str:
    return f'{DATA_PATH}["{key}"]'


def check_syntax(templates: Mapping[str, str]) -> None:
    """Parse every template without rendering it: what can be said about templates without
    the values (a render's success or failure depends on them, so it must not be shown to
    anyone who may not read the Secret)."""
    from jinja2 import TemplateError as JinjaError

    env = sandbox()
    for key, text in templates.items():
        try:
            env.parse(convert_go(text))
        except JinjaError as e:
            raise TemplateError(f"template does not parse: {str(e).splitlines()[0][:200]}",
                                path=_path(key)) from None


def _category(e: BaseException) -> Category:
    from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

    if isinstance(e, TemplateSyntaxError):
        return Category.SYNTAX
    if isinstance(e, UndefinedError):
        return Category.UNDEFINED
    if isinstance(e, SecurityError):
        return Category.SANDBOX
    if isinstance(e, MemoryError | RecursionError):
        return Category.RESOURCES
    return Category.ERROR


def render_here(templates: Mapping[str, str], values: Mapping[str, bytes],
                max_output: int = MAX_OUTPUT) -> dict[str, Any]:
    """Render in this process (the worker's side of :func:`render_all`): ``{"ok": {key:
    base64}}`` or ``{"fail": category name, "key": key}``. Output is counted as it is
    generated and rendering stops past ``max_output`` bytes (all keys together)."""
    env = sandbox()
    strs = {k: v.decode("utf-8", "surrogateescape") for k, v in values.items()}
    context: dict[str, Any] = dict(strs)
    context["values"] = strs
    out: dict[str, str] = {}
    total = 0
    for key, text in templates.items():
        chunks: list[bytes] = []
        try:
            for chunk in env.from_string(convert_go(text)).generate(context):
                data = chunk.encode("utf-8", "surrogateescape")
                total += len(data)
                if total > max_output:
                    return {"fail": Category.TOO_LARGE.name, "key": key}
                chunks.append(data)
        except Exception as e:  # MemoryError too: the category only, never the text
            fail: dict[str, Any] = {"fail": _category(e).name, "key": key}
            if isinstance(e, MemoryError):
                fail["retire"] = True
            return fail
        out[key] = base64.b64encode(b"".join(chunks)).decode("ascii")
    return {"ok": out}


_default: WorkerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process's render pool with default :class:`Limits` (the CLI's; the controller
    makes its own from its flags). Started on first use, stopped at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkerPool("render", Limits(max_reply=4 * MAX_OUTPUT))
            atexit.register(_default.close)
        return _default


def _run(pool: WorkerPool, templates: Mapping[str, str],
         values: Mapping[str, bytes]) -> tuple[dict[str, bytes] | None, str | None, Category]:
    """(outputs, None, _) on success, else (None, failing key or None, category)."""
    job = {"templates": dict(templates), "max_output": MAX_OUTPUT,
           "values": {k: base64.b64encode(v).decode("ascii") for k, v in values.items()}}
    try:
        reply = pool.call(job)
    except WorkerTimeout:
        return None, None, Category.TIMEOUT
    except WorkerError:
        return None, None, Category.RESOURCES
    ok = reply.get("ok")
    if isinstance(ok, dict):
        try:
            out = {str(k): base64.b64decode(v, validate=True) for k, v in ok.items()}
        except (ValueError, TypeError):
            return None, None, Category.INTERNAL
        if set(out) == set(templates) and sum(map(len, out.values())) <= MAX_OUTPUT:
            return out, None, Category.INTERNAL
        return None, None, Category.INTERNAL
    key = reply.get("key")
    name = str(reply.get("fail"))
    category = Category[name] if name in Category.__members__ else Category.INTERNAL
    return None, (key if isinstance(key, str) and key in templates else None), category


def render_all(templates: Mapping[str, str], values: Mapping[str, bytes], *,
               pool: WorkerPool | None = None) -> dict[str, bytes]:
    """Render every template (in a bounded worker); a failure raises :class:`TemplateError`
    whose text depends on the templates and the value names only (see the module's doc)."""
    if not templates:
        return {}
    pool = pool or default_pool()
    out, _, _ = _run(pool, templates, values)
    if out is not None:
        return out
    # Again with every value empty: what fails then does not depend on the values.
    dry, key, category = _run(pool, templates, dict.fromkeys(values, b""))
    if dry is not None:
        raise TemplateError(VALUE_DEPENDENT, path=DATA_PATH, hints=(HINT,))
    what = f"the template {category.value}"
    if category is Category.TIMEOUT:
        what += f" ({pool.limits.timeout:g} s)"
    raise TemplateError(what, path=_path(key) if key is not None else DATA_PATH, hints=(HINT,))
