"""``secretops encrypt``: encrypt a plaintext file (sops's flags and environment)."""

from __future__ import annotations

from typing import Any, cast

import click

from secretops.cli._common import io_options


@click.command("encrypt")
@io_options
@click.option("--age", "age", metavar="RECIPIENTS",
              help="Comma-separated age recipients (age1…, ssh-ed25519 …, plugins). "
                   "Default: $SOPS_AGE_RECIPIENTS, then .sops.yaml.")
@click.option("--encrypted-regex", metavar="RE", help="Encrypt only keys matching RE.")
@click.option("--unencrypted-regex", metavar="RE", help="Leave keys matching RE in clear.")
@click.option("--encrypted-suffix", metavar="S", help="Encrypt only keys ending in S.")
@click.option("--unencrypted-suffix", metavar="S",
              help="Leave keys ending in S in clear (default: _unencrypted).")
@click.option("--encrypted-comment-regex", metavar="RE",
              help="Encrypt values after a comment matching RE.")
@click.option("--unencrypted-comment-regex", metavar="RE",
              help="Leave values after a comment matching RE in clear.")
@click.option("--mac-only-encrypted", is_flag=True, default=None,
              help="Compute the MAC over encrypted values only.")
@click.option("--shamir-secret-sharing-threshold", "shamir", type=int, default=0,
              help="Key groups needed to decrypt (with several key groups).")
def command(file: str, in_place: bool, output: str | None, input_type: str | None,
            output_type: str | None, filename_override: str | None, config_path: str | None,
            age: str | None, mac_only_encrypted: bool | None, shamir: int,
            **selection: str | None) -> None:
    """Encrypt FILE (or standard input) and print the result.

    \b
      secretops encrypt --age age1… secret.yaml > secret.enc.yaml
      secretops encrypt -i secret.yaml            # keys and rules from .sops.yaml
      secretops encrypt --encrypted-regex '^(data|stringData)$' secret.yaml
    """
    from secretops.cli._actions import run_encrypt

    run_encrypt(file, in_place=in_place, output=output, input_type=input_type,
                output_type=output_type, filename_override=filename_override,
                config_path=config_path, age=age, mac_only_encrypted=mac_only_encrypted,
                shamir=shamir, **cast(dict[str, Any], selection))
