"""The ``secretops`` command line: a thin shell over :mod:`secretops.api`.

Every subcommand lives in its own module (the click application is in :mod:`.app`). Errors
print as one line on stderr::

    secretops: error: FILE: PATH: what went wrong
    secretops: hint: what to try

and exit with the code from :class:`secretops.errors.ExitCode` (see ``docs/exit-codes.md``).
sops's global mode (``secretops -d FILE``, ``secretops FILE`` …) and options before a
subcommand are turned into the subcommand form first (see :mod:`._globalmode`, imported only
when the first argument is not a subcommand's name: :data:`COMMANDS`). Plain
``encrypt``/``decrypt`` invocations skip importing click (see :mod:`._fast`); heavy imports
(cryptography, YAML, pyrage) happen inside commands, so ``--help`` stays fast too.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secretops.cli._globalmode import Plan

# Every top-level command name: secretops's (a test keeps this in step with the click group)
# and sops's `help`/`h`. A file with one of these names cannot be given to the global mode —
# the same rule as sops's.
COMMANDS = frozenset({
    "check", "completion", "convert-eso", "decrypt", "edit", "encrypt", "exec-env",
    "exec-file", "filestatus", "git", "groups", "help", "h", "keygen", "keyservice", "log",
    "publish", "reseal", "rotate", "seal", "set", "status", "unseal", "unset", "updatekeys",
    "vault", "verify",
})


def main() -> None:
    import gc

    # A plain encrypt/decrypt allocates several objects per value and makes no reference
    # cycles, so the cyclic collector would only rescan the growing trees (~5% of a large
    # file's run) in a process that ends right after; click commands keep it.
    gc.disable()
    argv, plan = sys.argv[1:], None
    # an argv that starts with a subcommand is the subcommand form already: the global-mode
    # parser is not even imported (every run starts here)
    subcommand = bool(argv) and argv[0] in COMMANDS and argv[0] not in ("help", "h")
    if not subcommand and "_SECRETOPS_COMPLETE" not in os.environ:  # completion: click's
        from secretops.cli._globalmode import translate

        plan = translate(argv)
        argv = plan.argv if plan is not None else argv
    if plan is not None and plan.indent is not None:
        from secretops.compose import indent_given

        with indent_given(plan.indent):  # sops's global --indent: see Plan.indent
            _run(argv, plan)
    else:
        _run(argv, plan)


def _run(argv: list[str], plan: Plan | None) -> None:
    import gc

    from secretops.cli import _fast

    code = _fast.run(argv)
    if code is not None:
        # Output is complete and files are already fsynced and renamed: skip the interpreter's
        # teardown of every imported module (~10 ms, a large share of a small decrypt).
        if not _flushed():  # e.g. the reader of a pipe went away
            code = code or int(_fast.OUTPUT_FAILED)
        os._exit(code)
    gc.enable()
    from secretops.cli.app import cli

    if plan is not None and plan.mode:
        from secretops.cli._globalmode import check_supported

        check_supported(plan, cli.commands[argv[0]])
    if argv[:1] and argv[0] in _QUICK_EXIT:
        try:
            cli(args=argv, prog_name="secretops")
        except SystemExit as e:
            _exit_now(e)
            raise
    cli(args=argv, prog_name="secretops")


# The file commands (and their many-file forms): when click's command returns, their output is
# written and every file they changed is in place.
_QUICK_EXIT = frozenset({"check", "decrypt", "encrypt", "rotate", "updatekeys"})


def _exit_now(e: SystemExit) -> None:
    """End the process as Python's exit would — threads done, atexit handlers run, standard
    streams flushed — without then tearing down every module and object one by one (after a
    run over a thousand files, a noticeable part of its start-up and exit). Returns, for the
    caller to re-raise, on anything unusual: a status that is not a number (Python prints it),
    a thread still running, streams that cannot be flushed (Python reports it)."""
    code = e.code
    if code is not None and not isinstance(code, int):
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    if not _flushed():
        return
    import atexit

    atexit._run_exitfuncs()
    os._exit((code or 0) if _flushed() else 120)  # 120: Python's status when it cannot flush


def _flushed() -> bool:
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # the reader of a pipe went away, a stream was closed
        return False
    return True

