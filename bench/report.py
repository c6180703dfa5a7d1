"""Results of the A/B runs, the goals from the issue, and the printed table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.inputs import InputSpec
from bench.procs import RunResult

# The goals for whole-process wall time, secretops / sops (medians), by Secret size:
# (goal, stretch goal). Memory: secretops's peak RSS not above sops's, for every row.
TIME_GOALS: dict[int, tuple[float, float | None]] = {
    10: (2.0, 1.5),
    1_000: (0.5, None),
    10_000: (0.2, None),
    100_000: (0.2, None),
}


def goal_for(spec: InputSpec) -> tuple[float, float | None] | None:
    """The time goal for an input, or ``None`` (the issue sets none for Helm values or for
    Secret sizes other than 10 / 1k / 10k / 100k: those rows are for information)."""
    return TIME_GOALS.get(spec.values) if spec.kind == "secret" else None


@dataclass
class Series:
    """Repeated runs of one tool on one input and operation."""

    runs: list[RunResult] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [r.wall for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak_mib(self) -> float:
        return max(r.maxrss_mib for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        w = self.walls
        return {
            "median_s": self.median, "min_s": min(w), "max_s": max(w), "wall_s": w,
            "peak_mib": self.peak_mib, "rss_mib": [r.maxrss_mib for r in self.runs],
            "cpu_s": [r.utime + r.stime for r in self.runs],
        }


@dataclass
class Row:
    """One input and operation: both tools' series, run in alternating pairs."""

    spec: InputSpec
    op: str
    input_bytes: int
    ours: Series = field(default_factory=Series)
    sops: Series = field(default_factory=Series)
    floor: Series = field(default_factory=Series)  # bench/floor.py, run in the same rounds
    wrong: list[str] = field(default_factory=list)  # correctness problems found for this row
    error: str | None = None

    @property
    def ratio(self) -> float:
        return self.ours.median / self.sops.median

    @property
    def floor_ratio(self) -> float | None:
        return self.floor.median / self.sops.median if self.floor.runs else None

    @property
    def below_floor(self) -> bool:
        """Is the time goal below what the building blocks alone take?"""
        goal = goal_for(self.spec)
        fr = self.floor_ratio
        return goal is not None and fr is not None and fr > goal[0]

    @property
    def paired(self) -> list[float]:
        return [a.wall / b.wall for a, b in zip(self.ours.runs, self.sops.runs, strict=True)]

    @property
    def time_ok(self) -> bool | None:
        goal = goal_for(self.spec)
        return None if goal is None else self.ratio <= goal[0]

    @property
    def mem_ok(self) -> bool:
        return self.ours.peak_mib <= self.sops.peak_mib

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.wrong:
            return "WRONG"
        goal = goal_for(self.spec)
        misses = [w for w, ok in (("time", self.time_ok), ("mem", self.mem_ok)) if ok is False]
        if misses:
            return "MISS " + "+".join(misses) + (" (goal < floor)" if self.below_floor else "")
        if goal is None:
            return "info (mem ok)"
        if goal[1] is not None and self.ratio <= goal[1]:
            return "PASS (stretch too)"
        return "PASS"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input": self.spec.name, "kind": self.spec.kind, "values": self.spec.values,
            "input_bytes": self.input_bytes, "op": self.op, "verdict": self.verdict,
            "wrong": self.wrong, "error": self.error,
        }
        if self.error or not self.ours.runs:
            return out
        goal = goal_for(self.spec)
        out.update({
            "repeat": len(self.ours.runs),
            "secretops": self.ours.to_json(),
            "sops": self.sops.to_json(),
            "ratio_of_medians": self.ratio,
            "paired_ratios": self.paired,
            "median_paired_ratio": statistics.median(self.paired),
            "goal_ratio": goal[0] if goal else None,
            "stretch_ratio": goal[1] if goal else None,
            "time_ok": self.time_ok,
            "mem_ok": self.mem_ok,
        })
        if self.floor.runs:
            out.update({"floor": self.floor.to_json(), "floor_ratio": self.floor_ratio,
                        "goal_below_floor": self.below_floor})
        return out


def fmt_s(x: float) -> str:
    return f"{x:.2f}" if x >= 10 else f"{x:.3f}"


def _spread(s: Series) -> str:
    w = s.walls
    return f"{fmt_s(s.median)} ({fmt_s(min(w))}–{fmt_s(max(w))})"


def _goal_text(spec: InputSpec) -> str:
    goal = goal_for(spec)
    if goal is None:
        return "–"
    return f"≤{goal[0]:g}" + (f" ({goal[1]:g})" if goal[1] is not None else "")


def render_table(rows: list[Row]) -> str:
    """A fixed-width table: one line per input and operation."""
    head = ["input", "op", "n", "secretops s med (min–max)", "sops s med (min–max)",
            "ratio", "paired med (min–max)", "so MiB", "sops MiB", "goal", "verdict"]
    body: list[list[str]] = []
    for r in rows:
        if r.error or not r.ours.runs:
            body.append([r.spec.name, r.op, "0", "–", "–", "–", "–", "–", "–",
                         _goal_text(r.spec), r.verdict])
            continue
        p = r.paired
        body.append([
            r.spec.name, r.op, str(len(r.ours.runs)), _spread(r.ours), _spread(r.sops),
            f"{r.ratio:.2f}",
            f"{statistics.median(p):.2f} ({min(p):.2f}–{max(p):.2f})",
            f"{r.ours.peak_mib:.1f}", f"{r.sops.peak_mib:.1f}", _goal_text(r.spec), r.verdict,
        ])
    return format_columns(head, body, right={2, 5, 7, 8})


def render_floor(rows: list[Row]) -> str:
    """The building-block floor (bench/floor.py) against sops and against secretops."""
    head = ["input", "op", "floor s med (min–max)", "floor / sops", "secretops / floor", "goal",
            "goal vs floor"]
    body: list[list[str]] = []
    for r in rows:
        if r.error or not r.floor.runs:
            continue
        goal = goal_for(r.spec)
        body.append([
            r.spec.name, r.op, _spread(r.floor), f"{r.floor_ratio:.2f}",
            f"{r.ours.median / r.floor.median:.2f}", _goal_text(r.spec),
            "–" if goal is None else ("below the floor" if r.below_floor else "reachable"),
        ])
    return format_columns(head, body, right={3, 4})


def format_columns(head: list[str], body: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(b) for b in body)])
