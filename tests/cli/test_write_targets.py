"""Where output goes: FIFOs, devices, /dev/stdout and /dev/fd/N are written in place as sops
writes them; only regular files are replaced (atomically) or rewritten with -i; modes."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, Result, secretops, sops

SECRET = f"password: {CANARY}\nuser: admin\n"
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mknod and chown to another user need root; "
                                "the FIFO, /dev/stdout and /dev/fd cases cover the rest")
OTHER = 4242  # a user that owns nothing on the machine


@pytest.fixture
def enc(tmp_path: Path, age_key: AgeKey) -> Path:
    src = tmp_path / "plain.yaml"
    src.write_text(SECRET)
    r = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert r.code == 0, r.err
    out = tmp_path / "secret.enc.yaml"
    out.write_bytes(r.out)
    src.unlink()
    return out


def _cli(tool: str, sops_bin: str) -> Callable[..., Result]:
    if tool == "sops":
        return lambda *a: sops(sops_bin, *a)
    return secretops


def _one_line_error(r: Result, code: int, fragment: str) -> None:
    assert r.code == code, r.err
    lines = r.err.splitlines()
    assert lines[0].startswith("secretops: error: ") and fragment in lines[0], r.err
    assert all(ln.startswith("secretops: ") for ln in lines)
    assert "Traceback" not in r.err and CANARY not in r.err and r.out == b""


def _through_fifo(fifo: Path, run: Callable[[], Result]) -> tuple[Result, bytes]:
    """Run ``run`` while a thread reads the FIFO; what the FIFO delivered."""
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as f:  # waits for a writer
            got.append(f.read())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    r = run()
    if t.is_alive() and not got:  # the command never opened it: let the reader go
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    t.join(30)
    return r, b"".join(got)


# --- non-regular --output targets: written in place, as sops does ---------------------------


def test_output_into_a_fifo_is_written_in_place_as_sops(tmp_path: Path, enc: Path,
                                                       sops_bin: str) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo, 0o640)
    seen = {}
    for tool in ("sops", "secretops"):
        cli = _cli(tool, sops_bin)
        r, data = _through_fifo(fifo, lambda cli=cli: cli("decrypt", "--output", str(fifo),
                                                          str(enc)))
        assert r.code == 0, (tool, r.err)
        seen[tool] = data
        st = fifo.lstat()
        assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640, tool
    assert seen["secretops"] == seen["sops"] == SECRET.encode()


def test_encrypt_output_into_a_fifo(tmp_path: Path, enc: Path, age_key: AgeKey) -> None:
    plain = tmp_path / "p.yaml"
    plain.write_text(SECRET)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo, 0o600)
    r, data = _through_fifo(fifo, lambda: secretops("encrypt", "--age", age_key.recipient,
                                                    "--output", str(fifo), str(plain)))
    assert r.code == 0, r.err
    assert CANARY.encode() not in data and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert secretops("decrypt", "--input-type", "yaml", input=data).out == SECRET.encode()


@needs_root
def test_output_into_a_character_device_is_written_in_place_as_sops(
    tmp_path: Path, enc: Path, sops_bin: str
) -> None:
    """``mknod n c 1 3`` is a second /dev/null: it must stay one, with its mode."""
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(node, 0o666)
    for tool in ("sops", "secretops"):
        r = _cli(tool, sops_bin)("decrypt", "--output", str(node), str(enc))
        assert r.code == 0, (tool, r.err)
        st = node.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), tool
        assert stat.S_IMODE(st.st_mode) == 0o666, tool
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_dev_stdout_is_standard_output_as_sops(tmp_path: Path, enc: Path,
                                                     sops_bin: str) -> None:
    for tool in ("sops", "secretops"):
        r = _cli(tool, sops_bin)("decrypt", "--output", "/dev/stdout", str(enc))
        assert r.code == 0, (tool, r.err)
        assert r.out == SECRET.encode(), tool
    # standard output redirected to a file (`> out.yaml`): the same bytes land there
    files = {}
    for tool, argv in (("sops", [sops_bin]), ("secretops", [sys.executable, "-m", "secretops"])):
        out = tmp_path / f"{tool}.out"
        with open(out, "wb") as f:
            p = subprocess.run([*argv, "decrypt", "--output", "/dev/stdout", str(enc)],
                               stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE,
                               timeout=60, check=False)
        assert p.returncode == 0, p.stderr
        files[tool] = out.read_bytes()
    assert files["secretops"] == files["sops"] == SECRET.encode()


def test_output_dev_fd_n_process_substitution_as_sops(enc: Path, sops_bin: str) -> None:
    """``--output >(cmd)`` hands the command /dev/fd/N, the write end of a pipe."""
    seen = {}
    for tool, argv in (("sops", [sops_bin]), ("secretops", [sys.executable, "-m", "secretops"])):
        r, w = os.pipe()
        try:
            p = subprocess.Popen([*argv, "decrypt", "--output", f"/dev/fd/{w}", str(enc)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, pass_fds=(w,))
            os.close(w)
            with os.fdopen(r, "rb") as f:
                seen[tool] = f.read()
            _, err = p.communicate(timeout=60)
        finally:
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        assert p.returncode == 0, (tool, err)
    assert seen["secretops"] == seen["sops"] == SECRET.encode()


def test_output_onto_a_socket_is_a_clean_error(tmp_path: Path, enc: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        r = secretops("decrypt", "--output", str(path), str(enc))
    _one_line_error(r, 3, "socket")
    assert stat.S_ISSOCK(path.lstat().st_mode)


@needs_root
@pytest.mark.parametrize("make", ["fifo", "device"])
def test_a_fifo_or_device_another_user_planted_gets_nothing(tmp_path: Path, enc: Path,
                                                           make: str) -> None:
    """A teammate's FIFO at the output path would hand them the plaintext: refused."""
    node = tmp_path / "plain.yaml"
    if make == "fifo":
        os.mkfifo(node, 0o666)
    else:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chown(node, OTHER, OTHER)
    r, data = _through_fifo(node, lambda: secretops("decrypt", "--output", str(node),
                                                    str(enc))) if make == "fifo" else (
        secretops("decrypt", "--output", str(node), str(enc)), b"")
    _one_line_error(r, 3, "another user owns")
    assert data == b"" and node.lstat().st_uid == OTHER
    assert not stat.S_ISREG(node.lstat().st_mode)


# --- in place: only a regular file -----------------------------------------------------------


IN_PLACE = {
    "decrypt -i": lambda f: ("decrypt", "-i", f),
    "encrypt -i": lambda f: ("encrypt", "-i", "--age", "{recipient}", f),
    "encrypt --reuse -i": lambda f: ("encrypt", "--reuse", "{enc}", "-i", f),
    "set": lambda f: ("set", "--input-type", "yaml", f, '["user"]', '"root"'),
    "unset": lambda f: ("unset", "--input-type", "yaml", f, '["user"]'),
    "rotate": lambda f: ("rotate", "-i", "--input-type", "yaml", f),
    "updatekeys": lambda f: ("updatekeys", "--yes", "--input-type", "yaml", f),
    "edit": lambda f: ("edit", "--input-type", "yaml", f),
    "seal --merge-into": lambda f: ("seal", "--merge-into", f, "--from-literal", "a=b",
                                    "-r", "{recipient}"),
    "reseal -i": lambda f: ("reseal", "-i", "-r", "{recipient}", "--identity", "{key}", f),
    "vault rewrap": lambda f: ("vault", "rewrap", f),
}


def _argv(command: str, target: str, key: AgeKey, enc: Path) -> list[str]:
    return [a.format(recipient=key.recipient, key=key.path, enc=enc)
            for a in IN_PLACE[command](target)]


@pytest.mark.parametrize("command", list(IN_PLACE))
def test_in_place_refuses_a_fifo_without_waiting(tmp_path: Path, age_key: AgeKey, enc: Path,
                                                command: str) -> None:
    """Reading a FIFO would block; replacing it would swap someone's pipe for a file."""
    work = tmp_path / "work"
    work.mkdir()
    fifo = work / "s.yaml"
    os.mkfifo(fifo, 0o600)
    (work / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key.recipient}\n")
    r = secretops(*_argv(command, str(fifo), age_key, enc), cwd=work)
    _one_line_error(r, 3, "a FIFO, not a regular file")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in work.iterdir()) == [".sops.yaml", "s.yaml"]


@pytest.mark.parametrize("target", ["/dev/stdin", "/dev/fd/0"])
def test_in_place_refuses_a_descriptor(enc: Path, target: str) -> None:
    with open(enc, "rb") as stdin:
        p = subprocess.run([sys.executable, "-m", "secretops", "decrypt", "-i", target],
                           stdin=stdin, capture_output=True, timeout=60, check=False)
    r = Result(p.returncode, p.stdout, p.stderr.decode())
    _one_line_error(r, 3, "a file descriptor, not a regular file")
    assert CANARY not in enc.read_text()


@needs_root
def test_in_place_refuses_a_device(tmp_path: Path) -> None:
    node = tmp_path / "null.yaml"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    r = secretops("decrypt", "-i", str(node))
    _one_line_error(r, 3, "a character device, not a regular file")
    assert stat.S_ISCHR(node.lstat().st_mode)


# --- modes -----------------------------------------------------------------------------------


@needs_root
def test_plaintext_never_inherits_a_foreign_files_mode(tmp_path: Path, enc: Path) -> None:
    """--output onto another user's 0644 file: the plaintext that replaces it is 0600."""
    out = tmp_path / "plain.yaml"
    out.write_text("theirs\n")
    out.chmod(0o644)
    os.chown(out, OTHER, OTHER)
    assert secretops("decrypt", "--output", str(out), str(enc)).code == 0
    st = out.stat()
    assert out.read_text() == SECRET and st.st_uid == os.geteuid()
    assert stat.S_IMODE(st.st_mode) == 0o600


@needs_root
def test_decrypt_in_place_of_a_foreign_file_is_0600(tmp_path: Path, enc: Path) -> None:
    enc.chmod(0o664)
    os.chown(enc, OTHER, OTHER)
    assert secretops("decrypt", "-i", str(enc)).code == 0
    assert enc.read_text() == SECRET and stat.S_IMODE(enc.stat().st_mode) == 0o600


@needs_root
def test_encrypted_output_onto_a_foreign_file_gets_a_new_files_mode(
    tmp_path: Path, age_key: AgeKey
) -> None:
    plain = tmp_path / "p.yaml"
    plain.write_text(SECRET)
    out = tmp_path / "out.enc.yaml"
    out.write_text("")
    out.chmod(0o666)
    os.chown(out, OTHER, OTHER)
    old = os.umask(0o022)
    try:
        r = secretops("encrypt", "--age", age_key.recipient, "--output", str(out), str(plain))
    finally:
        os.umask(old)
    assert r.code == 0, r.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 and CANARY not in out.read_text()


def test_own_files_keep_their_mode(tmp_path: Path, enc: Path) -> None:
    out = tmp_path / "plain.yaml"
    out.write_text("")
    out.chmod(0o640)
    assert secretops("decrypt", "--output", str(out), str(enc)).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_text() == SECRET


@needs_root
def test_a_link_to_a_foreign_file_does_not_hand_over_the_plaintext(tmp_path: Path,
                                                                  enc: Path) -> None:
    """A link (made by us, not in a sticky dir) to a world-readable file of another user."""
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text("")
    theirs.chmod(0o666)
    os.chown(theirs, OTHER, OTHER)
    link = tmp_path / "out.yaml"
    link.symlink_to(theirs)
    assert secretops("decrypt", "--output", str(link), str(enc)).code == 0
    assert link.is_symlink() and stat.S_IMODE(theirs.stat().st_mode) == 0o600
    assert theirs.stat().st_uid == os.geteuid()


# --- keygen -o -------------------------------------------------------------------------------


def test_keygen_writes_to_dev_stdout_and_never_over_a_file(tmp_path: Path) -> None:
    r = secretops("keygen", "-o", "/dev/stdout")
    assert r.code == 0, r.err
    assert b"AGE-SECRET-KEY-1" in r.out
    target = tmp_path / "k.txt"
    target.write_text("mine\n")
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    for path in (target, link):
        r = secretops("keygen", "-o", str(path))
        assert r.code == 153, r.err
    assert target.read_text() == "mine\n" and not (tmp_path / "nowhere").exists()
