"""``secretops decrypt``: decrypt a SOPS file, or one value of it."""

from __future__ import annotations

import click

from secretops.cli._common import decryption_order, io_options, keyservice_flags


@click.command("decrypt")
@io_options
@click.option("--extract", metavar="PATH",
              help="Print only the value at PATH, e.g. '[\"data\"][\"password\"]'.")
@click.option("--ignore-mac", is_flag=True, help="Do not verify the MAC (recovery only).")
@decryption_order
@keyservice_flags
def command(file: str, in_place: bool, output: str | None, input_type: str | None,
            output_type: str | None, filename_override: str | None, config_path: str | None,
            extract: str | None, ignore_mac: bool, decryption_order: str | None,
            keyservice: tuple[str, ...], enable_local_keyservice: bool | None) -> None:
    """Decrypt FILE (or standard input) and print the plaintext.

    \b
      secretops decrypt secret.enc.yaml
      secretops decrypt --extract '["data"]["password"]' secret.enc.yaml
    """
    from secretops.cli._actions import run_decrypt

    run_decrypt(file, in_place=in_place, output=output, input_type=input_type,
                output_type=output_type, filename_override=filename_override,
                config_path=config_path, extract=extract, ignore_mac=ignore_mac,
                decryption_order=decryption_order, keyservice=keyservice,
                enable_local_keyservice=enable_local_keyservice)
