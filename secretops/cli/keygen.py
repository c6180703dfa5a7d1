"""``secretops keygen``: make an age identity (like ``age-keygen``), never overwriting one."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import click

from secretops.errors import ExitCode, SecretOpsError


@click.command("keygen")
@click.option("-o", "--output", metavar="FILE",
              help="Write the key to FILE (created 0600, parent directories 0700; never replaced).")
@click.option("-y", "to_public", is_flag=True,
              help="Read an identity file (FILE argument or stdin) and print its recipients.")
@click.argument("input_file", required=False)
def command(output: str | None, to_public: bool, input_file: str | None) -> None:
    """Generate an age identity and print its public recipient.

    \b
      secretops keygen -o ~/.config/sops/age/keys.txt
      secretops keygen -y ~/.config/sops/age/keys.txt     # show the recipient again
    """
    from secretops.keys.age import generate, parse_identities

    if to_public:
        from secretops.fileio import read_input

        src = input_file or "-"
        text = read_input(src).decode("utf-8", "replace")
        for ident in parse_identities(text, src):
            click.echo(str(ident.to_public()))
        return
    if input_file:
        raise SecretOpsError("keygen takes no file argument without -y",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    secret, public = generate()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"# created: {created}\n# public key: {public}\n{secret}\n"
    if output is None:
        click.echo(body, nl=False)
        click.echo(f"Public key: {public}", err=True)
        return
    from secretops.fileio import write_file

    path = os.path.expanduser(output)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        # exclusive: fully written or not there at all, and never over an existing file
        write_file(path, body.encode("utf-8"), private=True, exclusive=True)
    except FileExistsError:
        raise SecretOpsError(
            "the key file already exists; refusing to overwrite it", file=output,
            code=ExitCode.KEY_FILE_EXISTS,
            hints=("losing an identity makes every file encrypted to it unreadable; "
                   "choose another path or remove the file yourself",),
        ) from None
    except OSError as e:
        raise SecretOpsError(f"cannot create: {e.strerror}", file=output,
                             code=ExitCode.COULD_NOT_WRITE_OUTPUT) from None
    click.echo(f"Public key: {public}", err=True)
    click.echo(public)
