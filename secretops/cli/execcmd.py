"""``secretops exec-env`` and ``exec-file``: run a command with the secrets, not a file on disk.

Both take sops 3.11's options and behave as sops does, with the differences written in
``docs/sops-compat.md``:

``exec-env`` puts the top-level values into the command's environment, as sops: a string as it
is, any other scalar as sops's ``ValToString`` writes it, comments skipped; a nested map or list
is refused (exit 1, as sops) unless ``--flatten`` asks for nested keys joined with ``_`` (see
:func:`flatten_env`). The plaintext never touches disk. ``--pristine`` passes only the secrets
(no ``PATH``, as sops); ``--same-process`` replaces secretops with the command; ``--user``
runs it as another user (its own groups, see :func:`_switch`); ``--background`` starts it and
returns at once (deprecated in sops too).

``exec-file`` hands the command the decrypted file: by default through a named pipe (FIFO)
called ``tmp-file`` in a private 0700 directory (on ``/dev/shm`` where it exists), which the
command reads once and which holds nothing on disk; with ``--no-fifo`` as a 0600 regular file
there, for programs that read a file twice or seek. Either way the directory is removed when
the command exits, on errors and on signals.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

import click

from secretops.cli._common import FORMAT_CHOICE, decryption_order, keyservice_flags

_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FALLBACK_FILENAME = "tmp-file"  # sops's name for the decrypted file


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


def top_level_env(doc: Any) -> dict[str, str]:
    """sops's ``exec-env``: one variable per top-level key; a nested value is refused."""
    from secretops.core.tree import Branch, Seq
    from secretops.errors import ExitCode, SecretOpsError, format_path
    from secretops.stores import val_to_string

    out: dict[str, str] = {}
    for item in doc or ():
        if type(item) is not tuple:
            continue  # a comment line
        key, value = item
        if isinstance(value, Branch | Seq):
            raise SecretOpsError(
                f"cannot use complex value in environment; offending key {key}",
                code=ExitCode.GENERIC, path=format_path([key]),
                hints=("pass --flatten to join nested keys with '_' (db_password=…)",))
        if not isinstance(key, str):
            raise SecretOpsError("cannot use non-string keys in environment",
                                 code=ExitCode.GENERIC)
        if "=" in key:
            raise SecretOpsError(f"cannot use keys with '=' in environment: {key}",
                                 code=ExitCode.GENERIC, path=format_path([key]))
        out[key] = value if isinstance(value, str) else val_to_string(value)
    return out


def _opened(file: str, input_type: str | None, env: Mapping[str, str]) -> Any:
    from secretops import fileops
    from secretops.fileio import read_input
    from secretops.stores import format_for_path

    return fileops.open_file(read_input(file), format=input_type or format_for_path(file),
                             keep_ivs=False, env=env)


def _exit_with(proc_code: int) -> None:
    """The command's exit code is ours; a command killed by a signal is 255, as in sops."""
    sys.exit(proc_code if proc_code >= 0 else 255)


class _User:
    """Who ``--user`` names: uid, primary gid and supplementary groups, looked up first."""

    def __init__(self, name: str) -> None:
        import grp
        import pwd

        from secretops.errors import ExitCode, SecretOpsError

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise SecretOpsError(f"unknown user {name!r}", code=ExitCode.GENERIC) from None
        self.name, self.uid, self.gid = name, entry.pw_uid, entry.pw_gid
        self.groups = sorted({g.gr_gid for g in grp.getgrall() if name in g.gr_mem} | {self.gid})

    def popen_args(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": self.groups}

    def switch(self) -> None:
        """This process becomes the user (``--same-process``): groups first, then the uid."""
        os.setgroups(self.groups)
        os.setgid(self.gid)
        os.setuid(self.uid)


def _user(name: str | None) -> _User | None:
    return _User(name) if name else None


def _run(argv: list[str], env: Mapping[str, str] | None, user: _User | None = None,
         background: bool = False) -> int:
    """Run the command in the foreground (Ctrl-C reaches it, not us; its code is ours), or
    with ``background`` start it detached from our terminal streams and return 0 (as sops)."""
    import signal

    from secretops.errors import ExitCode, SecretOpsError

    extra = user.popen_args() if user is not None else {}
    if background:
        try:
            subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, **extra)
        except OSError as e:
            raise SecretOpsError(f"cannot run {argv[0]}: {e.strerror}",
                                 code=ExitCode.GENERIC) from None
        return 0
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        try:
            proc = subprocess.Popen(argv, env=env, **extra)
        except (OSError, subprocess.SubprocessError) as e:
            raise SecretOpsError(f"cannot run {argv[0]}: {getattr(e, 'strerror', None) or e}",
                                 code=ExitCode.GENERIC) from None
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


def _deprecated(command: str) -> None:
    click.echo(f"secretops: warning: {command}'s --background option is deprecated (as in "
               "sops) and will be removed", err=True)


@click.command("exec-env", context_settings={"ignore_unknown_options": True})
@click.argument("file")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--pristine", is_flag=True,
              help="Give the command only the secrets, not this environment (no PATH either).")
@click.option("--flatten", is_flag=True,
              help="Also pass nested values: keys joined with '_' (db_password), list items "
                   "by index (hosts_0). Without it a nested value is refused, as in sops.")
@click.option("--same-process", is_flag=True,
              help="Replace secretops with the command instead of running it as a child.")
@click.option("--user", metavar="USER", help="Run the command as USER (needs root).")
@click.option("--background", is_flag=True,
              help="Start the command and return at once (deprecated, as in sops).")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
@decryption_order
@keyservice_flags
def exec_env(file: str, command: tuple[str, ...], pristine: bool, flatten: bool,
             same_process: bool, user: str | None, background: bool, input_type: str | None,
             decryption_order: str | None, keyservice: tuple[str, ...],
             enable_local_keyservice: bool | None) -> None:
    """Run COMMAND with FILE's values as environment variables.

    Each top-level key becomes a variable (numbers and booleans as sops writes them); a nested
    map or list is refused unless --flatten joins nested keys with '_' (db: {password: x}
    gives db_password=x; list items get their index). One COMMAND argument runs through
    /bin/sh (as sops); several run as they are. The exit code is the command's.

    \b
      secretops exec-env secrets.enc.env -- ./migrate --all
      secretops exec-env secrets.enc.yaml 'psql "$db_url"'
    """
    from secretops.cli._actions import env_with
    from secretops.errors import ExitCode, SecretOpsError

    if background:
        _deprecated("exec-env")
        if same_process:
            raise SecretOpsError("the --same-process flag cannot be used with --background",
                                 code=ExitCode.CONFLICTING_PARAMETERS)
    try:
        opened = _opened(file, input_type,
                         env_with(decryption_order, keyservice, enable_local_keyservice))
        doc = opened.docs[0] if opened.docs else None
        values = flatten_env(doc) if flatten else top_level_env(doc)
        who = _user(user)
    except SecretOpsError as e:
        raise e.with_file(file) from None
    base = {} if pristine else dict(os.environ)
    env = {**base, **values}
    argv = _argv(command)
    if same_process:
        _exec(argv, env, who)
    _exit_with(_run(argv, env, who, background))


def _exec(argv: list[str], env: Mapping[str, str], user: _User | None) -> None:
    """Become the command (``--same-process``): nothing of secretops runs after this."""
    from secretops.errors import ExitCode, SecretOpsError

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if user is not None:
            user.switch()
        os.execvpe(argv[0], argv, dict(env))
    except OSError as e:
        raise SecretOpsError(f"cannot run {argv[0]}: {e.strerror}",
                             code=ExitCode.GENERIC) from None


@click.command("exec-file")
@click.argument("file")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--no-fifo", is_flag=True,
              help="Use a 0600 regular file instead of a named pipe (for programs that read "
                   "the file more than once).")
@click.option("--filename", metavar="NAME",
              help=f"The name the decrypted file gets (default: {FALLBACK_FILENAME}).")
@click.option("--user", metavar="USER", help="Run the command as USER (needs root).")
@click.option("--background", is_flag=True,
              help="Refused: the decrypted file is removed when secretops returns.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
@click.option("--output-type", type=FORMAT_CHOICE, help="Format of the decrypted file.")
@decryption_order
@keyservice_flags
def exec_file(file: str, command: tuple[str, ...], no_fifo: bool, filename: str | None,
              user: str | None, background: bool, input_type: str | None,
              output_type: str | None, decryption_order: str | None,
              keyservice: tuple[str, ...], enable_local_keyservice: bool | None) -> None:
    """Run COMMAND with '{}' replaced by the path of FILE decrypted.

    The decrypted file is a named pipe in a private directory (memory-backed where possible),
    or with --no-fifo a 0600 file there; it is removed when the command exits. One COMMAND
    argument runs through /bin/sh with {} shell-quoted (as sops, which does not quote it);
    several run as they are.

    \b
      secretops exec-file kubeconfig.enc.yaml 'kubectl --kubeconfig {} get pods'
      secretops exec-file --no-fifo tls.enc.json -- ./server --config {}
    """
    from secretops.cli._actions import env_with
    from secretops.compose import open_path, settings, store_options
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.stores import get_store

    if background:
        raise SecretOpsError(
            "exec-file --background is not supported: the decrypted file is removed as soon "
            "as secretops returns, so a command left running could not read it (in sops it "
            "races with the removal)", code=ExitCode.CONFLICTING_PARAMETERS,
            hints=("run the command in the foreground, or background the whole exec-file",))
    try:
        env = env_with(decryption_order, keyservice, enable_local_keyservice)
        given = settings(file, input_type=input_type, env=env, lenient=True)
        opened = open_path(file, env=env, given=given, keep_ivs=False)
        if output_type and output_type != given.format:
            # the config's stores: section shapes the file the command reads, as in sops
            plain = bytes(get_store(output_type, store_options(given.config, output_type))
                          .emit(opened.docs, None))
        else:
            plain = bytes(opened.store.emit(opened.docs, None, opened.loaded.layout))
        who = _user(user)
    except SecretOpsError as e:
        raise e.with_file(file) from None
    owner = (who.uid, who.gid) if who is not None else None
    if no_fifo:
        from secretops.privatefile import private_file

        name = os.path.basename(filename) if filename else _random_name()
        with private_file(name, plain, owner=owner) as path:
            code = _run(_argv(command, path), None, who)
    else:
        code = _with_fifo(os.path.basename(filename or FALLBACK_FILENAME), plain, command, who)
    _exit_with(code)


def _random_name() -> str:
    """sops's ``os.CreateTemp(dir, "tmp-file")``: the fallback name and random digits."""
    import secrets

    return f"{FALLBACK_FILENAME}{secrets.randbelow(4_000_000_000)}"


def _with_fifo(name: str, plain: bytes, command: tuple[str, ...], who: _User | None) -> int:
    from secretops.privatefile import private_dir

    owner = (who.uid, who.gid) if who is not None else None
    with private_dir(owner=owner) as directory:
        path = os.path.join(directory, name)
        os.mkfifo(path, 0o600)
        if owner is not None:
            os.chown(path, *owner)
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
            return _run(_argv(command, path), None, who)
        finally:
            done.set()
            if writer.is_alive():  # the command never opened it: unblock the writer
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass
            writer.join(5)
