"""``secretops set`` and ``unset``: change one value of an encrypted file without an editor.

Both follow sops 3.11 form for form: the same arguments and options, the same tree-path rules
(:func:`secretops.core.tree.set_path`), the same exit codes (7 for a malformed path or value,
100 for missing arguments, 1 for a path the file does not have). The file is rewritten in
place, in ``--output-type``'s format when one is given.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from secretops.cli._common import FORMAT_CHOICE, decryption_order, keyservice_flags

if TYPE_CHECKING:
    from secretops.errors import SecretOpsError
    from secretops.fileops import OpenedFile


def _parse_json_value(text: bytes) -> object:
    """A JSON value read the way sops reads it (numbers are floats, objects keep their order)."""
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.stores import get_store

    try:
        doc = get_store("json").load(b'{"v":' + text + b"}").docs[0]
    except SecretOpsError:
        raise SecretOpsError(
            "the value is not valid JSON", code=ExitCode.INVALID_SET_FORMAT,
            hints=("a string needs JSON quotes: '\"s3cret\"'",),
        ) from None
    return doc.get("v")


def _tree_path(text: str) -> list[str | int]:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileops import parse_tree_path

    try:
        return parse_tree_path(text)
    except SecretOpsError as e:  # sops: "Invalid set index format", exit 7
        raise SecretOpsError(e.message, code=ExitCode.INVALID_SET_FORMAT) from None


def _file_options(f: Any) -> Any:
    """The options ``set`` and ``unset`` share with sops's."""
    opts: list[Any] = [
        click.option("--input-type", type=FORMAT_CHOICE,
                     help="Format (default: from the file name)."),
        click.option("--output-type", type=FORMAT_CHOICE,
                     help="Write the file back in this format (default: its own)."),
        click.option("--ignore-mac", is_flag=True,
                     help="Do not verify the MAC before changing the file (recovery only)."),
        decryption_order,
        keyservice_flags,
        click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
                     hidden=True, help="Accepted for sops compatibility; no effect (as in sops)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _usage(message: str) -> SecretOpsError:
    from secretops.errors import ExitCode, SecretOpsError

    return SecretOpsError(message, code=ExitCode.NO_FILE_SPECIFIED)


# a value such as -5 is an argument, not an option
@click.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, metavar="FILE PATH [VALUE]", type=click.UNPROCESSED)
@click.option("--value-stdin", is_flag=True, help="Read the JSON value from standard input.")
@click.option("--value-file", is_flag=True,
              help="VALUE names a file holding the JSON value.")
@click.option("--idempotent", is_flag=True,
              help="Do not rewrite the file when the value is already set (as sops).")
@_file_options
def set_command(args: tuple[str, ...], value_stdin: bool, value_file: bool, idempotent: bool,
                input_type: str | None, output_type: str | None, ignore_mac: bool,
                decryption_order: str | None, shamir: int,
                keyservice: tuple[str, ...], enable_local_keyservice: bool | None) -> None:
    """Set the value at PATH in FILE to VALUE (JSON), in place.

    Other values keep their ciphertext. As in sops: missing keys are added with the maps and
    lists the path names, a list index at or past the end appends, and a value on the way that
    is not a map or list is replaced. The value is JSON, so strings need quotes; --value-stdin
    keeps a secret out of the shell history and the process list.

    \b
      secretops set secret.enc.yaml '["data"]["password"]' '"s3cret"'
      printf '"%s"' "$PW" | secretops set --value-stdin secret.enc.yaml '["stringData"]["pw"]'
    """
    from secretops import fileops
    from secretops.cli._actions import env_with
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file

    if value_file and value_stdin:
        raise SecretOpsError("cannot use both --value-file and --value-stdin",
                             code=ExitCode.GENERIC)
    if len(args) != (2 if value_stdin else 3):
        raise _usage("no file specified, or index and value are missing: give FILE PATH VALUE"
                     + (" (the value on standard input: FILE PATH)" if value_stdin else ""))
    file, path = args[0], args[1]
    try:
        tree_path = _tree_path(path)
        if value_stdin:
            raw = sys.stdin.buffer.read()
        elif value_file:
            raw = _read_value_file(args[2])
        else:
            raw = args[2].encode("utf-8", "surrogateescape")
        new = _parse_json_value(raw.strip())
        opened = _open(file, input_type, ignore_mac,
                       env_with(decryption_order, keyservice, enable_local_keyservice))
        output = _output_store(file, opened, output_type)
        result = fileops.set_value(opened, tree_path, new, output)
        if result is None:
            if idempotent:
                return
            result = fileops.reencrypt(opened, output=output)  # sops rewrites it anyway
        write_file(file, result, private=False, rewrite=True)
    except SecretOpsError as e:
        raise e.with_file(file) from None


def _read_value_file(name: str) -> bytes:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import read_input

    try:
        return read_input(name)
    except SecretOpsError as e:  # sops: the open error, exit 1
        raise SecretOpsError(e.message, code=ExitCode.GENERIC, file=name) from None


@click.command("unset")
@click.argument("args", nargs=-1, metavar="FILE PATH")
@click.option("--idempotent", is_flag=True, help="Succeed when PATH is not in the file.")
@_file_options
def unset_command(args: tuple[str, ...], idempotent: bool, input_type: str | None,
                  output_type: str | None, ignore_mac: bool, decryption_order: str | None,
                  shamir: int,
                  keyservice: tuple[str, ...], enable_local_keyservice: bool | None) -> None:
    """Remove the key or list item at PATH from FILE, in place.

    \b
      secretops unset secret.enc.yaml '["data"]["old_password"]'
    """
    from secretops import fileops
    from secretops.cli._actions import env_with
    from secretops.errors import SecretOpsError
    from secretops.fileio import write_file

    if len(args) != 2:
        raise _usage("no file specified, or index is missing: give FILE PATH")
    file, path = args
    try:
        tree_path = _tree_path(path)
        opened = _open(file, input_type, ignore_mac,
                       env_with(decryption_order, keyservice, enable_local_keyservice))
        try:
            result = fileops.unset_value(opened, tree_path,
                                         _output_store(file, opened, output_type))
        except fileops.PathNotFound:
            if idempotent:
                return
            raise
        write_file(file, result, private=False, rewrite=True)
    except SecretOpsError as e:
        raise e.with_file(file) from None


def _open(file: str, input_type: str | None, ignore_mac: bool, env: Any) -> OpenedFile:
    from secretops.compose import open_path

    return open_path(file, input_type=input_type, rewrite=True, ignore_mac=ignore_mac, env=env)


def _output_store(file: str, opened: OpenedFile, output_type: str | None) -> Any:
    """The store of ``--output-type`` (with the config's options for it), or None."""
    if not output_type or output_type == opened.store.name:
        return None
    import os

    from secretops.compose import load_config_for, store_options
    from secretops.stores import get_store

    return get_store(output_type, store_options(load_config_for(file, os.environ), output_type))
