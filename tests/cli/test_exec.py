"""exec-env and exec-file: secrets reach the command, and nothing is left on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from secretops.cli.execcmd import flatten_env
from secretops.core.tree import from_plain
from secretops.errors import SecretOpsError
from tests.helpers import CANARY, AgeKey, secretops

TEXT = (f"password: {CANARY}\ndb:\n  port: 5432\n  ssl: true\n  ratio: 0.5\nhosts:\n  - a\n"
        "  - b\nempty: null\n")


@pytest.fixture
def enc(tmp_path: Path, age_key: AgeKey) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(f)).code == 0
    return f


def test_flatten_rule() -> None:
    from secretops.stores import get_store

    doc = get_store("yaml").load(TEXT.encode()).docs[0]
    assert flatten_env(doc) == {"password": CANARY, "db_port": "5432", "db_ssl": "true",
                                "db_ratio": "0.5", "hosts_0": "a", "hosts_1": "b", "empty": ""}
    with pytest.raises(SecretOpsError, match="not a valid environment variable name"):
        flatten_env(from_plain({"a-b": "x"}))
    with pytest.raises(SecretOpsError, match="two values map to the variable a_b"):
        flatten_env(from_plain({"a_b": "x", "a": {"b": "y"}}))


def test_exec_env_passes_values_and_the_exit_code(enc: Path) -> None:
    r = secretops("exec-env", "--flatten", str(enc), "--", sys.executable, "-c",
                  "import os, sys; print(os.environ['db_port'], os.environ['hosts_1'], "
                  "os.environ['password'] == sys.argv[1]); sys.exit(7)", CANARY)
    assert r.code == 7
    assert r.text.split() == ["5432", "b", "True"]
    r = secretops("exec-env", "--flatten", str(enc), 'test "$db_ssl" = true && exit 4')
    assert r.code == 4


def test_exec_env_pristine(enc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTER", "1")
    r = secretops("exec-env", "--pristine", "--flatten", str(enc), "env")
    names = {ln.split("=")[0] for ln in r.text.splitlines()}
    assert "OUTER" not in names and "password" in names and "PATH" not in names  # as sops


def _probe(tmp_path: Path) -> Path:
    """A command that records the decrypted file's type, mode and directory mode."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, stat, sys\n"
        "p = sys.argv[1]\n"
        "st = os.stat(p)\n"
        "kind = 'fifo' if stat.S_ISFIFO(st.st_mode) else 'file'\n"
        "data = open(p).read()\n"
        "dmode = os.stat(os.path.dirname(p)).st_mode & 0o777\n"
        f"open({str(tmp_path / 'probe.log')!r}, 'w').write(\n"
        "    f'{p} {kind} {st.st_mode & 0o777:o} {dmode:o} {\"password\" in data}')\n"
        "sys.exit(int(sys.argv[2]))\n")
    return script


@pytest.mark.parametrize("fifo", [True, False])
@pytest.mark.parametrize("code", [0, 5])
def test_exec_file_hands_a_private_file_and_removes_it(enc: Path, tmp_path: Path, fifo: bool,
                                                      code: int) -> None:
    probe = _probe(tmp_path)
    args = ["exec-file", *([] if fifo else ["--no-fifo"]), str(enc), "--", sys.executable,
            str(probe), "{}", str(code)]
    r = secretops(*args)
    assert r.code == code, r.err
    path, kind, mode, dmode, seen = (tmp_path / "probe.log").read_text().split()
    assert (kind, mode, dmode, seen) == ("fifo" if fifo else "file", "600", "700", "True")
    assert path.split("/")[-1].startswith("tmp-file")  # sops's name
    assert not Path(path).parent.exists()


def test_exec_file_command_that_never_reads(enc: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "secretops", "exec-file", str(enc), "true"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert p.returncode == 0


def test_exec_file_shell_form_quotes_the_path(enc: Path, tmp_path: Path) -> None:
    r = secretops("exec-file", "--filename", "we ird's.yaml", str(enc), "grep -c password {}")
    assert r.code == 0 and r.text.strip() == "1"


def test_exec_file_output_type(enc: Path) -> None:
    r = secretops("exec-file", "--output-type", "json", str(enc), "cat {}")
    import json

    assert json.loads(r.out)["db"]["port"] == 5432
