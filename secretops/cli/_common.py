"""Click options shared by the file-transforming subcommands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from secretops.stores import FORMATS

FORMAT_CHOICE = click.Choice(FORMATS)


def io_options(f: Callable[..., Any], *, many: bool = False) -> Callable[..., Any]:
    """Options every file-transforming command shares with sops. ``many``: the argument is
    ``files`` (any number), for commands with a many-file form."""
    argument = (click.argument("files", nargs=-1, metavar="[FILE]...") if many
                else click.argument("file", required=False, default="-"))
    for opt in reversed(
        [
            argument,
            click.option("-i", "--in-place", is_flag=True, help="Write the result back to FILE."),
            click.option("--output", metavar="PATH", help="Write the result to PATH."),
            click.option("--input-type", type=FORMAT_CHOICE,
                         help="Input format (default: from the file name)."),
            click.option("--output-type", type=FORMAT_CHOICE,
                         help="Output format (default: the input format)."),
            click.option("--filename-override", metavar="NAME",
                         help="Use NAME to pick the format and the .sops.yaml rule "
                              "(for standard input)."),
            click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
                         help="The .sops.yaml to use (default: searched upwards)."),
        ]
    ):
        f = opt(f)
    return f


def key_flags(mode: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every registered key source's flags (:mod:`secretops.keys`), in registry order.

    ``encrypt``: ``--age`` (``-a``, as sops) … with each source's settings
    (``--encryption-context`` …); ``edit``: the same, for a new file; ``rotate``: ``--add-*``
    and ``--rm-*`` (each repeatable) and the settings, which apply to added keys.
    """
    from secretops.keys import sources

    opts: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = []
    for src in sources():
        if mode == "rotate":
            opts.append(click.option(f"--add-{src.flag}", f"add_{src.keyword}", multiple=True,
                                     metavar="LIST",
                                     help=f"Add these {src.help} (comma-separated)."))
            opts.append(click.option(f"--rm-{src.flag}", f"rm_{src.keyword}", multiple=True,
                                     metavar="LIST",
                                     help=f"Remove these {src.help} (comma-separated)."))
        else:
            names = [f"--{src.flag}", *([f"-{src.short}"] if src.short else [])]
            what = (f"{src.help[:1].upper()}{src.help[1:]} for a new file." if mode == "edit"
                    else f"Comma-separated {src.help}. Default: ${src.env}, then .sops.yaml.")
            opts.append(click.option(*names, src.keyword, metavar=src.metavar, help=what))
        opts += [click.option(o.flag, o.name, metavar=o.metavar,
                              help=o.rotate_help if mode == "rotate" else o.help)
                 for o in src.options]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(opts):
            f = opt(f)
        return f

    return decorate


def decryption_order(f: Callable[..., Any]) -> Callable[..., Any]:
    """sops's ``--decryption-order`` (``$SOPS_DECRYPTION_ORDER``), on every command that
    decrypts."""
    return click.option(
        "--decryption-order", "decryption_order", metavar="KINDS",
        envvar="SOPS_DECRYPTION_ORDER",
        help="Comma-separated key types to try first when decrypting (default: age,pgp).")(f)



def selection_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """sops's selection rules for a new encrypted file (``encrypt``, ``edit``)."""
    for opt in reversed([
        click.option("--encrypted-regex", metavar="RE", help="Encrypt only keys matching RE."),
        click.option("--unencrypted-regex", metavar="RE", help="Leave keys matching RE in clear."),
        click.option("--encrypted-suffix", metavar="S", help="Encrypt only keys ending in S."),
        click.option("--unencrypted-suffix", metavar="S",
                     help="Leave keys ending in S in clear (default: _unencrypted)."),
        click.option("--encrypted-comment-regex", metavar="RE",
                     help="Encrypt values after a comment matching RE."),
        click.option("--unencrypted-comment-regex", metavar="RE",
                     help="Leave values after a comment matching RE in clear."),
    ]):
        f = opt(f)
    return f


class GoBool(click.ParamType):  # type: ignore[type-arg]
    """A boolean as Go's ``strconv.ParseBool`` reads it (sops's flags): 1/0, t/f, true/false
    in three cases."""

    name = "bool"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> bool:
        from secretops.keyservice import parse_bool

        if isinstance(value, bool):
            return value
        parsed = parse_bool(str(value))
        if parsed is None:
            self.fail(f"invalid boolean value {value!r}", param, ctx)
        return parsed


# The bare flag means true; click cannot read both --flag and --flag=false on one option, so
# the group rewrites a bare one (see app._Group.parse_args).
ENABLE_LOCAL_KEYSERVICE = "--enable-local-keyservice"


def keyservice_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """sops's ``--keyservice`` (repeatable; ``$SOPS_KEYSERVICE``) and
    ``--enable-local-keyservice[=BOOL]`` (default true; ``$SOPS_ENABLE_LOCAL_KEYSERVICE``), on
    every command sops has them (see :mod:`secretops.keyservice`)."""
    for opt in reversed([
        click.option("--keyservice", "keyservice", multiple=True, metavar="URI",
                     help="Also ask the key service at URI (tcp://HOST:PORT, unix:///PATH); "
                          "repeatable. Default: $SOPS_KEYSERVICE (comma-separated)."),
        click.option(ENABLE_LOCAL_KEYSERVICE, "enable_local_keyservice", type=GoBool(),
                     metavar="[=BOOL]",
                     help="Use this machine's own keys, before any --keyservice (default: "
                          "true; =false to use only the key services). Default: "
                          "$SOPS_ENABLE_LOCAL_KEYSERVICE."),
    ]):
        f = opt(f)
    return f

