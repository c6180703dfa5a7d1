"""sops's global mode and global options, mapped onto secretops's subcommands.

sops 3.11 still takes the command lines that predate its subcommands, and scripts, CI files and
blog posts are full of them::

    sops -d secret.enc.yaml | kubectl apply -f -
    sops -e -i secret.yaml
    sops -r -i --add-age age1... secret.enc.yaml
    sops --set '["data"]["pw"] "s3cret"' secret.enc.yaml
    sops secret.enc.yaml                       # opens the editor

as well as options before a subcommand (``sops --config ci/.sops.yaml decrypt f``). Its parser
(urfave/cli v1 over Go's ``flag``) reads options up to the first argument that is not one:
``-x`` and ``--x`` alike, ``--x=v``, a value option takes the next argument whatever it looks
like, ``--`` ends the options, short options do not combine (``-di`` is an unknown option). The
first argument left then names a subcommand, or it is the FILE of the global mode; sops ignores
everything after FILE (with a warning), so ``sops FILE -d`` opens the editor. We do the same.

:func:`translate` turns such an argv into the subcommand form (``-d --output o FILE`` →
``decrypt --output o FILE``) after the checks sops makes in that mode, so each behaviour lives
in one place: the subcommand. Which global option each mode reads is sops's (``cmd/sops/
main.go``); one that a mode does not read is dropped, as sops drops it. Before a subcommand
sops reads only ``--config`` (and ``--verbose``, for ``publish`` and ``keyservice``); it accepts
and ignores the others there, and so do we, with a warning. An argv that starts with a
subcommand is never translated: :func:`secretops.cli.main` does not even import this module
then (start-up is a feature), and ``decrypt`` stays on the click-free fast path
(:mod:`._fast`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from secretops.cli import COMMANDS  # every command name (sops's help/h too)

if TYPE_CHECKING:
    import click

USAGE = 2  # click's exit status for a usage error; docs/exit-codes.md says why not sops's 1

_BOOL, _STR, _INT, _LIST = range(4)
# Modes: e encrypt, d decrypt, r rotate, s set, E edit an existing file, N edit a new one.
_NEW = "eN"  # what makes a new document: key flags, selection rules, Shamir threshold
_COMMAND = {"e": "encrypt", "d": "decrypt", "r": "rotate", "s": "set", "E": "edit",
            "N": "edit"}
_LABEL = {"e": "-e/--encrypt", "d": "-d/--decrypt", "r": "-r/--rotate", "s": "--set",
          "E": "sops FILE (edit)", "N": "sops FILE (edit)"}


class _Opt(NamedTuple):
    kind: int
    modes: str = ""  # the modes that read it
    target: str | None = None  # the subcommand option it becomes


_KEY = _Opt(_STR, _NEW, "")  # target "" = its own name
# sops 3.11's global options (`sops --help`), in its order. Aliases are below.
OPTIONS: dict[str, _Opt] = {
    "decrypt": _Opt(_BOOL), "encrypt": _Opt(_BOOL), "rotate": _Opt(_BOOL),
    "disable-version-check": _Opt(_BOOL), "check-for-updates": _Opt(_BOOL),
    "kms": _KEY, "aws-profile": _Opt(_STR, _NEW + "r", ""), "gcp-kms": _KEY, "hckms": _KEY,
    "azure-kv": _KEY, "hc-vault-transit": _KEY, "pgp": _KEY, "age": _KEY,
    "in-place": _Opt(_BOOL, "edr", "--in-place"),
    "extract": _Opt(_STR, "d", ""),
    "input-type": _Opt(_STR, "edrsEN", ""), "output-type": _Opt(_STR, "edrsEN", ""),
    "show-master-keys": _Opt(_BOOL, "EN", "--show-master-keys"),
    **{f"{op}-{src}": _Opt(_STR, "r", "") for src in (
        "gcp-kms", "hckms", "azure-kv", "kms", "hc-vault-transit", "age", "pgp")
       for op in ("add", "rm")},
    "ignore-mac": _Opt(_BOOL, "drsE", "--ignore-mac"),
    "mac-only-encrypted": _Opt(_BOOL, _NEW, "--mac-only-encrypted"),
    **{f"{k}-{what}": _Opt(_STR, _NEW, "") for what in ("suffix", "regex", "comment-regex")
       for k in ("unencrypted", "encrypted")},
    "config": _Opt(_STR),  # read in every mode and before every subcommand: see translate
    "encryption-context": _Opt(_STR, _NEW + "r", ""),
    "set": _Opt(_STR),
    "shamir-secret-sharing-threshold": _Opt(_INT, _NEW, ""),
    "indent": _Opt(_INT, "edrsEN"),  # no subcommand takes it: see Plan.indent
    "verbose": _Opt(_BOOL),  # sops's debug log; secretops has none
    "output": _Opt(_STR, "edr", ""),
    "filename-override": _Opt(_STR, "edrsEN", ""),
    "decryption-order": _Opt(_STR, "drsE", ""),
    "enable-local-keyservice": _Opt(_BOOL),  # true by default: the local keys are used
    "keyservice": _Opt(_LIST, "edrsEN", ""),
    "help": _Opt(_BOOL), "version": _Opt(_BOOL),
}
ALIASES = {"d": "decrypt", "e": "encrypt", "r": "rotate", "k": "kms", "p": "pgp", "a": "age",
           "i": "in-place", "s": "show-master-keys", "h": "help", "v": "version"}
_NO_EFFECT = {"disable-version-check", "check-for-updates", "verbose", "config",
              "enable-local-keyservice"}


class Plan(NamedTuple):
    """The subcommand argv to run, and the options the translation put in it (checked against
    the subcommand by :func:`check_supported` before click runs it).

    ``indent`` is ``--indent``, which sops reads in every mode of the global form and refuses
    after a subcommand; so it is not a subcommand option here either: the caller runs the
    subcommand inside :func:`secretops.compose.indent_given`.
    """

    argv: list[str]
    options: tuple[str, ...] = ()
    mode: str = ""
    indent: int | None = None


class _UsageError(Exception):
    pass


def translate(argv: list[str]) -> Plan | None:
    """The subcommand form of a global-mode ``argv``, or None when ``argv`` already is one.

    What sops refuses in that mode exits here with its message and code (:mod:`secretops.
    errors`), a malformed option with :data:`USAGE`.
    """
    if argv and (argv[0] in COMMANDS and argv[0] not in ("help", "h")):
        return None
    try:
        values, typed, rest = _parse(argv)
    except _UsageError as e:
        sys.stderr.write(f"secretops: error: {e}\nsecretops: hint: see secretops --help and "
                         "docs/sops-compat.md\n")
        raise SystemExit(USAGE) from None
    if values.get("help"):
        return Plan(["--help"])
    if values.get("version"):
        return Plan(["--version"])
    if values.get("config"):
        # sops reads --config (or $SOPS_CONFIG) wherever it loads a config: in every mode
        # and in every subcommand. Through the variable, every command of ours sees it too.
        os.environ["SOPS_CONFIG"] = str(values["config"])
    if rest and rest[0] in COMMANDS:
        return _subcommand(values, typed, rest)
    from secretops.cli._actions import report
    from secretops.errors import SecretOpsError

    try:
        return _global_mode(values, rest)
    except SecretOpsError as e:
        raise SystemExit(report(e)) from None


def _parse(argv: list[str]) -> tuple[dict[str, object], dict[str, str], list[str]]:
    """Go's ``flag`` rules (see the module docstring): the values by long name, the name each
    was typed as, and the arguments after the options."""
    values: dict[str, object] = {}
    typed: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        i += 1
        if arg == "--":
            break
        name = arg[2:] if arg[1] == "-" else arg[1:]
        if not name or name[0] in "-=":
            raise _UsageError(f"bad flag syntax: {arg}")
        name, eq, value = name.partition("=")
        long = ALIASES.get(name, name)
        opt = OPTIONS.get(long)
        if opt is None:
            raise _UsageError(f"flag provided but not defined: -{name}")
        typed[long] = arg.partition("=")[0]
        if opt.kind == _BOOL:
            values[long] = _bool(value, name) if eq else True
            continue
        if not eq:
            if i == len(argv):
                raise _UsageError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if opt.kind == _INT:
            try:
                value = str(go_int(value))  # the subcommand reads it as a decimal
            except ValueError:
                raise _UsageError(f'invalid value "{value}" for flag -{name}') from None
        if opt.kind == _LIST:
            values.setdefault(long, [])
            values[long].append(value)  # type: ignore[attr-defined]
        else:
            values[long] = value
    return values, typed, argv[i:]


def go_int(text: str) -> int:
    """An int flag's value as Go's ``strconv.ParseInt(text, 0, 64)`` reads it: a ``0x``,
    ``0o``, ``0b`` prefix or a leading ``0`` (octal) picks the base, ``_`` may separate
    digits, nothing else is allowed around them; ValueError otherwise."""
    sign, digits = ("-" if text[:1] == "-" else ""), text[1:] if text[:1] in "+-" else text
    # ASCII digits, letters (a base prefix, hex digits) and "_" only: int() allows more
    if not (digits[:1].isdigit() and digits.isascii() and digits.replace("_", "").isalnum()):
        raise ValueError(text)
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXoObB":
        digits = "0o" + digits[1:]  # Go's octal without the o
    value = int(sign + digits, 0)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def _bool(value: str, name: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise _UsageError(f'invalid boolean value "{value}" for -{name}')


def _subcommand(values: dict[str, object], typed: dict[str, str], rest: list[str]) -> Plan:
    """``[options] COMMAND …``: sops reads only --config there (handled by the caller); the
    other options are accepted and ignored, as sops does, with a warning."""
    command = rest[0]
    if command in ("help", "h"):  # sops's `help [COMMAND]`
        rest = [*rest[1:2], "--help"]
        command = rest[0]
    for long, value in values.items():
        if long not in _NO_EFFECT and value not in (False, ""):
            where = (f"give it after {command!r}" if long != "indent" else  # no subcommand has it
                     "only the global form reads it (secretops --indent N -d FILE)")
            _warn(f"{typed[long]} before the subcommand is ignored (as sops ignores it); {where}")
    return Plan(rest)


def _global_mode(values: dict[str, object], rest: list[str]) -> Plan:
    from secretops.errors import ExitCode, SecretOpsError

    if not rest:
        raise SecretOpsError("no file specified", code=ExitCode.NO_FILE_SPECIFIED,
                             hints=("give a FILE, or a subcommand: see secretops --help",))
    file, ignored = rest[0], rest[1:]
    if ignored:
        _warn("more than one positional argument; only the first one is used")
        flags = [a for a in ignored if a.startswith("-")]
        if flags:
            _warn(f"{flags[-1]!r} after the file name is ignored: sops reads flags only "
                  "before the file name")
    modes = [m for m, on in (("e", values.get("encrypt")), ("d", values.get("decrypt")),
                             ("r", values.get("rotate")), ("s", values.get("set"))) if on]
    if values.get("in-place") and values.get("output"):
        raise SecretOpsError("--in-place and --output cannot be used together",
                             code=ExitCode.CONFLICTING_PARAMETERS)
    if not os.path.exists(file):
        if any(values.get(k) for k in OPTIONS if k.startswith(("add-", "rm-"))):
            raise SecretOpsError("cannot add or remove keys on a file that does not exist",
                                 code=ExitCode.CANNOT_CHANGE_KEYS_FROM_NON_EXISTENT_FILE, file=file,
                                 hints=("to make a new file, give its keys with --age, "
                                        "--pgp, --kms …",))
        if set(modes) & set("edr"):
            raise SecretOpsError("cannot operate on a file that does not exist",
                                 code=ExitCode.NO_FILE_SPECIFIED, file=file)
    if len(modes) > 1:
        raise SecretOpsError(
            "give one of --encrypt, --decrypt, --rotate and --set",
            code=ExitCode.CONFLICTING_PARAMETERS,
            hints=("sops runs each and shows only the last one's result, a behaviour it "
                   "calls deprecated; secretops refuses it",))
    mode = modes[0] if modes else ("E" if os.path.exists(file) else "N")
    name = str(values.get("filename-override") or file)
    if mode in "rsE":  # sops loads the creation rule in every mode but decrypt
        _check_rule(file, name)
    argv, options = [_COMMAND[mode]], []
    for long, value in values.items():
        opt = OPTIONS[long]
        if mode not in opt.modes or opt.target is None or value in (False, ""):
            continue
        flag = opt.target or f"--{long}"
        options.append(flag)
        if opt.kind == _BOOL:
            argv.append(flag)
        else:
            for v in value if isinstance(value, list) else [value]:
                argv += [flag, str(v)]
    if values.get("enable-local-keyservice") is False:  # sops: remote key services only
        argv.append("--enable-local-keyservice=false")
        options.append("--enable-local-keyservice=false")
    if file.startswith("-"):
        file = os.path.join(".", file)  # a file, not an option nor standard input
    indent = int(str(values["indent"])) if "indent" in values else None
    if mode == "s":
        argv += ["--", file, *_set_arguments(str(values["set"]))]
    else:
        argv.append(file)
    return Plan(argv, tuple(options), mode, indent)


def _check_rule(file: str, name: str) -> None:
    """As sops: where a config is found, a rule must match the file — even to rotate, set or
    edit an existing file, which the subcommands do not ask."""
    from secretops.compose import load_config_for

    config = load_config_for(name, os.environ)
    if config is not None:
        config.rule_for(name)


def _set_arguments(arg: str) -> list[str]:
    """``--set 'PATH VALUE'`` as sops splits it: at the first ``"] "``."""
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileops import parse_tree_path

    path, sep, value = arg.partition("] ")
    path = (path + "]").rstrip(" ")
    try:
        if not sep:
            raise SecretOpsError("")
        parse_tree_path(path)
    except SecretOpsError:
        raise SecretOpsError("invalid --set format", code=ExitCode.INVALID_SET_FORMAT,
                             hints=("""the form is --set '["key"]["sub"] JSON-VALUE'""",)
                             ) from None
    return [path, value]


def check_supported(plan: Plan, command: click.Command) -> None:
    """Refuse, in one line, an option that sops reads in this mode but the subcommand of ours
    does not take yet (rather than click's usage text for a command the user never typed)."""
    declared = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    missing = [f"{o} with {_LABEL[plan.mode]}" for o in plan.options
               if o.partition("=")[0] not in declared]  # --enable-local-keyservice=false
    if plan.mode == "r" and "--output" not in declared and "--in-place" not in plan.options:
        # sops prints the rotated file and leaves FILE alone; a rotate that cannot print
        # would rewrite FILE instead, a surprise in a script
        missing.append("-r/--rotate without -i (printing the rotated file)")
    if missing:
        sys.stderr.write(f"secretops: error: {missing[0]} is not supported by secretops yet\n"
                         "secretops: hint: see docs/sops-compat.md\n")
        raise SystemExit(USAGE)


def _warn(message: str) -> None:
    sys.stderr.write(f"secretops: warning: {message}\n")
