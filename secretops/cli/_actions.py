"""What ``encrypt`` and ``decrypt`` do, free of click so the fast path can call it too."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from secretops.errors import ExitCode, SecretOpsError


def report(err: SecretOpsError) -> int:
    """Print an error the CLI way (one line, then hints) and return its exit code."""
    lines = [f"secretops: error: {err}"] + [f"secretops: hint: {h}" for h in err.hints]
    sys.stderr.write("\n".join(lines) + "\n")
    return int(err.code)


def env_with(order: str | None, keyservice: Sequence[str] = (),
             enable_local_keyservice: bool | None = None) -> Mapping[str, str]:
    """The environment the library reads keys from, with ``--decryption-order``,
    ``--keyservice`` and ``--enable-local-keyservice`` in it as the variables sops reads them
    from (a flag replaces its variable, as in sops), checked now — before any file is read, as
    sops checks them. A ``--keyservice`` value that is not a URL is skipped with a warning."""
    import os

    from secretops.keys import decryption_order
    from secretops.keyservice import ENV_LOCAL, ENV_SERVICES, configured, settings

    env: Mapping[str, str] = os.environ
    if order or keyservice or enable_local_keyservice is not None:
        env = dict(os.environ)
        if order:
            env["SOPS_DECRYPTION_ORDER"] = order
        if keyservice:
            env[ENV_SERVICES] = ",".join(keyservice)
        if enable_local_keyservice is not None:
            env[ENV_LOCAL] = "true" if enable_local_keyservice else "false"
    decryption_order(env)
    if configured(env):
        for uri in settings(env).skipped:
            sys.stderr.write(f"secretops: warning: key service {uri!r} is not a URL "
                             "(tcp://HOST:PORT, unix:///PATH): skipped\n")
    return env


def check_io(file: str, in_place: bool, output: str | None) -> None:
    if in_place and output:
        raise SecretOpsError("--in-place and --output cannot be used together",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    if in_place and file == "-":
        raise SecretOpsError("--in-place needs a file, not standard input",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    if file == "-" and sys.stdin.isatty():
        raise SecretOpsError("no file given (and standard input is a terminal)",
                             code=ExitCode.NO_FILE_SPECIFIED)


def write_result(data: bytes, file: str, in_place: bool, output: str | None,
                 *, private: bool) -> None:
    """Write to the file in place, to --output, or to stdout (rules: :mod:`secretops.fileio`).

    New files holding plaintext are created 0600; new encrypted files follow the umask.
    """
    from secretops.fileio import write_file

    if in_place:
        write_file(file, data, private=private, rewrite=True)
        return
    if output:
        write_file(output, data, private=private)
        return
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def _name(file: str, filename_override: str | None) -> str | None:
    if filename_override:
        return filename_override
    return None if file == "-" else file


def run_decrypt(file: str = "-", *, in_place: bool = False, output: str | None = None,
                input_type: str | None = None, output_type: str | None = None,
                filename_override: str | None = None, config_path: str | None = None,
                extract: str | None = None, ignore_mac: bool = False,
                decryption_order: str | None = None, keyservice: Sequence[str] = (),
                enable_local_keyservice: bool | None = None) -> None:
    from secretops import api
    from secretops.fileio import read_input

    check_io(file, in_place, output)
    name = _name(file, filename_override)
    env = env_with(decryption_order, keyservice, enable_local_keyservice)
    try:
        data = read_input(file, rewrite=in_place)
        result = api.decrypt(
            data, format=input_type, output_format=output_type, filename=name,
            ignore_mac=ignore_mac, extract_path=extract, config=config_path, env=env,
        )
        write_result(result, file, in_place, output, private=True)
    except SecretOpsError as e:
        raise e.with_file(file if file != "-" else (name or "<stdin>")) from None


def run_encrypt(file: str = "-", *, in_place: bool = False, output: str | None = None,
                input_type: str | None = None, output_type: str | None = None,
                filename_override: str | None = None, config_path: str | None = None,
                mac_only_encrypted: bool | None = None, shamir: int = 0,
                keyservice: Sequence[str] = (), enable_local_keyservice: bool | None = None,
                **options: Any) -> None:
    """``encrypt``; ``options`` are the key sources' flags and settings (``age``, ``kms``,
    ``encryption_context`` …) and the selection rules, as keywords."""
    from secretops import api
    from secretops.fileio import read_input

    check_io(file, in_place, output)
    name = _name(file, filename_override)
    env = env_with(None, keyservice, enable_local_keyservice)
    try:
        data = read_input(file, rewrite=in_place)
        result = api.encrypt(
            data, format=input_type, output_format=output_type, filename=name,
            shamir_threshold=shamir,
            mac_only_encrypted=mac_only_encrypted or None, config=config_path, env=env,
            **options,
        )
        write_result(result, file, in_place, output, private=False)
    except SecretOpsError as e:
        raise e.with_file(file if file != "-" else (name or "<stdin>")) from None


def run_textconv(file: str) -> int:
    """Print what git should diff for FILE; never fails in a way that breaks git."""
    import os

    from secretops.fileio import read_bounded
    from secretops.git.textconv import textconv

    try:
        with open(file, "rb") as f:
            data = read_bounded(f)
    except OSError as e:
        sys.stderr.write(f"secretops: error: {file}: cannot read: {e.strerror}\n")
        return 2
    except SecretOpsError as e:
        # git shows nothing of a blob its driver fails on: say why, in place of the text
        sys.stderr.write(f"secretops: error: {e.with_file(file)}\n")
        sys.stdout.write(f"# secretops: cannot show this file: {e.message}\n")
        return 0
    try:
        out = textconv(data, file, os.environ)
    except Exception as e:  # git stops `log -p` at the first failing textconv: never fail it
        from secretops.git.textconv import unreadable

        sys.stderr.write(f"secretops: error: {file}: internal error ({type(e).__name__}) in "
                         "textconv; the file is shown masked\n")
        out = unreadable(data, file, f"internal error ({type(e).__name__})")
    sys.stdout.buffer.write(out)
    return 0
