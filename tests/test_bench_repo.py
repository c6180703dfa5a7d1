"""``./scripts/bench --repo`` runs end to end at a tiny size and writes a well-formed result.

No timing is asserted (speed goals live in bench/); what is checked is that every operation ran
both ways, was verified, and that the result file holds the table's figures. The checks the
benchmark makes of each run must also be able to fail: an encrypted tree is not "decrypted".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import repo as bench_repo
from bench.procs import secretops_tool, sops_tool


@pytest.mark.timeout(400)  # ~20 short runs of both tools, slow on a loaded machine
def test_repo_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "repo.json"
    code = bench_repo.main(["--files", "5", "--commits", "2", "--repeat", "1",
                            "--json", str(out), "--tmp", str(tmp_path)])
    result = json.loads(out.read_text())
    assert code == 0, result["table"]
    assert [r["op"] for r in result["rows"]] == list(bench_repo.OPS)
    for row in result["rows"]:
        assert row["problems"] == [], row
        assert row["verdict"] in ("PASS", "FAIL")
        assert row["goal"] == bench_repo.GOALS[row["op"]]
        for tool in ("secretops", "sops"):
            assert len(row[tool]["wall_s"]) == 1 and row[tool]["peak_mib"] > 0
    # one cluster (files 0 and 4), then all five, for every operation
    assert [(m["op"], m["files"]) for m in result["memory"]] == [
        (op, n) for op in bench_repo.OPS for n in (2, 5)]
    assert all(m["code"] == 0 and m["tree_mib"] > 0 for m in result["memory"])
    assert "updatekeys" in result["table"] and result["load"]["start"]


def test_repo_bench_checks_catch_a_run_that_did_nothing(tmp_path: Path) -> None:
    built = bench_repo.build(tmp_path, 4, 2, secretops_tool())
    try:
        sops = sops_tool(tmp_path)
        # the pristine tree is still encrypted: neither a decrypt nor a rotate happened
        assert bench_repo.verify("decrypt", "secretops", built.path, built,
                                 tmp_path / "none", sops)
        assert bench_repo.verify("rotate", "secretops", built.path, built,
                                 tmp_path / "none", sops) == ["4 files unchanged by rotate"]
        log = tmp_path / "log.txt"
        log.write_text("commit 1\n+  key: ENC[AES256_GCM,data:x]\n")
        assert len(bench_repo.verify("log", "sops", built.path, built, log, sops)) == 2
    finally:
        bench_repo.cleanup(built)


def test_bench_runs_the_checkout_on_pythonpath(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmarked secretops is the code the bench was started with (a worktree first on
    PYTHONPATH), not the venv's install: here a stand-in package on PYTHONPATH is what the
    spawned process imports."""
    import subprocess
    import sys

    from bench.procs import isolated_env

    shadow = tmp_path / "checkout" / "secretops"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    env = isolated_env(tmp_path, tmp_path / "keys.txt")
    out = subprocess.run([sys.executable, "-c", "import secretops; print(secretops.__file__)"],
                         env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
                         stdin=subprocess.DEVNULL).stdout
    assert Path(out.strip()) == shadow / "__init__.py"
