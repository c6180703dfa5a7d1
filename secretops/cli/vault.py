"""``secretops vault``: maintenance for files whose data key is wrapped by Vault transit keys."""

from __future__ import annotations

import sys

import click

from secretops.cli._common import FORMAT_CHOICE


@click.group("vault")
def command() -> None:
    """Vault / OpenBao transit key maintenance."""


@command.command("rewrap")
@click.argument("files", nargs=-1, required=True)
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from each file name).")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml whose 'stores' settings apply (default: searched upwards).")
def rewrap(files: tuple[str, ...], input_type: str | None, config_path: str | None) -> None:
    """Re-wrap FILES' data keys with the newest version of their Vault transit keys.

    Run it after 'vault write -f transit/keys/KEY/rotate'. Each hc_vault entry is sent to
    transit's rewrap endpoint, so the data key never leaves Vault and nothing is decrypted
    here: values, lastmodified and the MAC stay byte-identical, only the entries' enc
    changes (vault:v1:… becomes vault:v2:…). Entries already at the newest version are left
    as they are. The token needs "update" on <engine>/rewrap/<key>.

    \b
      secretops vault rewrap secrets/*.enc.yaml
    """
    from secretops.cli._actions import report
    from secretops.errors import SecretOpsError

    first_error = 0
    for file in files:
        try:
            click.echo(_rewrap_file(file, input_type, config_path))
        except SecretOpsError as e:
            code = report(e.with_file(file))
            first_error = first_error or code
    if first_error:
        sys.exit(first_error)


def _rewrap_file(file: str, input_type: str | None, config_path: str | None) -> str:
    """Rewrap one file in place; returns the line that reports what was done."""
    import os

    from secretops.compose import settings
    from secretops.core.metadata import Metadata
    from secretops.errors import MetadataError
    from secretops.fileio import read_input, write_file
    from secretops.keys import rewrapper, source
    from secretops.stores import get_store

    env = os.environ
    given = settings(file, input_type=input_type, config_path=config_path, env=env)
    store = get_store(given.format, given.options)
    loaded = store.load(read_input(file, rewrite=True))
    if loaded.metadata is None:
        raise MetadataError("sops metadata not found: the file is not encrypted")
    metadata = Metadata.from_wire(loaded.metadata)
    vault = source("hc_vault")
    rewrap = rewrapper(vault)
    assert rewrap is not None
    if not any(k.kind == vault.kind for k in metadata.all_keys()):
        return f"{file}: no Vault transit keys, left unchanged"
    vault.check_available()
    new_meta, changes = rewrap.rewrap(metadata, env)
    if not changes:
        return f"{file}: already at the newest key versions, left unchanged"
    # The metadata-only rewrite of fileops.rewrite_metadata, without decrypting: the data key is
    # not needed, so rewrapping needs no decrypt permission.
    write_file(file, bytes(store.emit(loaded.docs, new_meta.to_wire(), loaded.layout)),
               private=False, rewrite=True)
    moved = ", ".join(f"{c.key} (v{c.old_version} -> v{c.new_version})" for c in changes)
    return f"{file}: rewrapped {moved}"
