"""``secretops exec-env`` and ``exec-file``: run a command with the secrets, not a file on disk.

``exec-env`` puts the values into the command's environment; the plaintext never touches disk.
Nested keys are flattened (see :func:`flatten_env`).

``exec-file`` hands the command the decrypted file: by default through a named pipe (FIFO) in
a private 0700 directory (on ``/dev/shm`` where it exists), which the command reads once and
which holds nothing on disk; with ``--no-fifo`` as a 0600 regular file in that directory, for
programs that read a file twice or seek. Either way the directory is removed when the command
exits, on errors and on signals.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from typing import Any

import click

from secretops.cli._common import FORMAT_CHOICE

_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_value(value: Any) -> str:
    from secretops.core.values import format_float

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def flatten_env(doc: Any) -> dict[str, str]:
    """Environment variables from a document: nested keys joined with ``_``.

    ``{"db": {"password": "x"}, "hosts": ["a", "b"]}`` → ``db_password=x``, ``hosts_0=a``,
    ``hosts_1=b``. Key case is kept. A name that is not a valid variable name (``a-b``,
    ``1x``) or that two paths would share is an error, never silently dropped or overwritten.
    Comments are skipped.
    """
    from secretops.core.tree import Branch, Comment, Seq
    from secretops.errors import ExitCode, SecretOpsError, format_path

    out: dict[str, str] = {}

    def walk(node: Any, name: str, path: list[str | int]) -> None:
        if isinstance(node, Branch):
            for item in node:
                if type(item) is tuple:
                    key = str(item[0])
                    walk(item[1], f"{name}_{key}" if name else key, [*path, key])
        elif isinstance(node, Seq):
            for n, value in enumerate(v for v in node if not isinstance(v, Comment)):
                walk(value, f"{name}_{n}", [*path, n])
        else:
            if not _NAME_OK.match(name):
                raise SecretOpsError(f"{name!r} is not a valid environment variable name",
                                     code=ExitCode.INVALID_INPUT, path=format_path(path),
                                     hints=("exec-env joins nested keys with '_'; keys must be "
                                            "letters, digits and '_'",))
            if name in out:
                raise SecretOpsError(f"two values map to the variable {name}",
                                     code=ExitCode.INVALID_INPUT, path=format_path(path))
            out[name] = _env_value(node)

    from secretops.jsonload import on_big_stack

    on_big_stack(lambda: walk(doc, "", []))  # files nest as deep as the limits allow
    return out


def _opened(file: str, input_type: str | None) -> Any:
    from secretops import fileops
    from secretops.fileio import read_input
    from secretops.stores import format_for_path

    return fileops.open_file(read_input(file), format=input_type or format_for_path(file),
                         keep_ivs=False)


def _exit_with(proc_code: int) -> None:
    sys.exit(proc_code if proc_code >= 0 else 128 - proc_code)


def _run(argv: list[str], env: dict[str, str] | None) -> int:
    """Run the command in the foreground; Ctrl-C reaches it, not us; its code is ours."""
    import signal

    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        proc = subprocess.Popen(argv, env=env)
        try:
            return proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    finally:
        signal.signal(signal.SIGINT, previous)


def _argv(command: tuple[str, ...], path: str | None = None) -> list[str]:
    """One argument: a shell command (as sops runs it); several: an argv, no shell."""
    import shlex

    if len(command) == 1:
        text = command[0]
        if path is not None:
            text = text.replace("{}", shlex.quote(path))
        return ["/bin/sh", "-c", text]
    return [path if (a == "{}" and path is not None) else a for a in command]


@click.command("exec-env", context_settings={"ignore_unknown_options": True})
@click.argument("file")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--pristine", is_flag=True,
              help="Start the command with only the secrets (and PATH), not this environment.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
def exec_env(file: str, command: tuple[str, ...], pristine: bool,
             input_type: str | None) -> None:
    """Run COMMAND with FILE's values as environment variables.

    Nested keys are joined with '_' (db: {password: x} gives db_password=x; list items get
    their index). One COMMAND argument runs through /bin/sh (as sops); several run as they
    are. The exit code is the command's.

    \b
      secretops exec-env secrets.enc.env -- ./migrate --all
      secretops exec-env secrets.enc.yaml 'psql "$db_url"'
    """
    from secretops.errors import SecretOpsError

    try:
        opened = _opened(file, input_type)
        values = flatten_env(opened.docs[0] if opened.docs else None)
    except SecretOpsError as e:
        raise e.with_file(file) from None
    base = {"PATH": os.environ.get("PATH", os.defpath)} if pristine else dict(os.environ)
    _exit_with(_run(_argv(command), {**base, **values}))


@click.command("exec-file")
@click.argument("file")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--no-fifo", is_flag=True,
              help="Use a 0600 regular file instead of a named pipe (for programs that read "
                   "the file more than once).")
@click.option("--filename", metavar="NAME",
              help="The name the decrypted file gets (default: FILE's name).")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
@click.option("--output-type", type=FORMAT_CHOICE, help="Format of the decrypted file.")
def exec_file(file: str, command: tuple[str, ...], no_fifo: bool, filename: str | None,
              input_type: str | None, output_type: str | None) -> None:
    """Run COMMAND with '{}' replaced by the path of FILE decrypted.

    The decrypted file is a named pipe in a private directory (memory-backed where possible),
    or with --no-fifo a 0600 file there; it is removed when the command exits. One COMMAND
    argument runs through /bin/sh with {} shell-quoted (as sops); several run as they are.

    \b
      secretops exec-file kubeconfig.enc.yaml 'kubectl --kubeconfig {} get pods'
      secretops exec-file --no-fifo tls.enc.json -- ./server --config {}
    """
    from secretops.errors import SecretOpsError
    from secretops.stores import format_for_path, get_store

    try:
        opened = _opened(file, input_type)
        if output_type and output_type != (input_type or format_for_path(file)):
            plain = bytes(get_store(output_type).emit(opened.docs, None))
        else:
            plain = bytes(opened.store.emit(opened.docs, None, opened.loaded.layout))
    except SecretOpsError as e:
        raise e.with_file(file) from None
    name = os.path.basename(filename or file)
    if no_fifo:
        from secretops.privatefile import private_file

        with private_file(name, plain) as path:
            code = _run(_argv(command, path), None)
    else:
        code = _with_fifo(name, plain, command)
    _exit_with(code)


def _with_fifo(name: str, plain: bytes, command: tuple[str, ...]) -> int:
    from secretops.privatefile import private_dir

    with private_dir() as directory:
        path = os.path.join(directory, name)
        os.mkfifo(path, 0o600)
        done = threading.Event()

        def feed() -> None:
            try:
                fd = os.open(path, os.O_WRONLY)  # blocks until the command opens it
                try:
                    if not done.is_set():
                        view = memoryview(plain)
                        while view:
                            view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            except OSError:
                pass  # the reader went away early: its business

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        try:
            return _run(_argv(command, path), None)
        finally:
            done.set()
            if writer.is_alive():  # the command never opened it: unblock the writer
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass
            writer.join(5)
