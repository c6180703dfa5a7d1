"""``secretops publish``: send a file, or a directory's files, to their ``destination_rules``.

sops's command line and behaviour (see :mod:`secretops.publish` for what goes where); the
confirmation it asks before each upload needs a terminal: without one, ``--yes`` is required
(exit 155), where sops would read the answer from a pipe or fail on an empty one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from secretops.cli._common import keyservice_flags

if TYPE_CHECKING:
    from secretops.config import Config


@click.command("publish")
@click.argument("paths", nargs=-1, required=False, metavar="FILE")
@click.option("-y", "--yes", is_flag=True, help="Upload without asking (no terminal: required).")
@click.option("--omit-extensions", is_flag=True,
              help="Publish a.enc.yaml as a.enc: without the file's extension.")
@click.option("--recursive", is_flag=True,
              help="FILE is a directory: publish every file under it, named by its path there.")
@click.option("--verbose", is_flag=True, help="Say what is published where, on stderr.")
@click.option("--decryption-order", metavar="KINDS", envvar="SOPS_DECRYPTION_ORDER",
              help="Comma-separated key kinds to try first (age,pgp,kms,hc_vault).")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml with the destination rules (default: searched upwards "
                   "from the working directory).")
@keyservice_flags
def command(paths: tuple[str, ...], yes: bool, omit_extensions: bool, recursive: bool,
            verbose: bool, decryption_order: str | None, config_path: str | None,
            keyservice: tuple[str, ...], enable_local_keyservice: bool | None) -> None:
    """Publish FILE to the destination its .sops.yaml destination rule names.

    To S3 and GCS goes the encrypted file: as it is, or re-encrypted for the keys of the
    rule's recreation_rule. To Vault KV (v1 or v2) go the DECRYPTED values, as one secret.
    Each upload is confirmed on the terminal unless --yes is given.

    \b
      secretops publish -y secrets/prod.enc.yaml
      secretops publish -y --recursive --omit-extensions secrets/
    """
    import os

    from secretops.cli._actions import env_with
    from secretops.compose import load_config_for
    from secretops.errors import ExitCode, SecretOpsError

    env = dict(env_with(decryption_order, keyservice, enable_local_keyservice))
    cfg = load_config_for(None, env, config_path)
    if cfg is None:
        raise SecretOpsError("no .sops.yaml found: publish needs its destination_rules",
                             code=ExitCode.CONFIG_FILE_NOT_FOUND,
                             hints=("it is searched from the working directory upwards; "
                                    "or pass --config",))
    if not paths:
        raise SecretOpsError("no file specified", code=ExitCode.NO_FILE_SPECIFIED)
    if len(paths) > 1:
        click.echo(f"secretops: warning: more than one file given: only {paths[0]} is "
                   "published", err=True)
    path = paths[0]
    if not os.path.lexists(path):
        raise SecretOpsError("no such file or directory", code=ExitCode.COULD_NOT_READ_INPUT,
                             file=path)
    if os.path.isdir(path) and not recursive:
        raise SecretOpsError("can't operate on a directory without --recursive flag",
                             code=ExitCode.GENERIC, file=path)
    if not yes and not sys.stdin.isatty():
        raise SecretOpsError("each upload needs confirmation, and there is no terminal to "
                             "ask on", code=ExitCode.CONFIRMATION_REQUIRED,
                             hints=("run it on a terminal, or pass --yes",))
    for file in _walk(path):
        _publish_one(file, path if recursive else None, cfg, env, yes, omit_extensions,
                     verbose)


def _walk(path: str) -> list[str]:
    """Files under ``path`` in Go's ``filepath.Walk`` order (names sorted bytewise, joined
    paths cleaned), links not followed: a link is published as the file it names."""
    import os

    if not os.path.isdir(path) or os.path.islink(path):
        return [path]
    files: list[str] = []
    todo = [path]
    while todo:
        current = todo.pop()
        if os.path.isdir(current) and not os.path.islink(current):
            names = sorted(os.listdir(current), key=lambda n: n.encode("utf-8", "surrogateescape"))
            todo.extend(os.path.normpath(os.path.join(current, n)) for n in reversed(names))
        else:
            files.append(current)
    return files


def _publish_one(file: str, root: str | None, cfg: Config, env: dict[str, str], yes: bool,
                 omit_extensions: bool, verbose: bool) -> None:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.publish import prepare

    try:
        pub = prepare(file, cfg, env, root=root, omit_extensions=omit_extensions)
    except SecretOpsError as e:
        raise e.with_file(file) from None
    if pub.key_changes:
        click.echo("The following changes will be made to the file's key groups:")
        for line in pub.key_changes:
            click.echo(line)
    if not yes and not _confirm(pub.source, pub.target):
        message = f"Publication of {pub.source} canceled"
        if root is None:
            raise SecretOpsError(message, code=ExitCode.GENERIC)
        click.echo(message)
        return
    if verbose:
        click.echo(f"secretops: publishing {file} to {pub.target}", err=True)
    try:
        note = pub.upload()
    except SecretOpsError as e:
        raise e.with_file(file) from None
    if note:
        click.echo(f"secretops: {file}: {note}", err=True)


def _confirm(source: str, target: str) -> bool:
    """sops's question, asked until the answer is y or n."""
    while True:
        answer = click.prompt(f"uploading {source} to {target} ? (y/n)", default="",
                              show_default=False, prompt_suffix=": ")
        if answer in ("y", "n"):
            return answer == "y"
