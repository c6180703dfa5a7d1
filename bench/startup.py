"""Startup budget: ``-X importtime`` of the 10-value decrypt, and ``--version``/``--help`` walls."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import RunResult, Spawner, Tool
from bench.report import fmt_s, format_columns

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


@dataclass
class ImportStat:
    name: str
    depth: int
    parent: str
    self_us: list[int] = field(default_factory=list)
    cum_us: list[int] = field(default_factory=list)


@dataclass
class ImportBudget:
    """Median over runs: the total (sum of top-level cumulative times) and each module's."""

    runs: int
    total_ms: float
    modules: list[ImportStat]

    def top(self, n: int, top_level: bool = False) -> list[ImportStat]:
        mods = [m for m in self.modules if m.depth == 0] if top_level else self.modules
        return sorted(mods, key=lambda m: -statistics.median(m.cum_us))[:n]

    def to_json(self, n: int = 30) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "total_ms": self.total_ms,
            "top_level": [{"module": m.name, "cumulative_ms": statistics.median(m.cum_us) / 1000}
                          for m in self.top(n, top_level=True)],
            "top": [{"module": m.name, "depth": m.depth, "parent": m.parent,
                     "cumulative_ms": statistics.median(m.cum_us) / 1000,
                     "self_ms": statistics.median(m.self_us) / 1000} for m in self.top(n)],
        }


def import_budget(enc_file: Path, env: dict[str, str], cwd: Path, runs: int) -> ImportBudget:
    """Run ``python -X importtime -m secretops decrypt FILE`` ``runs`` times (after a warm-up)."""
    argv = [sys.executable, "-X", "importtime", "-m", "secretops", "decrypt", str(enc_file)]
    stats: dict[str, ImportStat] = {}
    totals: list[int] = []
    for i in range(runs + 1):
        p = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=False)
        if p.returncode != 0:
            raise RuntimeError(f"importtime run failed ({p.returncode}): {p.stderr[-500:]}")
        if i == 0:
            continue  # warm-up (bytecode caches, page cache)
        total = 0
        parsed = [(int(m[1]), int(m[2]), len(m[3]) // 2, m[4])
                  for m in map(_LINE.match, p.stderr.splitlines()) if m]
        # importtime prints children before their parent: a line's parent is the next line
        # one level up.
        parent: dict[str, str] = {}
        pending: dict[int, list[str]] = {}
        for _, _, depth, name in parsed:
            for child in pending.pop(depth + 1, []):
                parent[child] = name
            pending.setdefault(depth, []).append(name)
        for self_us, cum_us, depth, name in parsed:
            st = stats.setdefault(name, ImportStat(name, depth, parent.get(name, "")))
            st.self_us.append(self_us)
            st.cum_us.append(cum_us)
            if depth == 0:
                total += cum_us
        totals.append(total)
    return ImportBudget(runs, statistics.median(totals) / 1000, list(stats.values()))


def render_imports(b: ImportBudget, n: int = 15) -> str:
    """Top-level imports (they add up to the total), then the top ``n`` at any depth."""
    tops = [m for m in b.top(100, top_level=True) if statistics.median(m.cum_us) >= 1000]
    rest = sum(statistics.median(m.cum_us) for m in b.top(1000, top_level=True)) / 1000 - sum(
        statistics.median(m.cum_us) for m in tops) / 1000
    top_line = ", ".join(f"{m.name} {statistics.median(m.cum_us) / 1000:.1f}" for m in tops)
    head = ["module", "imported by", "depth", "cumulative ms", "self ms"]
    body = [[m.name, m.parent or "(top level)", str(m.depth),
             f"{statistics.median(m.cum_us) / 1000:.1f}",
             f"{statistics.median(m.self_us) / 1000:.1f}"] for m in b.top(n)]
    return (f"top level (ms): {top_line}, the rest {rest:.1f}\n"
            + format_columns(head, body, right={2, 3, 4}))


@dataclass
class StartupRow:
    label: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        w = [r.wall for r in self.runs]
        return {"command": self.label, "median_s": self.median, "min_s": min(w), "max_s": max(w),
                "wall_s": w, "peak_mib": max(r.maxrss_mib for r in self.runs)}


PYTHON_LABEL = "python -c pass"
FLOOR_LABEL = "python: import floor"
# What any Python encrypt/decrypt of a YAML file with age must import, doing nothing else: the
# interpreter, PyYAML with its C parser, cryptography's AES-GCM (which imports typing) and
# pyrage. Compared with sops's decrypt of the 10-value file, it bounds the small-file ratio.
FLOOR_CODE = ("import yaml, pyrage; "
              "from cryptography.hazmat.primitives.ciphers.aead import AESGCM")


def startup_walls(spawner: Spawner, ours: Tool, sops: Tool, env: dict[str, str],
                  rounds: int) -> list[StartupRow]:
    """``secretops --version``, ``secretops --help`` and ``sops --version``, rotated each round."""
    cmds = [("secretops --version", [ours.argv0, "--version"]),
            ("secretops --help", [ours.argv0, "--help"]),
            ("sops --version", [sops.argv0, "--version"]),
            (PYTHON_LABEL, [sys.executable, "-c", "pass"]),
            (FLOOR_LABEL, [sys.executable, "-c", FLOOR_CODE])]
    rows = {label: StartupRow(label) for label, _ in cmds}
    for _, argv in cmds:  # warm-up
        spawner.run(argv, env)
    for i in range(rounds):
        k = i % len(cmds)
        for label, argv in cmds[k:] + cmds[:k]:
            r = spawner.run(argv, env)
            if r.code != 0:
                raise RuntimeError(f"{label} exited {r.code}")
            rows[label].runs.append(r)
    return list(rows.values())


def render_startup(rows: list[StartupRow]) -> str:
    base = next(r for r in rows if r.label.startswith("sops")).median
    head = ["command", "n", "wall s med (min–max)", "peak MiB", "/ sops --version"]
    body = []
    for r in rows:
        w = [x.wall for x in r.runs]
        body.append([r.label, str(len(w)), f"{fmt_s(r.median)} ({fmt_s(min(w))}–{fmt_s(max(w))})",
                     f"{max(x.maxrss_mib for x in r.runs):.1f}", f"{r.median / base:.2f}"])
    return format_columns(head, body, right={1, 3, 4})
