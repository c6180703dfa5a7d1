"""``secretops groups add`` / ``groups delete``: change a file's key groups, as sops does.

Both keep the data key: values, ``lastmodified`` and the MAC stay byte for byte; only the key
entries change (every group gets a new Shamir share). The result goes to stdout, or back into
the file with ``-i`` — sops's command lines, flags and output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from secretops.cli._common import keyservice_flags

# sops's flags for key sources secretops has no record of: accepted, and refused when used
_SOPS_GROUP_FLAGS = ("pgp", "kms", "gcp-kms", "hckms", "azure-kv", "hc-vault-transit", "age")


@click.group("groups")
def group() -> None:
    """Add or delete the key groups of an encrypted file (sops's ``groups``)."""


def _key_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """One repeatable flag per key source (in sops's order where sops has it), and the
    sources' settings (``--encryption-context``, ``--aws-profile``)."""
    from secretops.keys import sources

    known = {src.flag: src for src in sources()}
    flags = [*_SOPS_GROUP_FLAGS, *(k for k in known if k not in _SOPS_GROUP_FLAGS)]
    opts = []
    for flag in flags:
        src = known.get(flag)
        what = src.help if src is not None else "keys of a source secretops does not have"
        opts.append(click.option(f"--{flag}", "keys_" + flag.replace("-", "_"), multiple=True,
                                 metavar="KEY",
                                 help=f"{what[:1].upper()}{what[1:]} for the new group "
                                      "(repeatable)."))
    for src in known.values():
        opts += [click.option(o.flag, o.name, metavar=o.metavar, help=o.help)
                 for o in src.options]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    opts: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("-f", "--file", "file", metavar="FILE", help="The encrypted file."),
        click.option("-i", "--in-place", is_flag=True,
                     help="Write the result back to FILE instead of stdout."),
        click.option("--shamir-secret-sharing-threshold", "threshold", type=int, default=0,
                     help="How many key groups are needed to recover the data key."),
        click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
                     help="The .sops.yaml whose stores settings format the output."),
        keyservice_flags,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@group.command("add")
@click.argument("extra", nargs=-1, required=False)
@_common
@_key_flags
def add_command(extra: tuple[str, ...], file: str | None, in_place: bool, threshold: int,
                config_path: str | None, keyservice: tuple[str, ...],
                enable_local_keyservice: bool | None, **given: Any) -> None:
    """Add a key group to FILE: its keys get a share of the same data key.

    \b
      secretops groups add --file s.enc.yaml --age age1... --age age1...
      secretops groups add -f s.enc.yaml --kms arn:... --shamir-secret-sharing-threshold 2 -i
    """
    from secretops.errors import ExitCode, SecretOpsError

    if extra:
        raise SecretOpsError("no positional arguments allowed: name the file with --file",
                             code=ExitCode.GENERIC)
    file = _need_file(file)

    def change(opened: Any, env: Any) -> Any:
        from secretops.keyops import add_group

        return add_group(opened.metadata, _new_group(given), threshold, opened.data_key, env)

    _run(file, in_place, config_path, change, (keyservice, enable_local_keyservice))


@group.command("delete")
@click.argument("index", nargs=-1, required=False)
@_common
def delete_command(index: tuple[str, ...], file: str | None, in_place: bool, threshold: int,
                   config_path: str | None, keyservice: tuple[str, ...],
                   enable_local_keyservice: bool | None) -> None:
    """Delete key group INDEX (counted from 0) from FILE.

    \b
      secretops groups delete --file s.enc.yaml 1
      secretops groups delete -f s.enc.yaml --shamir-secret-sharing-threshold 2 -i 0
    """
    from secretops.errors import ExitCode, SecretOpsError

    if len(index) != 1:
        raise SecretOpsError("exactly one positional argument (index) required",
                             code=ExitCode.GENERIC)
    text = index[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise SecretOpsError(f"the index {text[:40]!r} is not a key group number (0, 1, …)",
                             code=ExitCode.GENERIC)
    file = _need_file(file)

    def change(opened: Any, env: Any) -> Any:
        from secretops.keyops import delete_group

        return delete_group(opened.metadata, int(text), threshold, opened.data_key, env)

    _run(file, in_place, config_path, change, (keyservice, enable_local_keyservice))


def _need_file(file: str | None) -> str:
    if not file:
        from secretops.errors import ExitCode, SecretOpsError

        raise SecretOpsError("no file given", code=ExitCode.NO_FILE_SPECIFIED,
                             hints=("name it with --file FILE",))
    return file


def _new_group(given: dict[str, Any]) -> list[Any]:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keys import sources
    from secretops.keys.specs import from_flags

    known = {src.flag for src in sources()}
    for flag in _SOPS_GROUP_FLAGS:
        if flag not in known and given.get("keys_" + flag.replace("-", "_")):
            raise SecretOpsError(f"--{flag}: secretops has no such key source",
                                 code=ExitCode.INVALID_KEY)
    values = {src.keyword: ",".join(given["keys_" + src.keyword]) for src in sources()}
    settings = {o.name: given.get(o.name) for src in sources() for o in src.options}
    return from_flags(**values, **settings)


def _run(file: str, in_place: bool, config_path: str | None,
         change: Callable[[Any, Any], Any],
         keyservices: tuple[tuple[str, ...], bool | None]) -> None:
    import sys

    from secretops import fileops
    from secretops.cli._actions import env_with
    from secretops.compose import open_path, settings
    from secretops.errors import SecretOpsError
    from secretops.fileio import write_file

    try:
        env = env_with(None, *keyservices)
        given = settings(file, config_path=config_path, env=env)
        opened = open_path(file, env=env, rewrite=in_place, given=given)
        data = fileops.rewrite_metadata(opened, change(opened, env))
    except SecretOpsError as e:
        raise e.with_file(file) from None
    if in_place:
        write_file(file, data, private=False, rewrite=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
