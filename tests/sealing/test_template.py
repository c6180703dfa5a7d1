"""Templates render in bounded worker processes and fail with text no value can shape.

Each hostile template below once put the canary (or its reverse, a slice, its upper-case) into
the error text: jinja2's own messages name the missing key, and ``values[password[::-1]]`` makes
the value the name. Now the text of a failure is a function of the templates and the value
*names* only: the same for any values that make it fail. Limits are hang guards (a few seconds),
never timed assertions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from secretops.errors import ExitCode
from secretops.sealing.template import (
    DATA_PATH,
    VALUE_DEPENDENT,
    Category,
    TemplateError,
    render_all,
)
from secretops.sealing.workers import Limits, WorkerPool
from tests.helpers import CANARY, assert_no_canary, canary_leaks

VALUES = {"password": CANARY.encode(), "user": b"admin"}
# the same names, other values of the same length: a message may not tell the two apart
OTHER = {"password": b"X" * len(CANARY), "user": b"nobody"}

LEAKY = {
    "reversed": "{{ values[password[::-1]] }}",
    "slice": "{{ values[password[1:]] }}",
    "upper": "{{ values[password | upper] }}",
    "spaced": '{{ values[password | list | join(" ")] }}',
    "attribute": "{{ password.nosuchmethod() }}",
    "int": "{{ password | int + password }}",
    "b64": "{{ values[password | b64enc] }}",
    "go": "{{ index . .password }}",
    "oracle": '{% if password.startswith("canary") %}{{ undefined }}{% endif %}',
    "oracle-type": '{% if password[0] == "c" %}{{ 1 + user }}{% endif %}',
    "length": "{% for c in password %}{{ 'x' * 50000 }}{% endfor %}",
}


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool("render", Limits(timeout=1.0, memory=48 << 20, workers=2,
                                    max_reply=4 << 20))
    yield p
    p.close()


def failure(templates: dict[str, str], values: dict[str, bytes], pool: WorkerPool
            ) -> TemplateError | None:
    try:
        render_all(templates, values, pool=pool)
    except TemplateError as e:
        return e
    return None


def text_of(e: TemplateError) -> str:
    return "\n".join([str(e), *e.hints])


@pytest.mark.parametrize("name", sorted(LEAKY))
def test_a_failure_says_nothing_about_the_values(name: str, pool: WorkerPool) -> None:
    template = {"x": LEAKY[name]}
    err = failure(template, VALUES, pool)
    assert err is not None, name
    assert err.code == ExitCode.TEMPLATE_ERROR
    assert_no_canary(text_of(err), f"the error of template {name}")
    assert not canary_leaks(repr(err.__cause__) + repr(err.__context__))
    # the text is one of the fixed ones: a key and category, or the one value-dependent line
    fixed = {f'{DATA_PATH}["x"]: the template {c.value}' for c in Category} | {
        f"{DATA_PATH}: {VALUE_DEPENDENT}"}
    assert str(err) in fixed or str(err).startswith(
        f'{DATA_PATH}["x"]: the template {Category.TIMEOUT.value}'), str(err)
    other = failure(template, OTHER, pool)
    if other is not None:  # the same text for other values: nothing in it depends on them
        assert text_of(other) == text_of(err), name


def test_value_independent_failures_name_the_key_and_a_fixed_category(
        pool: WorkerPool) -> None:
    cases = {
        "{{ nope }}": Category.UNDEFINED,
        "{% for": Category.SYNTAX,
        "{{ password | nosuchfilter }}": Category.SYNTAX,
        "{{ user.__class__.__mro__ }}": Category.SANDBOX,
        "{{ 'x' * 100000000 }}": Category.SANDBOX,
        "{{ 1 / 0 }}": Category.ERROR,
        "{{ 'x' * 1000000 }}{{ 'x' * 1000000 }}": Category.TOO_LARGE,
    }
    for template, category in cases.items():
        err = failure({"ok": "{{ user }}", "bad": template}, VALUES, pool)
        assert err is not None, template
        assert err.path == f'{DATA_PATH}["bad"]', (template, err.path)
        assert err.message == f"the template {category.value}", (template, err.message)
    # a value-dependent failure names no key and no category
    err = failure({"x": LEAKY["oracle"]}, VALUES, pool)
    assert err is not None and (err.path, err.message) == (DATA_PATH, VALUE_DEPENDENT)
    assert failure({"x": LEAKY["oracle"]}, OTHER, pool) is None  # the one bit it tells


def test_output_is_counted_while_rendering_across_all_keys(pool: WorkerPool) -> None:
    """250 keys of 1 MB each once took a controller to 2.2 GB: now rendering stops at 1 MiB
    of output for the whole object, long before the worker's 48 MiB."""
    many = {f"k{i}": "{{ 'x' * 1000000 }}" for i in range(250)}
    err = failure(many, VALUES, pool)
    assert err is not None and err.message == f"the template {Category.TOO_LARGE.value}"
    assert err.path == f'{DATA_PATH}["k1"]'  # the second key crosses the limit
    out = render_all({"a": "{{ 'x' * 600000 }}", "b": "{{ 'y' * 400000 }}"}, VALUES, pool=pool)
    assert (len(out["a"]), len(out["b"])) == (600_000, 400_000)


def test_time_is_bounded_and_the_worker_replaced(pool: WorkerPool) -> None:
    started = pool.started
    spin = ("{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}"
            "{% endfor %}")
    err = failure({"spin": spin}, VALUES, pool)
    assert err is not None
    assert err.message == f"the template {Category.TIMEOUT.value} (1 s)"
    assert render_all({"u": "{{ user }}"}, VALUES, pool=pool) == {"u": b"admin"}
    assert pool.started > started  # the killed workers were replaced by a new one
    assert all(w.alive() for w in pool._idle)


def test_memory_is_bounded(pool: WorkerPool) -> None:
    # ~ (concatenation) is not one of the sandbox's bounded operators: the address-space
    # limit is what stops it
    grow = ("{% set a = 'x' * 1000000 %}{% set b = a ~ a ~ a ~ a ~ a ~ a ~ a ~ a %}"
            "{% set c = b ~ b ~ b ~ b ~ b ~ b ~ b ~ b %}{{ c | length }}")
    err = failure({"grow": grow}, VALUES, pool)
    assert err is not None
    assert err.message == f"the template {Category.RESOURCES.value}", err.message
    assert render_all({"u": "{{ user }}"}, VALUES, pool=pool) == {"u": b"admin"}


def test_no_template_starts_no_worker() -> None:
    fresh = WorkerPool("render")
    try:
        assert render_all({}, VALUES, pool=fresh) == {}
        assert fresh.started == 0
    finally:
        fresh.close()


def test_a_worker_holds_nothing_of_its_parent(pool: WorkerPool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start from a fresh interpreter with an empty environment: a sandbox escape
    would find no credentials there, and never a key (template workers get none)."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    fresh = WorkerPool("render")
    try:
        render_all({"u": "{{ user }}"}, VALUES, pool=fresh)
        [worker] = fresh._idle
        environ = Path(f"/proc/{worker.proc.pid}/environ").read_bytes().split(b"\0")
        names = sorted(e.split(b"=")[0].decode() for e in environ if e)
        assert names == ["LC_ALL", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"]
        limits = Path(f"/proc/{worker.proc.pid}/limits").read_text()
        core = next(ln for ln in limits.splitlines() if ln.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"]
    finally:
        fresh.close()
