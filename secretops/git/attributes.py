"""Which files git should hand to secretops: ``.gitattributes`` globs from ``.sops.yaml``.

A creation rule's ``path_regex`` is searched in the path relative to the config's directory.
Common regexes translate exactly into gitattributes globs:

==================================  ==========================
``\\.enc\\.yaml$``                   ``*.enc.yaml``
``^secrets/.*\\.yaml$``              ``secrets/**/*.yaml``
``secrets/``                         ``**/*secrets/**``
``(prod|staging)/.*\\.ya?ml$``       not translated
==================================  ==========================

Anything else — alternations, classes, optional parts, a rule without ``path_regex`` — makes
:func:`globs_for_rules` fall back to broad globs by extension (``*.yaml``, ``*.json``, …); the
textconv driver passes files without sops metadata through unchanged, cheaply, so broad globs
cost little.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BROAD = ("*.yaml", "*.yml", "*.json", "*.env", "*.ini")
_LITERAL = re.compile(r"[A-Za-z0-9_\-/ ]")


def regex_to_glob(regex: str) -> str | None:
    """A gitattributes glob matching the same paths as ``re.search(regex, path)``, or None.

    Only what translates exactly: literal text, ``\\.``, ``.*``/``.+`` runs, ``^`` and ``$``.
    """
    anchored_start = regex.startswith("^")
    anchored_end = regex.endswith("$") and not regex.endswith("\\$")
    body = regex[1 if anchored_start else 0: len(regex) - 1 if anchored_end else len(regex)]
    pieces: list[str | None] = []  # None: a run of any characters
    i = 0
    while i < len(body):
        if body.startswith((".*", ".+"), i):
            pieces.append(None)
            i += 2
        elif body[i] == "\\" and i + 1 < len(body) and body[i + 1] in ".-_/":
            pieces.append(body[i + 1])
            i += 2
        elif _LITERAL.match(body[i]):
            pieces.append(body[i])
            i += 1
        else:
            return None
    glob = ""
    for n, piece in enumerate(pieces):
        if piece is not None:
            glob += piece
            continue
        after = "".join(p or "" for p in pieces[n + 1:])
        if None in pieces[n + 1:]:
            return None
        if glob == "" or glob.endswith("/"):
            if after == "" or after.startswith("/"):
                glob += "**"
            elif "/" in after:
                return None
            else:
                glob += "**/*" if glob else "*"
        else:
            return None  # "a.*b" also matches "a/x/b": a glob cannot say that
    if not glob.strip("*/"):
        return None
    if not anchored_end:
        if not glob.endswith("/"):
            return None  # "secret" also matches directories: not exact as a glob
        glob += "**"
    if anchored_start:
        return glob if "/" in glob else "/" + glob
    if glob.startswith("/"):
        glob = "**" + glob  # may also match at the top: wider than the regex, never narrower
    elif "/" in glob and not glob.startswith("**"):
        glob = "**/*" + glob  # the regex may start inside a directory name
    elif "/" not in glob and not glob.startswith("*"):
        glob = "*" + glob
    return glob


def _under(prefix: str, glob: str) -> str:
    """``glob`` (relative to a config in directory ``prefix``) relative to the repository."""
    if not prefix:
        return glob
    if glob.startswith("/"):
        return prefix + glob[1:]
    if "/" not in glob or glob.startswith("**"):
        return prefix + ("**/" + glob if not glob.startswith("**") else glob)
    return prefix + glob


def globs_for_rules(regexes: Iterable[str | None], prefix: str = "") -> list[str]:
    """Globs for the rules' path regexes (``None``: a rule without one); broad when any fails.

    ``prefix`` is the config's directory relative to the repository root (``""`` or
    ``"deploy/"``).
    """
    globs: list[str] = []
    for regex in regexes:
        glob = regex_to_glob(regex) if regex else None
        if glob is None:
            return [_under(prefix, g) for g in BROAD]
        globs.append(_under(prefix, glob))
    return list(dict.fromkeys(globs)) or [_under(prefix, g) for g in BROAD]
