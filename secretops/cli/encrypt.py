"""``secretops encrypt``: encrypt a plaintext file (sops's flags and environment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import click

from secretops.cli._common import io_options, key_flags, keyservice_flags, selection_flags


@click.command("encrypt")
@io_options
@key_flags("encrypt")
@selection_flags
@click.option("--mac-only-encrypted", is_flag=True, default=None,
              help="Compute the MAC over encrypted values only.")
@click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
              help="Key groups needed to decrypt (with several key groups).")
@click.option("--reuse", metavar="ENCRYPTED",
              help="Encrypt as a new version of the ENCRYPTED file: same data key, keys and "
                   "rules, and unchanged values keep their ciphertext (a minimal diff).")
@keyservice_flags
def command(file: str, in_place: bool, output: str | None, input_type: str | None,
            output_type: str | None, filename_override: str | None, config_path: str | None,
            mac_only_encrypted: bool | None, shamir: int, reuse: str | None,
            keyservice: tuple[str, ...], enable_local_keyservice: bool | None,
            **options: str | None) -> None:
    """Encrypt FILE (or standard input) and print the result.

    \b
      secretops encrypt --age age1… secret.yaml > secret.enc.yaml
      secretops encrypt -i secret.yaml            # keys and rules from .sops.yaml
      secretops encrypt --encrypted-regex '^(data|stringData)$' secret.yaml
      secretops encrypt --reuse secret.enc.yaml --output secret.enc.yaml secret.yaml
    """
    from secretops.cli._actions import env_with, run_encrypt

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
