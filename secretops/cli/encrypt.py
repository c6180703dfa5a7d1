"""``secretops encrypt``: encrypt a plaintext file (sops's flags and environment)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast

import click

from secretops.cli._bulk import many_options
from secretops.cli._common import io_options, key_flags, keyservice_flags, selection_flags
from secretops.errors import SecretOpsError


@click.command("encrypt")
@functools.partial(io_options, many=True)
@key_flags("encrypt")
@selection_flags
@click.option("--mac-only-encrypted", is_flag=True, default=None,
              help="Compute the MAC over encrypted values only.")
@click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
              help="Key groups needed to decrypt (with several key groups).")
@click.option("--reuse", metavar="ENCRYPTED",
              help="Encrypt as a new version of the ENCRYPTED file: same data key, keys and "
                   "rules, and unchanged values keep their ciphertext (a minimal diff).")
@click.option("--all", "all_files", is_flag=True,
              help="With -i: encrypt every file under the current directory (or the "
                   "directories given) that a creation rule with a path_regex covers and "
                   "that is not encrypted yet; what git ignores is skipped.")
@keyservice_flags
@many_options
def command(files: tuple[str, ...], in_place: bool, output: str | None,
            input_type: str | None, output_type: str | None, filename_override: str | None,
            config_path: str | None, mac_only_encrypted: bool | None, shamir: int,
            reuse: str | None, all_files: bool, keyservice: tuple[str, ...],
            enable_local_keyservice: bool | None, files_from: str | None, null: bool,
            jobs: int | None, **options: str | None) -> None:
    """Encrypt FILE (or standard input) and print the result.

    Many files at once, in place: -i with several files, directories (the files a creation
    rule with a path_regex covers that are not encrypted yet, skipping what git ignores),
    --files-from, or --all; see docs/usage.md, "Many files at once".

    \b
      secretops encrypt --age age1… secret.yaml > secret.enc.yaml
      secretops encrypt -i secret.yaml            # keys and rules from .sops.yaml
      secretops encrypt --encrypted-regex '^(data|stringData)$' secret.yaml
      secretops encrypt --reuse secret.enc.yaml --output secret.enc.yaml secret.yaml
      secretops encrypt -i --all                  # whatever check would refuse to commit
    """
    import sys

    from secretops.cli._actions import env_with, report, run_encrypt
    from secretops.cli._bulk import is_many

    if all_files or is_many(files, files_from):
        try:
            _check_many(in_place, output, output_type, filename_override, reuse)
            env = env_with(None, keyservice, enable_local_keyservice)
        except SecretOpsError as e:
            sys.exit(report(e))
        paths = files
        if all_files and not files and not files_from:
            paths = (".",)  # --all alone: the current directory
        sys.exit(_encrypt_many(paths, files_from, null, jobs, input_type, config_path, env,
                               {**options, "mac_only_encrypted": mac_only_encrypted or None,
                                "shamir_threshold": shamir}))
    file = files[0] if files else "-"
    if reuse is not None:
        # every key flag and setting, and every selection rule
        given = [*options.values(), mac_only_encrypted, shamir or None, output_type]
        _reencrypt(file, reuse, in_place, output, input_type, filename_override,
                   config_path, conflicting=any(v is not None for v in given),
                   env=env_with(None, keyservice, enable_local_keyservice))
        return

    run_encrypt(file, in_place=in_place, output=output, input_type=input_type,
                output_type=output_type, filename_override=filename_override,
                config_path=config_path, mac_only_encrypted=mac_only_encrypted, shamir=shamir,
                keyservice=keyservice, enable_local_keyservice=enable_local_keyservice,
                **cast(dict[str, Any], options))


def _reencrypt(file: str, reuse: str, in_place: bool, output: str | None,
               input_type: str | None, filename_override: str | None,
               config_path: str | None, conflicting: bool, env: Mapping[str, str]) -> None:
    """``encrypt --reuse``: the edited plaintext FILE as a new version of REUSE."""
    from secretops import fileops
    from secretops.cli._actions import check_io, write_result
    from secretops.compose import open_path, settings
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import read_input

    if conflicting:
        raise SecretOpsError(
            "--reuse takes keys, selection rules and the output type from the encrypted file; "
            "do not combine it with key, selection or --output-type flags",
            code=ExitCode.CONFLICTING_PARAMETERS,
        )
    check_io(file, in_place, output)
    given = settings(reuse, input_type=input_type, name=filename_override,
                     config_path=config_path)
    try:
        opened = open_path(reuse, given=given, env=env)
    except SecretOpsError as e:
        raise e.with_file(reuse) from None
    try:
        result = fileops.reencrypt_plaintext(opened, read_input(file, rewrite=in_place))
    except SecretOpsError as e:
        raise e.with_file(file if file != "-" else "<stdin>") from None
    write_result(result, file, in_place, output, private=False)


def _check_many(in_place: bool, output: str | None, output_type: str | None,
                filename_override: str | None, reuse: str | None) -> None:
    from secretops.errors import ExitCode

    if not in_place:
        raise SecretOpsError("several files, a directory, --files-from or --all need -i",
                             code=ExitCode.CONFLICTING_PARAMETERS,
                             hints=("standard output takes one file's result",))
    given = [n for n, v in (("--output", output), ("--output-type", output_type),
                            ("--filename-override", filename_override), ("--reuse", reuse))
             if v]
    if given:
        raise SecretOpsError(f"{', '.join(given)} take one file, not the many-file form",
                             code=ExitCode.CONFLICTING_PARAMETERS)


def _encrypt_many(paths: tuple[str, ...], files_from: str | None, null: bool,
                  jobs: int | None, input_type: str | None, config_path: str | None,
                  env: Mapping[str, str], options: Mapping[str, Any]) -> int:
    from secretops.bulk.jobs import EncryptJob
    from secretops.cli._actions import report
    from secretops.cli._bulk import collect, count_line, run_many

    try:
        items = collect(paths, files_from, null).items
    except SecretOpsError as e:
        return report(e)
    job = EncryptJob(env, input_type=input_type, config_path=config_path,
                     options=options)
    return run_many(job, items, jobs=jobs, label="encrypt",
                    summary=lambda t: count_line("encrypted", t))
