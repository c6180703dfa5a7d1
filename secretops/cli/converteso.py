"""``secretops convert-eso``: External Secrets Operator manifests → secretops's, offline.

Reads ExternalSecret, SecretStore and ClusterSecretStore manifests (``external-secrets.io/v1``
and ``v1beta1``; multi-document YAML, JSON, Lists) from FILEs or standard input and writes the
``secretops.dev/v1alpha1`` objects (other objects pass through unchanged). Everything that could
not be translated is named on stderr, one ``secretops: warning:`` line each; with ``--strict``
the exit code is then 170 (ESO_UNTRANSLATED), else 0. The output is written either way.
"""

from __future__ import annotations

import sys
from typing import Any

import click


@click.command("convert-eso")
@click.argument("files", nargs=-1, metavar="[FILE…|-]")
@click.option("-o", "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True, help="Output format (JSON: one object, or a List).")
@click.option("-w", "--output", metavar="OUT", help="Write to OUT instead of standard output.")
@click.option("--strict", is_flag=True,
              help="Exit 170 when anything could not be translated (the output is still "
                   "written).")
def command(files: tuple[str, ...], fmt: str, output: str | None, strict: bool) -> None:
    """Translate External Secrets Operator manifests into secretops's.

    ExternalSecret, SecretStore and ClusterSecretStore become the same kinds in
    secretops.dev/v1alpha1; ESO Go templates become sandboxed templates. Each field, template
    or store that has no counterpart is named on stderr (manifest and field path); stores whose
    provider or credentials cannot be expressed are skipped.
    """
    from secretops.cli._actions import write_result
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.eso import convert_all
    from secretops.fileio import read_input
    from secretops.sealing.serialize import dump, load_documents

    sources = files or ("-",)
    if "-" in sources and sys.stdin.isatty():
        raise SecretOpsError("no file given (and standard input is a terminal)",
                             code=ExitCode.NO_FILE_SPECIFIED)
    objects: list[dict[str, Any]] = []
    lines: list[str] = []
    for source in sources:
        docs = load_documents(read_input(source), source)
        converted, issues = convert_all(docs)
        objects.extend(converted)
        where = "" if source == "-" else f"{source}: "
        lines.extend(f"secretops: warning: {where}{issue}" for issue in issues)
    if fmt == "json":
        data = dump(objects[0] if len(objects) == 1 else
                    {"apiVersion": "v1", "kind": "List", "items": objects}, "json")
    else:
        data = b"---\n".join(dump(o, "yaml") for o in objects)
    # a Secret passed through may hold plaintext: then a new OUT is created 0600
    write_result(data, "-", False, output,
                 private=any(o.get("kind") == "Secret" for o in objects))
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
        if strict:
            sys.exit(int(ExitCode.ESO_UNTRANSLATED))
