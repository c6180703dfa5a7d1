"""Many small files: one ``secretops`` run over the tree vs a shell loop of ``secretops`` vs
``find | xargs -0 -n1 -P<jobs> sops``, paired, in the same run.

Run ``./scripts/bench --bulk``. See the "Many files (bulk)" section of ``bench/README.md``.

A temp git work tree holds ``--files`` Kubernetes Secrets (``secret_N`` of ``bench/inputs.py``,
``--values`` values each, spread over a few directories) and a ``.sops.yaml`` whose rule covers
them; they are encrypted once with the real sops, untimed. Each operation then runs three ways,
in place, on a fresh copy of that encrypted tree (copied before every timed run, untimed):

* **bulk**: ``secretops OP -i -j JOBS secrets/`` — one process, a pool of JOBS workers;
* **loop**: ``for f in …; do secretops OP -i "$f"; done`` in ``sh`` — one process per file;
* **sops**: ``find secrets -name '*.yaml' -print0 | xargs -0 -n1 -PJOBS sops OP -i`` — what
  sops's users run today (sops #1071's advice), JOBS in parallel.

Operations: ``decrypt`` (every file decrypted in place) and ``rotate`` (a new data key for every
file). Rounds rotate which variant goes first. Before timing, every variant's result is
checked: decrypted files must hold the original data, rotated ones must open with the real sops
and hold it too. Wall time is spawn to reap of the top process (``sh`` for loop and sops);
``peak MiB`` is the largest resident size of any one process of the run (``wait4``'s
``ru_maxrss`` covers the waited-for descendants as a maximum, not a sum).

This is the seed of the later ``--repo`` benchmark (a generated repository with history); it
shares the isolated environment, the launcher and the inputs with ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.inputs import SECRET_REGEX, secret_yaml
from bench.procs import REPO, Spawner, Tool, isolated_env, make_age_key, secretops_tool, sops_tool
from bench.report import Series
from bench.run import fmt_load, git_state, log

RESULTS = REPO / "bench" / "results" / "bulk-latest.json"
VARIANTS = ("bulk", "loop", "sops")
OPS = ("decrypt", "rotate")


@dataclass
class Row:
    op: str
    series: dict[str, Series] = field(default_factory=lambda: {v: Series() for v in VARIANTS})
    problems: list[str] = field(default_factory=list)


def _argv(variant: str, op: str, jobs: int, so: Tool, sops: Tool) -> list[str]:
    if variant == "bulk":
        return [so.argv0, op, "-i", "-j", str(jobs), "secrets"]
    if variant == "loop":
        script = (f"find secrets -name '*.yaml' | while IFS= read -r f; do "
                  f"{shlex.quote(so.argv0)} {op} -i \"$f\" || exit 1; done")
    else:
        script = (f"find secrets -name '*.yaml' -print0 | xargs -0 -n1 -P{jobs} "
                  f"{shlex.quote(sops.argv0)} {op} -i")
    return ["/bin/sh", "-c", script]


def build_tree(work: Path, env: dict[str, str], recipient: str, files: int, values: int,
               sops: Tool) -> tuple[Path, dict[str, object]]:
    """The encrypted tree (kept as the pristine copy) and each file's data, by name."""
    tree = work / "pristine"
    (tree / "secrets").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tree)], check=True, env=env,
                   stdin=subprocess.DEVNULL)
    (tree / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n"
        f"    encrypted_regex: '{SECRET_REGEX}'\n    age: {recipient}\n")
    data: dict[str, object] = {}
    names = []
    for n in range(files):
        name = f"secrets/team{n % 8}/app{n:04}.yaml"
        path = tree / name
        path.parent.mkdir(exist_ok=True)
        text = secret_yaml(values, seed=n)
        path.write_text(text)
        data[name] = yaml.safe_load(text)
        names.append(name)
    listing = "".join(f"{n}\0" for n in names).encode()
    p = subprocess.run(["xargs", "-0", "-n1", "-P4", sops.argv0, "encrypt", "-i"],
                       input=listing, cwd=tree, env=env, capture_output=True)
    if p.returncode:
        raise SystemExit(f"bench: sops could not encrypt the tree: {p.stderr[-500:]!r}")
    return tree, data


def _fresh(pristine: Path, work: Path) -> Path:
    run_dir = work / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(pristine, run_dir, symlinks=True)
    return run_dir


def _verify(op: str, run_dir: Path, data: dict[str, object], sops: Tool,
            env: dict[str, str]) -> list[str]:
    problems = []
    for name, want in data.items():
        path = run_dir / name
        if op == "decrypt":
            got = yaml.safe_load(path.read_text())
        else:
            if b"ENC[AES256_GCM" not in path.read_bytes():
                problems.append(f"{name}: not encrypted after rotate")
                continue
            p = subprocess.run([sops.argv0, "decrypt", str(path)], env=env,
                               capture_output=True, stdin=subprocess.DEVNULL)
            got = yaml.safe_load(p.stdout) if p.returncode == 0 else None
        if got != want:
            problems.append(f"{name}: wrong data after {op}")
    return problems[:5]


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    key_file = work / "key.txt"
    recipient = make_age_key(key_file)
    env = isolated_env(work, key_file)
    env.update({"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"})
    so, sops = secretops_tool(), sops_tool(work, args.sops)
    log(f"bench: {args.files} files of {args.values} values, jobs {args.jobs}")
    pristine, data = build_tree(work, env, recipient, args.files, args.values, sops)
    rows = [Row(op) for op in args.ops]
    err = work / "stderr.txt"
    for row in rows:
        for variant in VARIANTS:  # correctness first (also the warm-up)
            run_dir = _fresh(pristine, work)
            with Spawner(run_dir) as sp:
                code = sp.run(_argv(variant, row.op, args.jobs, so, sops), env, stderr=err).code
            if code:
                row.problems.append(f"{variant}: exit {code}: {err.read_text()[-300:]}")
            row.problems += [f"{variant}: {p}" for p in _verify(row.op, run_dir, data, sops,
                                                                env)]
        for rnd in range(args.repeat):
            order = VARIANTS[rnd % 3:] + VARIANTS[:rnd % 3]
            for variant in order:
                run_dir = _fresh(pristine, work)
                with Spawner(run_dir) as sp:
                    r = sp.run(_argv(variant, row.op, args.jobs, so, sops), env, stderr=err)
                row.series[variant].runs.append(r)
            log(f"  {row.op} round {rnd + 1}/{args.repeat}")
    return {"rows": rows}


def _fmt(s: Series) -> str:
    return f"{s.median:6.2f} ({min(s.walls):.2f}–{max(s.walls):.2f})"


def report(rows: list[Row], args: argparse.Namespace) -> str:
    where = f", in {args.tmp}" if args.tmp else ""
    head = (f"{args.files} files × {args.values} values, jobs {args.jobs}, {args.repeat} rounds"
            f"{where}; wall s median (min–max); ratio < 1: secretops bulk is faster")
    lines = [head, "",
             "| op | bulk s | loop s | sops xargs s | bulk / sops | bulk / loop | "
             "paired bulk/sops | peak MiB bulk / sops |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.problems:
            lines.append(f"| {row.op} | WRONG: {'; '.join(row.problems)[:200]} |||||||")
            continue
        b, lo, so = (row.series[v] for v in VARIANTS)
        paired = [x.wall / y.wall for x, y in zip(b.runs, so.runs, strict=True)]
        lines.append(
            f"| {row.op} | {_fmt(b)} | {_fmt(lo)} | {_fmt(so)} | {b.median / so.median:.2f} | "
            f"{b.median / lo.median:.2f} | {statistics.median(paired):.2f} "
            f"({min(paired):.2f}–{max(paired):.2f}) | {b.peak_mib:.0f} / {so.peak_mib:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench --bulk", description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--values", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--ops", type=lambda s: s.split(","), default=list(OPS))
    p.add_argument("--sops", help="another sops binary to compare with")
    p.add_argument("--tmp", help="make the temp directory here (e.g. /dev/shm: no disk, so "
                                 "no fsync cost; secretops fsyncs every file it writes)")
    p.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = p.parse_args(argv)
    if any(op not in OPS for op in args.ops):
        p.error(f"--ops: choose from {', '.join(OPS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="secretops-bulk-", dir=args.tmp))
    load0 = os.getloadavg()
    started = time.time()
    try:
        rows: list[Row] = run(args, work)["rows"]  # type: ignore[assignment]
    finally:
        if args.keep:
            log(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    table = report(rows, args)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(), "git": git_state(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "platform": platform.platform()},
        "load": {"start": fmt_load(load0), "end": fmt_load(os.getloadavg())},
        "seconds": time.time() - started, "args": vars(args),
        "rows": [{"op": r.op, "problems": r.problems,
                  **{v: r.series[v].to_json() for v in VARIANTS if r.series[v].runs}}
                 for r in rows],
        "table": table,
    }, indent=2) + "\n")
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
