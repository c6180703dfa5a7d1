"""A generated repository with history: secretops against sops run the way its users run it.

Run ``./scripts/bench --repo`` (``--files 50 --commits 5`` for a quick run). See the "A
repository with history" section of ``bench/README.md``.

The repository (built once per run in a temp dir, with secretops's many-file ``encrypt -i`` and
the library, untimed) holds ``--files`` encrypted files in four clusters — Kubernetes Secrets
of mixed sizes (``data``/``stringData`` encrypted), Helm values (every value encrypted), and a
few Secrets also encrypted to a gpg key (a private ``GNUPGHOME``) — all to two age recipients,
with ``--commits`` commits: the first adds everything, each later one changes a value in five
Secrets. Each operation runs on a fresh copy of that repository (copied untimed), two ways:

==========  ====================================  =============================================
operation   secretops                             sops (``-P`` = the CPUs)
==========  ====================================  =============================================
updatekeys  ``updatekeys -y clusters``            ``find clusters -type f -print0 | xargs -0
                                                  -n1 -P… sops updatekeys -y``
rotate      ``rotate -i clusters``                ``… | xargs … sops rotate -i``
check       ``check clusters``                    ``… | xargs … sops filestatus``
decrypt     ``decrypt -i clusters``               ``… | xargs … sops decrypt -i``
log -p      ``log -p``                            ``git log -p``, sops as textconv
==========  ====================================  =============================================

updatekeys runs after a third age recipient is added to every rule of ``.sops.yaml``. ``check``
is not the same work on both sides: sops has no "find unencrypted files" command, and the
closest CI users run is ``sops filestatus`` on every file that should be encrypted (is there a
``sops`` block?). ``secretops check`` does that and more (the rules' coverage, plaintext in
Secrets, the metadata's shape). Every result is checked (untimed) before it counts.

Wall time is spawn to reap of the top process. ``peak MiB`` is ``wait4``'s ``ru_maxrss``: the
largest single process of the run. The memory rows run secretops alone on one cluster (a
quarter of the files) and on all of them, and sample the resident size of the whole process
tree (parent and workers, summed) from ``/proc``, to show memory does not grow with the number
of files.
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
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.gitlog import git_env
from bench.inputs import SECRET_REGEX, helm_yaml, secret_yaml
from bench.procs import REPO, Spawner, Tool, make_age_key, secretops_tool, sops_tool
from bench.report import Series, format_columns
from bench.run import fmt_load, git_state, log

RESULTS = REPO / "bench" / "results" / "repo-latest.json"
OPS = ("updatekeys", "rotate", "check", "decrypt", "log")
GOALS = {"updatekeys": 0.1, "rotate": 0.1, "check": 0.1, "decrypt": 0.1, "log": 0.2}
CLUSTERS = 4
CHANGES_PER_COMMIT = 5
_ALNUM = string.ascii_letters + string.digits
_SEED = 20261207


# -- the repository ------------------------------------------------------------------------------

@dataclass
class Repo:
    """The generated repository, and what a check needs: each file's final data, the values
    the history changed, the recipient updatekeys adds."""

    path: Path
    env: dict[str, str]
    files: list[str]
    data: dict[str, Any]
    changed: list[tuple[str, str, str]]  # (key, old, new) for every change in the history
    new_recipient: str
    new_key_file: Path
    gnupghome: str


def _kind(i: int) -> str:
    if i % 83 == 1:
        return "pgp"
    return "values" if i % 4 == 3 else "secrets"


def _text(i: int, kind: str, rng: random.Random) -> str:
    if kind == "values":
        leaves = 3000 if i % 211 == 3 else rng.choice([30, 60, 120, 250])
        return helm_yaml(leaves, seed=_SEED + i)
    values = 500 if i % 97 == 0 else rng.choice([2, 3, 5, 8, 10, 16, 32])
    return secret_yaml(values, seed=_SEED + i)


def sops_yaml(recipients: list[str], fpr: str) -> str:
    """Three rules: gpg-and-age Secrets, age Secrets, age Helm values (everything encrypted)."""
    age = ",".join(recipients)
    return (
        "creation_rules:\n"
        "  - path_regex: /pgp/.*\\.yaml$\n"
        f"    encrypted_regex: '{SECRET_REGEX}'\n"
        f"    age: {age}\n"
        f"    pgp: {fpr}\n"
        "  - path_regex: /secrets/.*\\.yaml$\n"
        f"    encrypted_regex: '{SECRET_REGEX}'\n"
        f"    age: {age}\n"
        "  - path_regex: /values/.*\\.yaml$\n"
        f"    age: {age}\n")


def _gpg_key(home: str) -> str:
    """An ed25519/cv25519 key pair in ``home`` (no passphrase); its fingerprint."""
    quiet = ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
    env = {**os.environ, "GNUPGHOME": home}
    out = subprocess.run([*quiet, "--status-fd", "1", "--quick-gen-key",
                          "bench <bench@example.invalid>", "ed25519", "cert", "never"],
                         env=env, capture_output=True, text=True, check=True,
                         stdin=subprocess.DEVNULL).stdout
    fpr = next(line.split()[3] for line in out.splitlines()
               if line.startswith("[GNUPG:] KEY_CREATED"))
    subprocess.run([*quiet, "--quick-add-key", fpr, "cv25519", "encr", "never"], env=env,
                   capture_output=True, check=True, stdin=subprocess.DEVNULL)
    return fpr


def _git(repo: Path, env: dict[str, str], *args: str) -> None:
    p = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, check=False)
    if p.returncode:
        raise SystemExit(f"bench: git {' '.join(args)} failed: {p.stderr.strip()}")


def build(work: Path, n_files: int, commits: int, so: Tool) -> Repo:
    """The repository at ``work/pristine``: plaintext written, encrypted by one many-file
    ``secretops encrypt -i``, committed, then ``commits - 1`` commits of changed values."""
    from secretops import fileops

    key_file = work / "keys.txt"
    r1 = make_age_key(work / "key1.txt")
    r2 = make_age_key(work / "key2.txt")
    new = make_age_key(work / "key3.txt")
    key_file.write_text((work / "key1.txt").read_text() + (work / "key2.txt").read_text()
                        + (work / "key3.txt").read_text())
    key_file.chmod(0o600)
    env = git_env(work, key_file)
    gnupghome = tempfile.mkdtemp(prefix="g")  # short: gpg-agent's socket path has a limit
    env["GNUPGHOME"] = gnupghome
    fpr = _gpg_key(gnupghome)

    repo = work / "pristine"
    repo.mkdir()
    _git(repo, env, "init", "-q", "-b", "main")
    (repo / ".sops.yaml").write_text(sops_yaml([r1, r2], fpr))
    rng = random.Random(_SEED + n_files)
    files, data = [], {}
    for i in range(n_files):
        kind = _kind(i)
        name = f"clusters/c{i % CLUSTERS}/{kind}/app{i:04}.yaml"
        text = _text(i, kind, rng)
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        files.append(name)
        data[name] = yaml.safe_load(text)
    (work / "list").write_bytes(b"".join(f"{f}\0".encode() for f in files))
    p = subprocess.run([so.argv0, "encrypt", "-i", "-0", "--files-from", str(work / "list")],
                       cwd=repo, env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, check=False)
    if p.returncode:
        raise SystemExit(f"bench: secretops encrypt -i failed: {p.stderr[-600:]}")
    t0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())

    def commit(i: int, msg: str) -> None:
        stamp = f"@{t0 + 3600 * i} +0000"
        _git(repo, {**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
             "commit", "-q", "-m", msg)

    _git(repo, env, "add", "-A")
    commit(0, f"add {n_files} encrypted files")
    secrets = [f for f in files if "/values/" not in f]
    changed = []
    with contextlib.chdir(repo):
        for c in range(1, commits):
            for name in rng.sample(secrets, min(CHANGES_PER_COMMIT, len(secrets))):
                doc = data[name]
                section = "stringData" if doc.get("stringData") else "data"
                key = sorted(doc[section])[c % len(doc[section])]
                value = "".join(rng.choices(_ALNUM, k=40))
                opened = fileops.open_file((repo / name).read_bytes(), format="yaml", env=env)
                out = fileops.set_value(opened, [section, key], value)
                assert out is not None
                (repo / name).write_bytes(out)
                changed.append((key, str(doc[section][key]), value))
                doc[section][key] = value
            _git(repo, env, "add", "-A")
            commit(c, "change some values")
    return Repo(repo, env, files, data, changed, new, work / "key3.txt", gnupghome)


def cleanup(repo: Repo) -> None:
    """Stop the gpg-agent of the repository's GNUPGHOME and remove it."""
    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": repo.gnupghome},
                   check=False, capture_output=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(repo.gnupghome, ignore_errors=True)


# -- the runs ------------------------------------------------------------------------------------

def _xargs(sops: Tool, args: str, where: str = "clusters") -> list[str]:
    jobs = os.cpu_count() or 1
    return ["/bin/sh", "-c", f"find {where} -type f -print0 | xargs -0 -n1 -P{jobs} "
                             f"{shlex.quote(sops.argv0)} {args}"]


def commands(op: str, so: Tool, sops: Tool, git: str, where: str = "clusters"
             ) -> tuple[list[str], list[str]]:
    """(secretops argv, sops argv) of one operation on ``where``."""
    if op == "log":
        paths = [] if where == "clusters" else ["--", where]
        return [so.argv0, "log", "-p", *paths], [git, "--no-pager", "log", "-p", *paths]
    ours = {"updatekeys": ["updatekeys", "-y"], "rotate": ["rotate", "-i"], "check": ["check"],
            "decrypt": ["decrypt", "-i"]}[op]
    theirs = {"updatekeys": "updatekeys -y", "rotate": "rotate -i", "check": "filestatus",
              "decrypt": "decrypt -i"}[op]
    return [so.argv0, *ours, where], _xargs(sops, theirs, where)


def prepare(op: str, run_dir: Path, repo: Repo, tool: str, sops: Tool) -> None:
    """Untimed: updatekeys gets a new recipient in every rule; log -p with sops gets the
    textconv driver (cachetextconv off: every side of every diff is decrypted)."""
    if op == "updatekeys":
        cfg = run_dir / ".sops.yaml"
        cfg.write_text(re.sub(r"(    age: .*)", rf"\1,{repo.new_recipient}", cfg.read_text()))
    if op == "log" and tool == "sops":
        _git(run_dir, repo.env, "config", "diff.sopsbench.textconv",
             f"{shlex.quote(sops.argv0)} decrypt")
        _git(run_dir, repo.env, "config", "diff.sopsbench.cachetextconv", "false")
        (run_dir / ".git" / "info" / "attributes").write_text("clusters/** diff=sopsbench\n")


def verify(op: str, tool: str, run_dir: Path, repo: Repo, out: Path, sops: Tool) -> list[str]:
    """What the run must have done, checked on every file (a sample where sops must open)."""
    problems: list[str] = []
    env = repo.env
    sample = repo.files[:: max(1, len(repo.files) // 20)]
    if op == "decrypt":
        bad = [f for f in repo.files if yaml.safe_load((run_dir / f).read_text()) != repo.data[f]]
        if bad:
            problems.append(f"{len(bad)} files not decrypted to their data (first {bad[0]})")
    elif op in ("rotate", "updatekeys"):
        for f in sample:
            p = subprocess.run([sops.argv0, "decrypt", f], cwd=run_dir, capture_output=True,
                               stdin=subprocess.DEVNULL, check=False,
                               env={**env, "SOPS_AGE_KEY_FILE": str(
                                   repo.new_key_file if op == "updatekeys"
                                   else env["SOPS_AGE_KEY_FILE"])})
            if p.returncode or yaml.safe_load(p.stdout) != repo.data[f]:
                problems.append(f"{f}: sops cannot open it after {op} "
                                f"{'with the new key alone' if op == 'updatekeys' else ''}")
                break
        if op == "rotate":
            same = [f for f in repo.files
                    if (run_dir / f).read_bytes() == (repo.path / f).read_bytes()]
            if same:
                problems.append(f"{len(same)} files unchanged by rotate")
    elif op == "check" and tool == "sops":
        yes = out.read_text().split().count('{"encrypted":true}')
        if yes != len(repo.files):
            problems.append(f"filestatus: {yes} of {len(repo.files)} files encrypted")
    elif op == "log":
        text = out.read_text(errors="replace")
        if "ENC[AES256_GCM" in text:
            problems.append("ciphertext in the log: a version was not decrypted")
        missing = [k for k, _, new in repo.changed
                   if not re.search(rf"^\+\s+{re.escape(k)}: {new}$", text, re.M)]
        if missing:
            problems.append(f"{len(missing)} of {len(repo.changed)} changes not shown")
    return problems


@dataclass
class Row:
    op: str
    ours: Series = field(default_factory=Series)
    sops: Series = field(default_factory=Series)
    problems: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.ours.median / self.sops.median

    @property
    def verdict(self) -> str:
        if self.problems:
            return "WRONG"
        return "PASS" if self.ratio <= GOALS[self.op] else "FAIL"


class TreeRss:
    """The summed resident size of a process's descendants, sampled from ``/proc``."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            parents: dict[int, list[int]] = {}
            for name in os.listdir("/proc"):
                if name.isdigit():
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        stat = Path(f"/proc/{name}/stat").read_text()
                        ppid = int(stat.rsplit(")", 1)[1].split()[1])
                        parents.setdefault(ppid, []).append(int(name))
            total, todo = 0, list(parents.get(self.root, []))
            while todo:
                pid = todo.pop()
                todo += parents.get(pid, [])
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _fresh(repo: Repo, work: Path) -> Path:
    run_dir = work / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(repo.path, run_dir, symlinks=True)
    return run_dir


def _once(sp: Spawner, argv: list[str], op: str, tool: str, repo: Repo, work: Path,
          sops: Tool, *, where: str = "clusters") -> tuple[Any, Path, Path]:
    run_dir = _fresh(repo, work)
    prepare(op, run_dir, repo, tool, sops)
    out, err = work / "out.txt", work / "err.txt"
    r = sp.run(["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(run_dir), *argv], repo.env,
               stdout=out, stderr=err)
    return r, out, err


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    so, sops = secretops_tool(), sops_tool(work, args.sops)
    git = shutil.which("git") or "git"
    t0 = time.perf_counter()
    repo = build(work, args.files, args.commits, so)
    built = time.perf_counter() - t0
    log(f"bench --repo: {args.files} files, {args.commits} commits, built in {built:.1f} s")
    rows = [Row(op) for op in args.ops]
    memory: list[dict[str, Any]] = []
    try:
        with Spawner(work) as sp:
            for row in rows:
                argvs = dict(zip(("secretops", "sops"), commands(row.op, so, sops, git),
                                 strict=True))
                for rnd in range(args.repeat):
                    order = ("secretops", "sops") if rnd % 2 == 0 else ("sops", "secretops")
                    for tool in order:
                        r, out, err = _once(sp, argvs[tool], row.op, tool, repo, work, sops)
                        if r.code:
                            row.problems.append(f"{tool}: exit {r.code}: "
                                                f"{err.read_text(errors='replace')[-300:]}")
                        elif rnd == 0:
                            row.problems += [f"{tool}: {p}" for p in
                                             verify(row.op, tool, work / "run", repo, out, sops)]
                        (row.ours if tool == "secretops" else row.sops).runs.append(r)
                    log(f"  {row.op} round {rnd + 1}/{args.repeat}: secretops "
                        f"{row.ours.runs[-1].wall:.2f} s, sops {row.sops.runs[-1].wall:.2f} s")
                    if row.problems:
                        break
                if not args.no_memory:
                    memory += _memory(sp, row.op, so, sops, git, repo, work)
    finally:
        cleanup(repo)
    return {"rows": rows, "memory": memory, "build_s": built}


def _memory(sp: Spawner, op: str, so: Tool, sops: Tool, git: str, repo: Repo,
            work: Path) -> list[dict[str, Any]]:
    """secretops on one cluster and on all: largest process and summed tree, in MiB."""
    rows = []
    for where in ("clusters/c0", "clusters"):
        ours, _ = commands(op, so, sops, git, where)
        with TreeRss(sp.pid) as tree:
            r, _, _ = _once(sp, ours, op, "secretops", repo, work, sops, where=where)
        files = sum(1 for f in repo.files if f.startswith(where + "/"))
        rows.append({"op": op, "files": files, "code": r.code, "largest_mib": r.maxrss_mib,
                     "tree_mib": tree.peak / 2**20, "wall_s": r.wall})
    return rows


# -- the report ----------------------------------------------------------------------------------

def _cpu(s: Series) -> float:
    return statistics.median(r.utime + r.stime for r in s.runs)


def render(rows: list[Row], memory: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = ["operation", "secretops s", "sops s", "ratio", "goal", "verdict",
            "secretops MiB", "sops MiB", "CPU s secretops / sops", "CPU ratio"]
    body = []
    for r in rows:
        if not r.ours.runs or not r.sops.runs:
            continue
        body.append([r.op, f"{r.ours.median:.2f}", f"{r.sops.median:.2f}", f"{r.ratio:.3f}",
                     f"≤{GOALS[r.op]:g}", r.verdict, f"{r.ours.peak_mib:.0f}",
                     f"{r.sops.peak_mib:.0f}", f"{_cpu(r.ours):.2f} / {_cpu(r.sops):.2f}",
                     f"{_cpu(r.ours) / _cpu(r.sops):.3f}"])
    out = [f"{args.files} files, {args.commits} commits, {args.repeat} rounds, jobs "
           f"{os.cpu_count()}; wall s medians; ratio and verdict on wall time; MiB: largest "
           "single process (ru_maxrss); CPU: user + system of the whole run, medians", "",
           format_columns(head, body, right={1, 2, 3, 6, 7, 8, 9})]
    for r in rows:
        out += [f"  {r.op}: WRONG: {p}" for p in r.problems]
    if memory:
        mhead = ["operation", "files", "largest process MiB", "whole tree MiB (sampled)"]
        mbody = [[m["op"], str(m["files"]), f"{m['largest_mib']:.0f}", f"{m['tree_mib']:.0f}"]
                 for m in memory]
        out += ["", "secretops peak memory by number of files (one cluster, then all):", "",
                format_columns(mhead, mbody, right={1, 2, 3})]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench --repo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=1000, help="encrypted files (default 1000)")
    p.add_argument("--commits", type=int, default=50, help="commits (default 50)")
    p.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--ops", type=lambda s: s.split(","), default=list(OPS))
    p.add_argument("--sops", help="another sops binary to compare with")
    p.add_argument("--no-memory", action="store_true", help="skip the memory rows")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"results (default {RESULTS})")
    p.add_argument("--tmp", help="make the temp directory here")
    p.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = p.parse_args(argv)
    if any(op not in OPS for op in args.ops):
        p.error(f"--ops: choose from {', '.join(OPS)}")
    if args.files < CLUSTERS or args.commits < 1 or args.repeat < 1:
        p.error(f"--files must be at least {CLUSTERS}, --commits and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="secretops-repo-", dir=args.tmp))
    load0 = os.getloadavg()
    started = time.time()
    try:
        result = run(args, work)
    finally:
        if args.keep:
            log(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rows: list[Row] = result["rows"]
    table = render(rows, result["memory"], args)
    load1 = os.getloadavg()
    print(table)
    print(f"\nload average (1/5/15 min) at start {fmt_load(load0)}, at end {fmt_load(load1)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(), "git": git_state(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "platform": platform.platform()},
        "load": {"start": fmt_load(load0), "end": fmt_load(load1)},
        "seconds": time.time() - started, "build_s": result["build_s"],
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": [{"op": r.op, "problems": r.problems, "goal": GOALS[r.op],
                  "ratio": r.ratio if r.ours.runs and r.sops.runs else None,
                  "verdict": r.verdict if r.ours.runs and r.sops.runs else "ERROR",
                  "secretops": r.ours.to_json() if r.ours.runs else None,
                  "sops": r.sops.to_json() if r.sops.runs else None} for r in rows],
        "memory": result["memory"],
        "table": table,
    }, indent=1) + "\n")
    return 1 if any(r.problems for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
