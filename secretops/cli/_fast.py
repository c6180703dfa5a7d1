"""Start-up fast path: plain ``encrypt``/``decrypt`` invocations without importing click.

Importing click costs more than a whole sops run, and ``decrypt`` is what scripts, CI jobs and
git's textconv driver run over and over. :func:`parse` recognises only well-formed invocations
of the two commands with their ordinary options on one file and returns ``None`` for anything
else — help, unknown or repeated options, missing values, ``--opt=value`` with a bad value,
several files or ``-i`` on a directory (the many-file form) — so click
handles (and reports) those exactly as before. Both paths call :mod:`._actions`.
"""

from __future__ import annotations

from typing import Any

OUTPUT_FAILED = 3  # ExitCode.COULD_NOT_WRITE_OUTPUT, without importing errors here
_COMMON_VALUES = {
    "--output": "output",
    "--input-type": "input_type",
    "--output-type": "output_type",
    "--filename-override": "filename_override",
    "--config": "config_path",
}
_VALUES = {
    "decrypt": {**_COMMON_VALUES, "--extract": "extract",
                "--decryption-order": "decryption_order"},
    "encrypt": {  # and every key source's flags and settings: see _values
        **_COMMON_VALUES,
        "--encrypted-regex": "encrypted_regex",
        "--unencrypted-regex": "unencrypted_regex",
        "--encrypted-suffix": "encrypted_suffix",
        "--unencrypted-suffix": "unencrypted_suffix",
        "--encrypted-comment-regex": "encrypted_comment_regex",
        "--unencrypted-comment-regex": "unencrypted_comment_regex",
    },
}
_FLAGS = {
    "decrypt": {"-i": "in_place", "--in-place": "in_place", "--ignore-mac": "ignore_mac"},
    "encrypt": {"-i": "in_place", "--in-place": "in_place",
                "--mac-only-encrypted": "mac_only_encrypted"},
}


def _values(command: str) -> dict[str, str]:
    """The options taking a value: for ``encrypt`` with the key sources' flags and settings
    (read from their records only then, so a decrypt does not import them)."""
    if command != "encrypt":
        return _VALUES[command]
    from secretops.keys import sources

    keys = {}
    for src in sources():
        keys[f"--{src.flag}"] = src.keyword
        if src.short:
            keys[f"-{src.short}"] = src.keyword
        keys.update((o.flag, o.name) for o in src.options)
    return {**_VALUES[command], **keys}


def parse(argv: list[str]) -> tuple[str, dict[str, Any]] | None:
    if not argv or argv[0] not in _VALUES:
        return None
    command, args = argv[0], argv[1:]
    values, flags = _values(command), _FLAGS[command]
    opts: dict[str, Any] = {}
    files: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name, eq, val = arg.partition("=")
            if name in flags and not eq:
                if flags[name] in opts:
                    return None
                opts[flags[name]] = True
            elif name in values:
                if not eq:
                    i += 1
                    if i >= len(args):
                        return None
                    val = args[i]
                if values[name] in opts:
                    return None
                opts[values[name]] = val
            else:
                return None  # help, --, unknown options: click decides
        else:
            files.append(arg)
        i += 1
    if len(files) > 1:
        return None
    from secretops.stores import FORMATS  # the command imports it anyway

    for key in ("input_type", "output_type"):
        if key in opts and opts[key] not in FORMATS:
            return None
    import os

    if files:
        if opts.get("in_place") and os.path.isdir(files[0]):
            return None  # `-i DIR`: the many-file form, click's
        opts["file"] = files[0]
    if "config_path" not in opts and os.environ.get("SOPS_CONFIG"):
        opts["config_path"] = os.environ["SOPS_CONFIG"]
    return command, opts


SOPS_VERSION = "3.11.0"  # the sops whose command line and file format secretops takes


def version_line() -> str:
    """``--version``'s line. Run under the name ``sops`` (a link to secretops), the line
    begins as sops's does — ``sops 3.11.0`` — so that tools which pick their command lines by
    parsing it (ansible's community.sops: ``^sops X.Y.Z``) use sops 3.11's; else it names
    secretops."""
    import os
    import sys

    from secretops import __version__

    if os.path.basename(sys.argv[0]) == "sops":
        return f"sops {SOPS_VERSION} (secretops {__version__})"
    return f"secretops {__version__} (sops format {SOPS_VERSION.rsplit('.', 1)[0]})"


def run(argv: list[str]) -> int | None:
    """Run a recognised invocation and return its exit code; ``None`` if not recognised."""
    if argv in (["--version"], ["-v"]):  # the same line as click's version option prints
        import sys

        sys.stdout.write(version_line() + "\n")
        return 0
    if len(argv) == 3 and argv[:2] == ["git", "textconv"] and not argv[2].startswith("-"):
        from secretops.cli._actions import run_textconv  # git runs it per file per revision

        return run_textconv(argv[2])
    parsed = parse(argv)
    if parsed is None:
        return None
    from secretops.cli import _actions
    from secretops.errors import ExitCode, SecretOpsError

    command, opts = parsed
    try:
        if command == "decrypt":
            _actions.run_decrypt(**opts)
        else:
            _actions.run_encrypt(**opts)
    except SecretOpsError as e:
        return _actions.report(e)
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("secretops: error: interrupted\n")
        return int(ExitCode.KEYBOARD_INTERRUPT)
    return 0
