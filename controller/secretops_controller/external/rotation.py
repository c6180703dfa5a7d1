"""Scheduled rotation of a remote value (``spec.rotation``): when it is due, how it is generated.

* ``schedule``: an interval (``"24h"``, ``"90s"``: due that long after the last rotation, or
  after the ExternalSecret's creation if it never rotated) or a 5-field cron expression in UTC
  (minute hour day-of-month month day-of-week; numbers, ``*``, lists, ranges, ``/`` steps; when
  both day fields are restricted either may match, as cron does): due at the first match after
  the last rotation (or the creation).
* ``generator``: a password from :mod:`secrets` — ``length`` (32), at least ``digits`` digits and
  ``symbols`` symbols (from ``symbolCharacters``), ``noUpper``, ``allowRepeat`` (true).
* ``remoteRef {key, property}``: where the provider writes it (a provider's ``write``).

Pure: the reconcile loop (:mod:`.reconcile`) runs the single rotation timer, the write, the
status (``lastRotationTime``) and the Events. The value never leaves the write call.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from secretops_controller.config import parse_duration

DEFAULT_LENGTH = 32
DEFAULT_SYMBOLS = "~!@#$%^&*()_+-={}|[]:<>?,./"
_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class RotationError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or (
                t.month not in self.months):
            return False
        day = t.day in self.days
        weekday = (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def after(self, t: datetime) -> datetime:
        """The first matching minute strictly after ``t`` (within ~4 years)."""
        c = t.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = c + timedelta(days=366 * 4 + 1)
        while c < end:
            if c.month not in self.months:
                c = (c.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self.matches(c.replace(hour=min(self.hours), minute=min(self.minutes))):
                c = c.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if c.hour not in self.hours:
                c = c.replace(minute=0) + timedelta(hours=1)
                continue
            if self.matches(c):
                return c
            c += timedelta(minutes=1)
        raise RotationError("the cron schedule never matches")


def _field(text: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a_s, b_s = rng.split("-", 1)
            a, b = int(a_s), int(b_s)
        else:
            a = int(rng)
            b = hi if step_s else a
        if step < 1 or a < lo or b > hi or a > b:
            raise ValueError(part)
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse_cron(text: str) -> Cron:
    parts = text.split()
    if len(parts) != 5:
        raise RotationError(f"schedule {text!r}: neither an interval nor a 5-field cron")
    try:
        fields = [_field(p, lo, hi if i != 4 else 7)
                  for i, (p, (lo, hi)) in enumerate(zip(parts, _FIELDS, strict=True))]
    except ValueError as e:
        raise RotationError(f"schedule {text!r}: bad field {e}") from None
    weekdays = frozenset(d % 7 for d in fields[4])
    return Cron(fields[0], fields[1], fields[2], fields[3], weekdays,
                parts[2] == "*", parts[4] == "*")


Schedule = float | Cron


def parse_schedule(text: str) -> Schedule:
    text = text.strip()
    if len(text.split()) == 1:
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            raise RotationError(f"schedule {text!r}: {e}") from None
        if seconds <= 0:
            raise RotationError(f"schedule {text!r}: must be positive")
        return seconds
    return parse_cron(text)


def next_due(schedule: Schedule, since: datetime) -> datetime:
    if isinstance(schedule, Cron):
        return schedule.after(since)
    return since + timedelta(seconds=schedule)


@dataclass(frozen=True)
class Generator:
    length: int = DEFAULT_LENGTH
    digits: int = 0
    symbols: int = 0
    symbol_chars: str = DEFAULT_SYMBOLS
    no_upper: bool = False
    allow_repeat: bool = True

    def alphabet(self) -> str:
        letters = string.ascii_lowercase + ("" if self.no_upper else string.ascii_uppercase)
        return letters + string.digits + (self.symbol_chars if self.symbols else "")

    def generate(self) -> str:
        """A new value (``secrets``); the required digits and symbols at random positions."""
        rng = secrets.SystemRandom()
        if self.allow_repeat:
            chars = [secrets.choice(string.digits) for _ in range(self.digits)]
            chars += [secrets.choice(self.symbol_chars) for _ in range(self.symbols)]
        else:
            chars = rng.sample(string.digits, self.digits)
            chars += rng.sample(sorted(set(self.symbol_chars) - set(chars)), self.symbols)
        alphabet = self.alphabet()
        while len(chars) < self.length:
            c = secrets.choice(alphabet)
            if self.allow_repeat or c not in chars:
                chars.append(c)
        rng.shuffle(chars)
        return "".join(chars)


@dataclass(frozen=True)
class Rotation:
    schedule: Schedule
    key: str
    prop: str | None
    generator: Generator


def parse(spec: Mapping[str, Any]) -> Rotation | None:
    """``spec.rotation`` checked (None when absent); :class:`RotationError` names the field."""
    rot = spec.get("rotation")
    if not rot:
        return None
    schedule = parse_schedule(str(rot.get("schedule") or ""))
    ref = rot.get("remoteRef") or {}
    if not ref.get("key"):
        raise RotationError("spec.rotation.remoteRef.key is required")
    g = rot.get("generator") or {}
    gen = Generator(length=int(g.get("length") or DEFAULT_LENGTH),
                    digits=int(g.get("digits") or 0), symbols=int(g.get("symbols") or 0),
                    symbol_chars=str(g.get("symbolCharacters") or DEFAULT_SYMBOLS),
                    no_upper=bool(g.get("noUpper")),
                    allow_repeat=g.get("allowRepeat") is not False)
    if gen.digits + gen.symbols > gen.length:
        raise RotationError("spec.rotation.generator: digits + symbols exceed length")
    if not gen.allow_repeat and gen.length > len(set(gen.alphabet())):
        raise RotationError("spec.rotation.generator: length exceeds the distinct characters "
                            "(allowRepeat false)")
    if not gen.allow_repeat and (gen.digits > 10 or gen.symbols > len(set(gen.symbol_chars))):
        raise RotationError("spec.rotation.generator: too many digits or symbols without "
                            "repeats")
    return Rotation(schedule, str(ref["key"]), str(ref["property"]) if ref.get("property")
                    else None, gen)


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


__all__ = ["Cron", "Generator", "Rotation", "RotationError", "next_due", "parse",
           "parse_schedule", "parse_time"]
