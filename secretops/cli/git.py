"""``secretops git …``: setting a git repository up for secretops, and the drivers git runs.

``git setup`` is made of independent parts: the diff (textconv) and merge drivers — git
config plus a managed block in ``.gitattributes`` — by default, and ``--hook``, the pre-commit
hook that runs ``secretops check --staged``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

HOOK_MARKER = "# installed by `secretops git setup --hook`"


def hook_script(python: str) -> str:
    """The pre-commit hook: ``secretops`` from PATH, else the interpreter that installed it."""
    import shlex

    return (
        "#!/bin/sh\n"
        f"{HOOK_MARKER}; run it again to update this file.\n"
        "# Blocks commits of plaintext secrets: see `secretops check --help`.\n"
        "if command -v secretops >/dev/null 2>&1; then\n"
        "    exec secretops check --staged\n"
        "fi\n"
        f"exec {shlex.quote(python)} -m secretops check --staged\n"
    )


@click.group("git")
def group() -> None:
    """Set a git repository up for secretops."""


@group.command("setup")
@click.option("--drivers/--no-drivers", default=True, show_default=True,
              help="Configure the diff (textconv) and merge drivers and write .gitattributes.")
@click.option("--hook", is_flag=True,
              help="Also install a pre-commit hook running 'secretops check --staged' "
                   "(honours core.hooksPath).")
@click.option("--force", is_flag=True,
              help="Replace a pre-commit hook that secretops did not write "
                   "(the old one is kept as pre-commit.bak).")
def setup(drivers: bool, hook: bool, force: bool) -> None:
    """Set the git repository you are in up for secretops.

    By default: git config for the diff driver (git diff / log -p / show display decrypted
    values; cachetextconv stays off so no plaintext is stored in .git) and the merge driver
    (branches that changed different values of one encrypted file merge), and a managed
    block in .gitattributes naming the files, with globs derived from the .sops.yaml
    path_regex rules where they translate, else by extension. --hook also installs the
    pre-commit hook that blocks commits of plaintext secrets; a hook written by anything else
    is left alone unless --force is given. Running it again updates what it wrote.

    \b
      secretops git setup
      secretops git setup --hook
      secretops git setup --no-drivers --hook
    """
    from secretops.cli._actions import report
    from secretops.errors import SecretOpsError

    parts: list[Callable[[bool], str]] = []
    if hook:  # first: a hook in the way stops setup before anything is written
        parts.append(_install_hook)
    if drivers:
        parts.append(_install_drivers)
    if not parts:
        raise click.UsageError("nothing to set up: drop --no-drivers or pass --hook")
    try:
        for part in parts:
            click.echo(part(force))
    except SecretOpsError as e:
        sys.exit(report(e))


def _hooks_dir() -> str:
    """The hooks directory of the repository in the working directory (core.hooksPath aware)."""
    import os
    import subprocess

    from secretops.errors import SecretOpsError

    try:
        p = subprocess.run(["git", "rev-parse", "--git-path", "hooks"], capture_output=True,
                           stdin=subprocess.DEVNULL)
    except OSError as e:
        raise SecretOpsError(f"cannot run git: {e.strerror}") from None
    if p.returncode:
        raise SecretOpsError("not in a git repository",
                             hints=("run this inside the repository to set up",))
    return os.path.abspath(os.fsdecode(p.stdout.rstrip(b"\n")))


def _install_hook(force: bool) -> str:
    import os

    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file

    hooks = _hooks_dir()
    path = os.path.join(hooks, "pre-commit")
    script = hook_script(sys.executable)
    backup = ""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            old: str | None = f.read()
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise SecretOpsError(f"cannot read the existing hook: {e.strerror}", file=path) from None
    if old == script and os.access(path, os.X_OK):
        return f"{path}: the pre-commit hook is already installed"
    if old is not None and HOOK_MARKER not in old:
        if not force:
            raise SecretOpsError(
                "a pre-commit hook that secretops did not write is in the way",
                file=path,
                hints=("add 'secretops check --staged' to that hook yourself, or pass --force "
                       "to replace it (it is kept as pre-commit.bak)",
                       "with the pre-commit framework, use the secretops-check hook instead"),
            )
        backup = path + ".bak"
        os.replace(path, backup)
    try:
        os.makedirs(hooks, exist_ok=True)
        write_file(path, script.encode("utf-8"), private=False, new_mode=0o755)
        os.chmod(path, 0o755)
    except OSError as e:
        raise SecretOpsError(f"cannot write the hook: {e.strerror}", file=path,
                             code=ExitCode.COULD_NOT_WRITE_OUTPUT) from None
    verb = "updated" if old is not None and not backup else "installed"
    saved = f" (the old hook is now {backup})" if backup else ""
    return f"{path}: pre-commit hook {verb}: it runs 'secretops check --staged'{saved}"


ATTR_BEGIN = "# >>> secretops: written by `secretops git setup`; edit the globs as you need"
ATTR_END = "# <<< secretops"


def _command() -> str:
    """How git should call us: ``secretops`` on PATH, else this interpreter's module."""
    import shlex
    import shutil

    if shutil.which("secretops"):
        return "secretops"
    return f"{shlex.quote(sys.executable)} -m secretops"


def _git(*args: str) -> str:
    import subprocess

    from secretops.errors import SecretOpsError

    p = subprocess.run(["git", *args], capture_output=True, stdin=subprocess.DEVNULL)
    if p.returncode:
        raise SecretOpsError(f"git {args[0]} failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout.decode("utf-8", "surrogateescape").rstrip("\n")


def _attribute_globs(top: str) -> list[str]:
    import os

    from secretops.config import find_config, load_config
    from secretops.git.attributes import BROAD, globs_for_rules

    cfg_path = find_config(os.path.join(top, "x"), os.environ)
    if cfg_path is None:
        return list(BROAD)
    cfg = load_config(cfg_path)
    rules = cfg.data.get("creation_rules") or []
    rel = os.path.relpath(cfg.directory, top)
    prefix = "" if rel == "." or rel.startswith("..") else rel.replace(os.sep, "/") + "/"
    regexes = [str(r.get("path_regex")) if isinstance(r, dict) and r.get("path_regex") else None
               for r in rules]
    return globs_for_rules(regexes or [None], prefix)


def _install_drivers(force: bool) -> str:
    import os

    from secretops.fileio import write_file

    _hooks_dir()  # fails clearly outside a repository
    top = _git("rev-parse", "--show-toplevel")
    cmd = _command()
    for key, value in (
        ("diff.secretops.textconv", f"{cmd} git textconv"),
        ("diff.secretops.cachetextconv", "false"),
        ("merge.secretops.name", "secretops: merge encrypted files value by value"),
        ("merge.secretops.driver", f"{cmd} git merge-driver %O %A %B %P %L"),
    ):
        _git("config", "--local", key, value)
    globs = _attribute_globs(top)
    block = [ATTR_BEGIN] + [f"{g} diff=secretops merge=secretops" for g in globs] + [ATTR_END]
    path = os.path.join(top, ".gitattributes")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    if ATTR_BEGIN in lines and ATTR_END in lines[lines.index(ATTR_BEGIN):]:
        start = lines.index(ATTR_BEGIN)
        end = lines.index(ATTR_END, start)
        lines[start:end + 1] = block
    else:
        lines += ([""] if lines and lines[-1].strip() else []) + block
    write_file(path, ("\n".join(lines) + "\n").encode("utf-8"), private=False, new_mode=0o644)
    return (f"{top}: diff and merge drivers configured (git config --local), "
            f".gitattributes: {', '.join(globs)}; commit .gitattributes so others get it too "
            "(each clone runs 'secretops git setup' once for the config)")


from secretops.cli.gitdrivers import merge_driver_command, textconv_command  # noqa: E402

group.add_command(textconv_command)
group.add_command(merge_driver_command)
