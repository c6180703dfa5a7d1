"""``secretops convert-eso``: External Secrets Operator manifests → secretops's, offline.

Reads ExternalSecret, SecretStore and ClusterSecretStore manifests (``external-secrets.io/v1``
and ``v1beta1``; multi-document YAML, JSON, Lists) from FILEs or standard input and writes the
``secretops.dev/v1alpha1`` objects (other objects pass through unchanged). A converter may
refuse, it never changes meaning: whatever cannot be translated faithfully is named on stderr,
one ``secretops: error:`` line each (file, manifest, field path, why), and then nothing is
written and the exit code is 170 (ESO_UNTRANSLATED). Notes about objects that were translated
faithfully are ``secretops: warning:`` lines; ``--strict`` makes them refusals too.
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
              help="Treat warnings (faithful translations that will behave differently at run "
                   "time) as refusals: exit 170, nothing written.")
def command(files: tuple[str, ...], fmt: str, output: str | None, strict: bool) -> None:
    """Translate External Secrets Operator manifests into secretops's.

    ExternalSecret, SecretStore and ClusterSecretStore become the same kinds in
    secretops.dev/v1alpha1; ESO Go templates become sandboxed templates that render the same
    bytes. Anything that cannot be translated without changing its meaning (a field with no
    counterpart, dataFrom rewrite, a template function without an exact counterpart, a store
    whose provider or credentials cannot be expressed) is named on stderr with its field path,
    and then nothing is written: exit 170.
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
    errors: list[str] = []
    warnings: list[str] = []
    for source in sources:
        docs = load_documents(read_input(source), source)
        converted, issues = convert_all(docs)
        objects.extend(converted)
        where = "" if source == "-" else f"{source}: "
        for issue in issues:
            refused = issue.refused or strict
            (errors if refused else warnings).append(
                f"secretops: {'error' if refused else 'warning'}: {where}{issue}")
    if warnings:
        sys.stderr.write("\n".join(warnings) + "\n")
    if errors:
        sys.stderr.write("\n".join(errors) + "\n")
        sys.stderr.write("secretops: hint: nothing was written; change or remove what is named "
                         "(docs/external-secrets.md#migrating-from-eso)\n")
        sys.exit(int(ExitCode.ESO_UNTRANSLATED))
    if fmt == "json":
        data = dump(objects[0] if len(objects) == 1 else
                    {"apiVersion": "v1", "kind": "List", "items": objects}, "json")
    else:
        data = b"---\n".join(dump(o, "yaml") for o in objects)
    # a Secret passed through may hold plaintext: then a new OUT is created 0600
    write_result(data, "-", False, output,
                 private=any(o.get("kind") == "Secret" for o in objects))
