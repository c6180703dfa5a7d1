"""``secretops log``: ``git log`` with encrypted files shown decrypted, in one process.

It takes a defined subset of ``git log``'s options (see :data:`PASSED` and the command's
help); anything else is refused with one line, so nothing reaches git that could change the
shape of its output. Pager and colour follow git's rules: the pager (``$GIT_PAGER``,
``pager.log``, ``core.pager``, ``$PAGER``, else ``less`` with ``LESS=FRX``) only when standard
output is a terminal; colour by ``--color``, else ``NO_COLOR``, ``color.diff``, ``color.ui``,
on a terminal by default.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import IO, Any

import click

from secretops.errors import ExitCode, SecretOpsError

_CONFIG = (r"^(color\.(ui|diff|pager)|core\.pager|pager\.log|log\.decorate"
           r"|diff\.(context|interhunkcontext))$")
_FALSE = ("false", "no", "off", "0")
_TRUE = ("true", "yes", "on", "1")
_PATHS = "secretops.log.paths"


class _LogCommand(click.Command):
    """Splits off ``-- PATHS``, reads git's ``-N``, and refuses unknown options in one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            args, ctx.meta[_PATHS] = args[:cut], args[cut + 1:]
        args = [f"--max-count={a[1:]}" if re.fullmatch(r"-[0-9]+", a) else a for a in args]
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as e:
            raise SecretOpsError(
                f"log: {e.option_name} is not one of the git log options secretops log takes "
                "(see secretops log --help; run git log for the others)",
                code=ExitCode.CONFLICTING_PARAMETERS) from None
        except click.BadParameter as e:
            raise SecretOpsError(f"log: {e.format_message()}",
                                 code=ExitCode.CONFLICTING_PARAMETERS) from None


@click.command("log", cls=_LogCommand, context_settings={"ignore_unknown_options": False})
@click.option("-p", "-u", "--patch", "patch", flag_value=True, default=None,
              help="Show each commit's changes, encrypted files decrypted.")
@click.option("-s", "--no-patch", "patch", flag_value=False, help="Show no changes.")
@click.option("-n", "--max-count", type=click.IntRange(min=0), help="At most N commits (-N).")
@click.option("--skip", type=click.IntRange(min=0), help="Skip N commits first.")
@click.option("--since", "--after", "since", help="Commits after DATE.")
@click.option("--until", "--before", "until", help="Commits before DATE.")
@click.option("--author", multiple=True, help="Commits by authors matching PATTERN.")
@click.option("--committer", multiple=True, help="Commits by committers matching PATTERN.")
@click.option("--grep", multiple=True, help="Commits whose message matches PATTERN.")
@click.option("--follow", is_flag=True, help="Follow one file through renames.")
@click.option("--reverse", is_flag=True, help="Oldest commits first.")
@click.option("--first-parent", is_flag=True, help="Follow only the first parent of merges.")
@click.option("--no-merges", is_flag=True, help="Leave out merge commits.")
@click.option("--all", "all_refs", is_flag=True, help="Every ref, not only HEAD.")
@click.option("--oneline", is_flag=True, help="One line per commit header.")
@click.option("--pretty", type=click.Choice(["oneline", "short", "medium", "full", "fuller"]),
              help="A named header format (no custom formats).")
@click.option("--date", help="Date format of the headers (git's --date).")
@click.option("--decorate", is_flag=False, flag_value="short",
              type=click.Choice(["short", "full", "auto", "no"]), help="Show ref names.")
@click.option("--no-decorate", is_flag=True, help="Show no ref names.")
@click.option("-U", "--unified", type=click.IntRange(min=0), help="Lines of context.")
@click.option("--color", is_flag=False, flag_value="always",
              type=click.Choice(["always", "auto", "never"]), help="Colour (WHEN).")
@click.option("--no-color", is_flag=True, help="No colour.")
@click.option("--no-pager", is_flag=True, help="Never start a pager.")
@click.option("--trailer/--no-trailer", default=True, show_default=True,
              help="List each version's master keys under it, as 'secretops git textconv' "
                   "does; --no-trailer prints the plaintext alone, as 'sops decrypt' does.")
@click.argument("revisions", nargs=-1)
@click.pass_context
def command(ctx: click.Context, /, patch: bool | None, revisions: tuple[str, ...],
            trailer: bool, no_pager: bool, **opts: Any) -> None:
    """The git history with encrypted files decrypted: git log [-p] [REVISIONS] [-- PATHS].

    With -p, each commit's changes are shown as `git log -p` shows them with the
    secretops textconv driver (`secretops git setup`), without setup and in one process:
    versions are read with one `git cat-file --batch`, and a data key is unwrapped once for
    all the versions it opens. Versions no key opens are shown with values masked as
    ENC[type hash] (a hash of the ciphertext), with a note on stderr; the exit code stays 0.
    Other files are shown as git shows them.

    Only the options listed here are passed to git; any other is refused.

    \b
      secretops log -p -- secrets/prod.enc.yaml
      secretops log -p -3 --since=2.weeks main -- secrets/
      secretops log -p --follow -- secrets/db.enc.yaml
    """
    paths: list[str] = ctx.meta.get(_PATHS, [])
    config = _git_config()
    tty = sys.stdout.isatty()
    pager = None if no_pager or not tty else _pager(config)
    color = _color(opts.pop("color"), opts.pop("no_color"), config, tty, pager is not None)
    git_args = _git_args(opts, revisions, paths, tty, config)
    if not patch:
        sys.exit(_plain_log(git_args, color, pager is None))
    from secretops.git.history import Options

    context = opts["unified"] if opts["unified"] is not None else _int(config, "diff.context", 3)
    options = Options(context=context, inter_hunk=_int(config, "diff.interhunkcontext", 0),
                      color=color, trailer=trailer)
    summary = _paged(pager, git_args, options)
    if summary.masked:
        files = len(summary.masked_files)
        click.echo(f"secretops: note: no key opened {summary.masked} version"
                   f"{'s' if summary.masked != 1 else ''} of {files} file"
                   f"{'s' if files != 1 else ''}; their values are shown masked as "
                   "ENC[type hash]", err=True)


def _git_args(opts: dict[str, Any], revisions: tuple[str, ...], paths: list[str], tty: bool,
              config: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for name in ("max_count", "skip", "since", "until", "pretty", "date", "unified"):
        if opts[name] is not None:
            args.append(f"--{name.replace('_', '-')}={opts[name]}")
    for name in ("author", "committer", "grep"):
        args += [f"--{name}={v}" for v in opts[name]]
    for name in ("follow", "reverse", "first_parent", "no_merges", "oneline", "no_decorate"):
        if opts[name]:
            args.append(f"--{name.replace('_', '-')}")
    if opts["all_refs"]:
        args.append("--all")
    # git's "auto" decides on its own output, which is a pipe here: decide on ours
    decorate = opts["decorate"] or ("" if opts["no_decorate"] else config.get("log.decorate"))
    if decorate in (None, "auto"):
        decorate = "short" if tty else "no"
    elif decorate.lower() in _TRUE + _FALSE:  # log.decorate may be a boolean
        decorate = "short" if decorate.lower() in _TRUE else "no"
    if decorate:
        args.append(f"--decorate={decorate}")
    return [*args, *revisions, "--", *paths]


def _git_config() -> dict[str, str]:
    """The settings that shape the output, read in one ``git config`` call."""
    try:
        p = subprocess.run(["git", "config", "-z", "--get-regexp", _CONFIG],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, str] = {}
    for item in p.stdout.split(b"\0"):
        key, _, value = item.decode("utf-8", "replace").partition("\n")
        if key:
            found[key.lower()] = value
    return found


def _int(config: Mapping[str, str], key: str, default: int) -> int:
    value = config.get(key, "")
    return int(value) if value.isdigit() else default


def _pager(config: Mapping[str, str]) -> str | None:
    """git's choice of pager (``git_pager``), None for none."""
    per_command = config.get("pager.log")
    if per_command is not None and per_command.lower() in _FALSE:
        return None
    pager = os.environ.get("GIT_PAGER")
    if pager is None:
        pager = (per_command if per_command is not None and per_command.lower() not in _TRUE
                 else config.get("core.pager"))
    if pager is None:
        pager = os.environ.get("PAGER")
    if pager is None:
        pager = "less"
    return None if not pager.strip() or pager.strip() == "cat" else pager


def _color(flag: str | None, no_color: bool, config: Mapping[str, str], tty: bool,
           paging: bool) -> bool:
    if no_color:
        return False
    when = flag
    if when is None and os.environ.get("NO_COLOR"):
        return False
    if when is None:
        setting = config.get("color.diff", config.get("color.ui", "auto")).lower()
        when = ("always" if setting == "always" else
                "never" if setting in ("never", *_FALSE) else "auto")
    if when != "auto":
        return when == "always"
    if paging and config.get("color.pager", "true").lower() in _FALSE:
        return False
    return tty and os.environ.get("TERM") != "dumb"


def _plain_log(git_args: list[str], color: bool, no_pager: bool) -> int:
    """Without -p nothing is decrypted: git prints the log itself."""
    argv = ["git", *(["--no-pager"] if no_pager else []), "log",
            f"--color={'always' if color else 'never'}", *git_args]
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as e:
        raise SecretOpsError(f"cannot run git: {e.strerror}") from None


def _paged(pager: str | None, git_args: list[str], options: Any) -> Any:
    from secretops.git.history import write_log

    def warn(message: str) -> None:
        sys.stderr.write(f"secretops: warning: {message}\n")
        sys.stderr.flush()

    if pager is None:
        out: IO[bytes] = sys.stdout.buffer
        try:
            return write_log(git_args, out, env=os.environ, options=options, warn=warn)
        except BrokenPipeError:  # e.g. `| head`: the reader has all it wanted
            _quiet_stdout()
            sys.exit(0)
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    try:
        proc = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError as e:
        raise SecretOpsError(f"cannot start the pager: {e.strerror}") from None
    assert proc.stdin is not None
    try:
        return write_log(git_args, proc.stdin, env=os.environ, options=options, warn=warn)
    except BrokenPipeError:  # the pager was quit before the end
        from secretops.git.history import Summary

        return Summary()
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
