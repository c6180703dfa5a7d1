"""``secretops keyservice`` as a process: where it listens, its socket, signals, ``--prompt``.

The prompt is compared with sops's own ``keyservice --prompt`` on a terminal (a pty): y
answers the request, n refuses it; secretops asks before any key is used.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.fixtures.keyservice import StartKeyService, program_argv
from tests.fixtures.openbao import free_port
from tests.helpers import CANARY, AgeKey, make_age_key, secretops, sops

OFF = "--enable-local-keyservice=false"


def _short_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ks"))


def test_unix_socket_is_private_and_removed_on_sigterm(keyservice: StartKeyService,
                                                       age_key: AgeKey, tmp_path: Path,
                                                       sops_bin: str) -> None:
    ks = keyservice("secretops", dict(os.environ), unix=True)
    assert ks.socket_path is not None
    mode = ks.socket_path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert ks.stop() == 0  # SIGTERM: a clean exit, as sops
    assert not ks.socket_path.exists()


def test_a_missing_socket_directory_is_made_private() -> None:
    base = _short_dir()
    path = base / "new" / "ks.sock"
    proc = subprocess.Popen([sys.executable, "-m", "secretops", "keyservice", "--network",
                             "unix", "--address", str(path)], stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = proc.stderr.readline() if proc.stderr else b""
        assert b"listening on unix://" in line, line
        assert stat.S_IMODE((base / "new").stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("what", ["file", "live", "stale"])
def test_what_is_at_the_socket_path(what: str, keyservice: StartKeyService, age_key: AgeKey,
                                    tmp_path: Path) -> None:
    """A file is never removed, a live socket never replaced; a stale one is."""
    base = _short_dir()
    path = base / "ks.sock"
    holder = None
    if what == "file":
        path.write_text("not a socket")
    else:
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        holder.bind(str(path))
        if what == "live":
            holder.listen(1)
        else:
            holder.close()
    try:
        if what == "stale":
            proc = subprocess.Popen(
                [sys.executable, "-m", "secretops", "keyservice", "--network", "unix",
                 "--address", str(path)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)
            try:
                line = proc.stderr.readline() if proc.stderr else b""
                assert b"listening on unix://" in line, line
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
            finally:
                proc.terminate()
                proc.wait(10)
            return
        r = secretops("keyservice", "--network", "unix", "--address", str(path))
        assert r.code == 1, r.err
        assert ("not a socket" if what == "file" else "already in use") in r.err
        assert path.exists()
        if what == "file":
            assert path.read_text() == "not a socket"
    finally:
        if holder is not None:
            holder.close()


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = secretops("keyservice", "--address", f"127.0.0.1:{port}")
    assert r.code == 1 and "already in use" in r.err, r.err


def test_prompt_needs_a_terminal() -> None:
    r = secretops("keyservice", "--prompt", "--address", f"127.0.0.1:{free_port()}")
    assert r.code == 155 and "no terminal" in r.err, r.err


def _prompting(argv: list[str], env: dict[str, str], answer: bytes, client: list[str],
               cwd: Path) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Start a key service with a pty as its terminal, run ``client`` against it, answer the
    question once it shows; return the client's result and what the terminal showed."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    server = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                              start_new_session=True)
    os.close(slave)
    shown = b""
    result: dict[str, subprocess.CompletedProcess[bytes]] = {}
    started = threading.Event()

    def run_client() -> None:
        started.set()
        result["r"] = subprocess.run(client, cwd=cwd, stdin=subprocess.DEVNULL,
                                     capture_output=True, timeout=60)

    thread = None
    deadline = time.monotonic() + 60  # a hang guard
    typed = False
    try:
        while time.monotonic() < deadline:
            if thread is None and _listening(argv):
                thread = threading.Thread(target=run_client)
                thread.start()
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    shown += os.read(master, 4096)
                except OSError:
                    break
            if not typed and b"(y/n)" in shown:
                os.write(master, answer)
                typed = True
            if thread is not None and not thread.is_alive():
                break
        assert thread is not None, shown
        thread.join(60)
        return result["r"], shown
    finally:
        server.terminate()
        server.wait(10)
        os.close(master)


def _listening(argv: list[str]) -> bool:
    from tests.fixtures.keyservice import _accepts

    return _accepts("tcp://" + argv[argv.index("--address") + 1])


@pytest.mark.parametrize("server", ["sops", "secretops"])
@pytest.mark.parametrize("answer", [b"y\n", b"n\n", b"maybe\ny\n"])
def test_prompt_on_a_terminal(server: str, answer: bytes, sops_bin: str,
                              tmp_path: Path) -> None:
    """Each request waits for y or n on the key service's terminal; n refuses it ("Request
    rejected by user", as sops says)."""
    home = tmp_path / "server"
    home.mkdir()
    key = make_age_key(home)
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(key.path)}
    (tmp_path / "p.yaml").write_text(f"a: {CANARY}\n")
    enc = sops(sops_bin, "encrypt", "--age", key.recipient, str(tmp_path / "p.yaml"))
    (tmp_path / "s.yaml").write_bytes(enc.out)
    port = free_port()
    argv = [*program_argv(server, sops_bin), "keyservice", "--prompt", "--address",
            f"127.0.0.1:{port}"]
    client = [sops_bin, "decrypt", "--keyservice", f"tcp://127.0.0.1:{port}", OFF, "s.yaml"]
    r, shown = _prompting(argv, env, answer, client, tmp_path)
    assert b"Respond to request? (y/n)" in shown, shown
    if answer.endswith(b"y\n"):
        assert r.returncode == 0 and CANARY.encode() in r.stdout, r.stderr
    else:
        said = b" ".join(r.stderr.replace(b"|", b" ").split())
        assert r.returncode == 128 and b"Request rejected by user" in said, r.stderr
    if server == "secretops":
        assert b"age recipient " + key.recipient.encode() in shown
