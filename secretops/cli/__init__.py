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

import os
import sys


def main() -> None:
    import gc

    from secretops.cli import _fast

    # A plain encrypt/decrypt allocates several objects per value and makes no reference
    # cycles, so the cyclic collector would only rescan the growing trees (~5% of a large
    # file's run) in a process that ends right after; click commands keep it.
    gc.disable()
    code = _fast.run(sys.argv[1:])
    if code is not None:
        # Output is complete and files are already fsynced and renamed: skip the interpreter's
        # teardown of every imported module (~10 ms, a large share of a small decrypt).
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # e.g. the reader of a pipe went away
            code = code or int(_fast.OUTPUT_FAILED)
        os._exit(code)
    gc.enable()
    from secretops.cli.app import cli

    cli(prog_name="secretops")
