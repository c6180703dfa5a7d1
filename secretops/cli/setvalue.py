"""``secretops set`` and ``unset``: change one value of an encrypted file without an editor."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from secretops.cli._common import FORMAT_CHOICE

if TYPE_CHECKING:
    from secretops.fileops import OpenedFile


def _parse_json_value(text: bytes, where: str) -> object:
    """A JSON value read the way sops reads it (numbers are floats, objects keep their order)."""
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.stores import get_store

    try:
        doc = get_store("json").load(b'{"v":' + text + b"}").docs[0]
    except SecretOpsError:
        raise SecretOpsError(
            f"the value {where} is not valid JSON",
            code=ExitCode.INVALID_INPUT,
            hints=("a string needs JSON quotes: '\"s3cret\"'",),
        ) from None
    return doc.get("v")


@click.command("set")
@click.argument("file")
@click.argument("path")
@click.argument("value", required=False)
@click.option("--value-stdin", is_flag=True, help="Read the JSON value from standard input.")
@click.option("--value-file", is_flag=True,
              help="VALUE names a file holding the JSON value.")
@click.option("--idempotent", is_flag=True,
              help="Do not rewrite the file when the value is already set (as sops).")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
def set_command(file: str, path: str, value: str | None, value_stdin: bool, value_file: bool,
                idempotent: bool, input_type: str | None) -> None:
    """Set the value at PATH in FILE to VALUE (JSON), in place.

    Other values keep their ciphertext. Missing maps on the way are created; a list index one
    past the end appends. The value is JSON, so strings need quotes; --value-stdin keeps a
    secret out of the shell history and the process list.

    \b
      secretops set secret.enc.yaml '["data"]["password"]' '"s3cret"'
      printf '"%s"' "$PW" | secretops set --value-stdin secret.enc.yaml '["stringData"]["pw"]'
    """
    from secretops import fileops
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import read_input, write_file

    if sum((value is not None, value_stdin)) != 1:
        raise SecretOpsError("give the value as an argument or with --value-stdin (one of them)",
                             code=ExitCode.CONFLICTING_PARAMETERS, file=file)
    try:
        if value_stdin:
            if sys.stdin.isatty():
                raise SecretOpsError("--value-stdin needs the value on standard input",
                                     code=ExitCode.NO_FILE_SPECIFIED)
            raw, where = sys.stdin.buffer.read(), "from standard input"
        elif value_file:
            assert value is not None
            raw, where = read_input(value), f"in {value}"
        else:
            assert value is not None
            raw, where = value.encode("utf-8", "surrogateescape"), "given"
        new = _parse_json_value(raw.strip(), where)
        opened = _open(file, input_type)
        result = fileops.set_value(opened, fileops.parse_tree_path(path), new)
        if result is None:
            if idempotent:
                return
            result = fileops.reencrypt(opened)  # sops rewrites; so do we unless --idempotent
        write_file(file, result, private=False, rewrite=True)
    except SecretOpsError as e:
        raise e.with_file(file) from None


@click.command("unset")
@click.argument("file")
@click.argument("path")
@click.option("--idempotent", is_flag=True, help="Succeed when PATH is not in the file.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from the file name).")
def unset_command(file: str, path: str, idempotent: bool, input_type: str | None) -> None:
    """Remove the key or list item at PATH from FILE, in place.

    \b
      secretops unset secret.enc.yaml '["data"]["old_password"]'
    """
    from secretops import fileops
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file

    try:
        opened = _open(file, input_type)
        try:
            result = fileops.unset_value(opened, fileops.parse_tree_path(path))
        except SecretOpsError as e:
            if idempotent and e.code == ExitCode.INVALID_TREE_PATH_FORMAT and e.path:
                return
            raise
        write_file(file, result, private=False, rewrite=True)
    except SecretOpsError as e:
        raise e.with_file(file) from None


def _open(file: str, input_type: str | None) -> OpenedFile:
    from secretops.compose import open_path

    return open_path(file, input_type=input_type, rewrite=True)
