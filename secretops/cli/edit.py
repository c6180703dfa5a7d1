"""``secretops edit``: decrypt into a private temp file, run the editor, re-encrypt minimally."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from secretops.cli._common import (
    FORMAT_CHOICE,
    decryption_order,
    key_flags,
    keyservice_flags,
    selection_flags,
)

FALLBACK_EDITORS = ("vim", "nano", "vi")


@click.command("edit")
@click.argument("file")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
@click.option("--output-type", type=FORMAT_CHOICE,
              help="Show the plaintext and write the file in this format (as sops).")
@click.option("-s", "--show-master-keys", is_flag=True,
              help="Show the sops metadata (master keys) in the editor too; edits to it are "
                   "kept.")
@click.option("--ignore-mac", is_flag=True, help="Open the file even if its MAC does not match.")
@decryption_order
@keyservice_flags
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml to use for a new file.")
@key_flags("edit")
@selection_flags
@click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
              help="Key groups needed to decrypt a new file (with several key groups).")
def command(file: str, input_type: str | None, output_type: str | None,
            show_master_keys: bool, ignore_mac: bool, decryption_order: str | None,
            config_path: str | None, shamir: int,
            keyservice: tuple[str, ...], enable_local_keyservice: bool | None,
            **keys: str | None) -> None:
    """Edit an encrypted FILE in $SOPS_EDITOR or $EDITOR (else vim, nano, vi).

    The plaintext lives only in a 0600 file in a private directory (in memory on /dev/shm
    where it exists) that is removed when the editor closes, on errors and on Ctrl-C (after a
    kill -9, by the next edit or exec-file).
    Values you did not change keep their exact ciphertext, so the diff shows only your change
    (plus lastmodified and mac). If the result does not parse, you are offered the editor
    again on a terminal; without one, nothing is written, and your text is kept encrypted
    next to the file (FILE.rescue-TIME, decrypt it with --input-type binary).

    With -s the file's sops metadata is shown below the values, as sops shows it; the master
    keys and rules you leave there are what the file is written with.

    A FILE that does not exist is created from a template, with keys from the flags, the
    SOPS_* variables or .sops.yaml. Exit 200 when nothing was changed (as sops).
    """
    from secretops import fileops
    from secretops.cli._actions import env_with
    from secretops.compose import open_path, settings, store_options
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file
    from secretops.privatefile import Terminated, private_file
    from secretops.stores import BY_NAME, format_for_path, get_store

    fmt = input_type or format_for_path(file)
    new_keys: dict[str, Any] = {**keys, "shamir_threshold": shamir}
    editor = _editor()
    opened: fileops.OpenedFile | None = None
    try:
        env = env_with(decryption_order, keyservice, enable_local_keyservice)
        new_keys["env"] = env  # a new file's keys are wrapped through the key services too
        if os.path.exists(file):
            given = settings(file, input_type=fmt, config_path=config_path, lenient=True)
            opened = open_path(file, rewrite=True, ignore_mac=ignore_mac, given=given, env=env)
            out_store = None
            if output_type and output_type != fmt:
                out_store = get_store(output_type, store_options(given.config, output_type))
            plaintext = _shown(opened, show_master_keys, out_store)
        else:
            plaintext = BY_NAME[fmt].template
            _encrypt_new(plaintext, file, fmt, config_path, new_keys)  # fail early: no keys
        with private_file(os.path.basename(file), plaintext) as path:
            while True:
                _run(editor, path)
                with open(path, "rb") as f:
                    edited = f.read()
                if edited == plaintext:
                    raise SecretOpsError("the file has not been changed; nothing was written",
                                         code=ExitCode.FILE_HAS_NOT_BEEN_MODIFIED)
                try:
                    if opened is None:
                        result = _encrypt_new(edited, file, fmt, config_path, new_keys)
                    elif show_master_keys:
                        result = fileops.reencrypt_with_metadata(opened, edited, out_store)
                    else:
                        result = fileops.reencrypt_plaintext(opened, edited, out_store)
                except SecretOpsError as e:
                    if e.code == ExitCode.INVALID_INPUT and _ask_again(e):
                        continue
                    if e.code == ExitCode.INVALID_INPUT:
                        rescue = _rescue(file, edited, opened, config_path, new_keys)
                        e.hints = (*e.hints, f"your edit is kept encrypted in {rescue}; "
                                   f"see it with: secretops decrypt --input-type binary "
                                   f"{rescue}")
                    raise
                write_file(file, result, private=False, new_mode=0o600, rewrite=True)
                return
    except SecretOpsError as e:
        raise e.with_file(file) from None
    except Terminated:
        raise SecretOpsError("interrupted; the file was not changed",
                             code=ExitCode.KEYBOARD_INTERRUPT, file=file) from None


def _shown(opened: Any, show_master_keys: bool, out_store: Any) -> bytes:
    """What the editor opens: the plaintext (in ``--output-type``'s format if given), with the
    metadata block as the file has it when ``-s`` asks for the master keys."""
    meta = opened.loaded.metadata if show_master_keys else None
    if out_store is not None:
        return bytes(out_store.emit(opened.docs, meta, None))
    return bytes(opened.store.emit(opened.docs, meta, opened.loaded.layout))


def _encrypt_new(plaintext: bytes, file: str, fmt: str, config_path: str | None,
                 keys: dict[str, Any]) -> bytes:
    from secretops import api

    return api.encrypt(plaintext, format=fmt, filename=file, config=config_path,
                       **keys)


def _editor() -> list[str]:
    import shlex
    import shutil

    from secretops.errors import ExitCode, SecretOpsError

    for var in ("SOPS_EDITOR", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    for name in FALLBACK_EDITORS:
        found = shutil.which(name)
        if found:
            return [found]
    raise SecretOpsError("no editor found", code=ExitCode.NO_EDITOR_FOUND,
                         hints=("set SOPS_EDITOR or EDITOR",))


def _run(editor: list[str], path: str) -> None:
    """Run the editor; Ctrl-C goes to the editor, not to us (as git does)."""
    import signal
    import subprocess

    from secretops.errors import ExitCode, SecretOpsError

    previous = signal.signal(signal.SIGINT, lambda *_: None)  # reset to default in the child
    try:
        try:
            proc = subprocess.Popen([*editor, path])
        except OSError as e:
            raise SecretOpsError(f"cannot run the editor {editor[0]}: {e.strerror}",
                                 code=ExitCode.NO_EDITOR_FOUND) from None
        try:
            code = proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise SecretOpsError(f"the editor {how}; the file was not changed",
                             code=ExitCode.NO_EDITOR_FOUND)


def _ask_again(err: Exception) -> bool:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    click.echo(f"secretops: the edited file is not valid: {err}", err=True)
    return click.confirm("Open the editor again with your text?", default=True, err=True)


def _rescue(file: str, edited: bytes, opened: Any, config_path: str | None,
            keys: dict[str, Any]) -> str:
    """Keep an edit that does not parse, encrypted (binary format) next to the file."""
    from datetime import UTC, datetime

    from secretops.fileio import write_file

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rescue = f"{file}.rescue-{stamp}"
    if opened is not None:
        data = _seal_binary(edited, opened)
    else:
        data = _encrypt_new(edited, file, "binary", config_path, keys)
    write_file(rescue, data, private=False, new_mode=0o600)
    return rescue


def _seal_binary(edited: bytes, opened: Any) -> bytes:
    """``edited`` as a binary-format file under the opened file's data key and master keys."""
    from secretops.core.document import seal
    from secretops.core.metadata import Metadata
    from secretops.core.selection import Selection
    from secretops.stores import get_store

    store = get_store("binary")
    docs = store.load(edited).docs
    meta = Metadata(key_groups=opened.metadata.key_groups,
                    shamir_threshold=opened.metadata.shamir_threshold,
                    selection=Selection(), version=opened.metadata.version)
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sealed = seal(docs, meta, opened.data_key, random=os.urandom, lastmodified=now)
    return bytes(store.emit(sealed, meta.to_wire(), None))
