"""``secretops decrypt``: decrypt a SOPS file, or one value of it; or many files at once."""

from __future__ import annotations

import functools

import click

from secretops.cli._bulk import many_options
from secretops.cli._common import decryption_order, io_options, keyservice_flags


@click.command("decrypt")
@functools.partial(io_options, many=True)
@click.option("--extract", metavar="PATH",
              help="Print only the value at PATH, e.g. '[\"data\"][\"password\"]'.")
@click.option("--ignore-mac", is_flag=True, help="Do not verify the MAC (recovery only).")
@decryption_order
@keyservice_flags
@click.option("--output-dir", metavar="DIR",
              help="Decrypt every FILE (and the encrypted files under each directory) into "
                   "DIR, mirroring the tree; plaintext files 0600, directories 0700.")
@click.option("--overwrite", is_flag=True,
              help="With --output-dir: replace files that are already there.")
@many_options
def command(files: tuple[str, ...], in_place: bool, output: str | None, input_type: str | None,
            output_type: str | None, filename_override: str | None, config_path: str | None,
            extract: str | None, ignore_mac: bool, decryption_order: str | None,
            keyservice: tuple[str, ...], enable_local_keyservice: bool | None,
            output_dir: str | None, overwrite: bool, files_from: str | None, null: bool,
            jobs: int | None) -> None:
    """Decrypt FILE (or standard input) and print the plaintext.

    Many files at once: with --output-dir DIR, or in place with -i, every FILE, every
    encrypted file under each directory (skipping what git ignores) and every name in
    --files-from is decrypted, in parallel; see docs/usage.md, "Many files at once".

    \b
      secretops decrypt secret.enc.yaml
      secretops decrypt --extract '["data"]["password"]' secret.enc.yaml
      secretops decrypt --output-dir /tmp/plain secrets/
      git ls-files -z '*.enc.yaml' | secretops decrypt -i --files-from - --null
    """
    import sys

    from secretops.cli._actions import report, run_decrypt
    from secretops.cli._bulk import is_many
    from secretops.errors import SecretOpsError

    many = is_many(files, files_from)
    try:
        _check_forms(many, in_place, output, output_dir, overwrite, extract, output_type,
                     filename_override)
    except SecretOpsError as e:
        sys.exit(report(e))
    if output_dir is None and not (in_place and many):
        run_decrypt(files[0] if files else "-", in_place=in_place, output=output,
                    input_type=input_type, output_type=output_type,
                    filename_override=filename_override, config_path=config_path,
                    extract=extract, ignore_mac=ignore_mac, decryption_order=decryption_order,
                    keyservice=keyservice, enable_local_keyservice=enable_local_keyservice)
        return
    sys.exit(_decrypt_many(files, files_from, null, jobs, output_dir, overwrite, input_type,
                           ignore_mac, config_path,
                           (decryption_order, keyservice, enable_local_keyservice)))


def _check_forms(many: bool, in_place: bool, output: str | None, output_dir: str | None,
                 overwrite: bool, extract: str | None, output_type: str | None,
                 filename_override: str | None) -> None:
    from secretops.errors import ExitCode, SecretOpsError

    def conflict(message: str, *hints: str) -> SecretOpsError:
        return SecretOpsError(message, code=ExitCode.CONFLICTING_PARAMETERS, hints=hints)

    if overwrite and output_dir is None:
        raise conflict("--overwrite goes with --output-dir")
    if output_dir is None and not (in_place and many):
        if many and not in_place:
            raise conflict("several files, a directory or --files-from need --output-dir DIR "
                           "or -i", "standard output takes one file's plaintext")
        return
    if in_place and output_dir is not None:
        raise conflict("--in-place and --output-dir cannot be used together")
    given = [n for n, v in (("--output", output), ("--extract", extract),
                            ("--output-type", output_type),
                            ("--filename-override", filename_override)) if v]
    if given:
        raise conflict(f"{', '.join(given)} take one file, not the many-file form",
                       "decrypt one file at a time to use them")


def _decrypt_many(files: tuple[str, ...], files_from: str | None, null: bool,
                  jobs: int | None, output_dir: str | None, overwrite: bool,
                  input_type: str | None, ignore_mac: bool, config_path: str | None,
                  keys: tuple[str | None, tuple[str, ...], bool | None]) -> int:
    from secretops.bulk import outdir
    from secretops.bulk.jobs import DecryptJob
    from secretops.cli._actions import env_with, report
    from secretops.cli._bulk import collect, count_line, run_many
    from secretops.errors import SecretOpsError

    try:
        env = env_with(*keys)  # --decryption-order, --keyservice, --enable-local-keyservice
        items, directories = collect(files, files_from, null)
        if output_dir is not None:
            outdir.check_destination(output_dir, [i.path for i in items], directories)
            outdir.make_root(output_dir)
    except SecretOpsError as e:
        return report(e)
    job = DecryptJob(env, out_dir=output_dir, overwrite=overwrite, input_type=input_type,
                     ignore_mac=ignore_mac, config_path=config_path)
    return run_many(job, items, jobs=jobs, label="decrypt",
                    summary=lambda t: count_line("decrypted", t))
