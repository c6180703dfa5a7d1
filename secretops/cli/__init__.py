"""The ``secretops`` command line: a thin shell over :mod:`secretops.api`.

Every subcommand lives in its own module (the click application is in :mod:`.app`). Errors
print as one line on stderr::

    secretops: error: FILE: PATH: what went wrong
    secretops: hint: what to try

and exit with the code from :class:`secretops.errors.ExitCode` (see ``docs/exit-codes.md``).
Plain ``encrypt``/``decrypt`` invocations skip importing click (see :mod:`._fast`); heavy
imports (cryptography, YAML, pyrage) happen inside commands, so ``--help`` stays fast too.
"""

from __future__ import annotations

import sys


def main() -> None:
    from secretops.cli import _fast

    code = _fast.run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from secretops.cli.app import cli

    cli(prog_name="secretops")
