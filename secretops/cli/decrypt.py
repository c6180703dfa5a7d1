"""``secretops decrypt``: decrypt a SOPS file, or one value of it."""

from __future__ import annotations

import click

from secretops.cli._common import check_io, input_name, io_options, write_result


@click.command("decrypt")
@io_options
@click.option("--extract", metavar="PATH",
              help="Print only the value at PATH, e.g. '[\"data\"][\"password\"]'.")
@click.option("--ignore-mac", is_flag=True, help="Do not verify the MAC (recovery only).")
def command(file: str, in_place: bool, output: str | None, input_type: str | None,
            output_type: str | None, filename_override: str | None, config_path: str | None,
            extract: str | None, ignore_mac: bool) -> None:
    """Decrypt FILE (or standard input) and print the plaintext.

    \b
      secretops decrypt secret.enc.yaml
      secretops decrypt --extract '["data"]["password"]' secret.enc.yaml
    """
    from secretops import api
    from secretops.errors import SecretOpsError
    from secretops.fileio import read_input

    check_io(file, in_place, output)
    name = input_name(file, filename_override)
    try:
        data = read_input(file)
        result = api.decrypt(
            data, format=input_type, output_format=output_type, filename=name,
            ignore_mac=ignore_mac, extract_path=extract, config=config_path,
        )
        write_result(result, file, in_place, output, private=True)
    except SecretOpsError as e:
        raise e.with_file(file if file != "-" else (name or "<stdin>")) from None
