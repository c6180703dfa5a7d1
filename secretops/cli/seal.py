"""``secretops seal``: a Secret into a SealedSecret, with public keys only.

The recipients come from ``--cert`` and/or ``--recipient``, or from the cluster's controller
(``--fetch-cert``, and by default when neither is given and a kubeconfig context exists).
Unsealing, re-sealing and verifying are in ``cli/unseal.py``. Heavy imports happen inside the
command so ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from secretops.cli._sealing import (
    DEFAULT_CONTROLLER,
    DEFAULT_CONTROLLER_NAMESPACE,
    FORMATS,
    Sources,
    controller_service,
    fail,
    kube_options,
    kube_session,
    one,
    read,
    write,
)

SCOPES = click.Choice(["strict", "namespace-wide", "cluster-wide"])


def _literals(from_literal: tuple[str, ...], from_file: tuple[str, ...]) -> dict[str, bytes]:
    import os

    values: dict[str, bytes] = {}

    def put(key: str, value: bytes, flag: str) -> None:
        if key in values:
            raise click.BadParameter(f"key {key!r} is given twice", param_hint=flag)
        values[key] = value

    for item in from_literal:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=VALUE", param_hint="--from-literal")
        put(key, value.encode("utf-8"), "--from-literal")
    for item in from_file:
        key, sep, path = item.partition("=")
        if not sep:
            key, path = os.path.basename(item), item
        put(key, read(path), "--from-file")
    return values


@click.command("seal")
@click.argument("file", required=False)
@click.option("--cert", multiple=True, metavar="FILE|URL", envvar="SECRETOPS_SEALING_CERT",
              help="The cluster's recipients file (one age recipient a line), or its http(s) "
                   "URL; repeatable, for several clusters. [env: SECRETOPS_SEALING_CERT]")
@click.option("--fetch-cert", is_flag=True,
              help="Also fetch the recipients from the controller, through the API server's "
                   "service proxy with kubectl. Without --cert and --recipient this is the "
                   "default whenever a kubeconfig context exists.")
@click.option("--controller-name", default=DEFAULT_CONTROLLER, show_default=True,
              help="Where to fetch them: the controller's Service (port named http).")
@click.option("--controller-namespace", default=DEFAULT_CONTROLLER_NAMESPACE,
              show_default=True, help="Where to fetch them: the controller's namespace.")
@kube_options
@click.option("-r", "--recipient", multiple=True, metavar="RECIPIENT",
              help="Also seal for this age or SSH recipient (repeatable): other clusters, "
                   "break-glass keys.")
@click.option("--scope", type=SCOPES,
              help="strict (default: this namespace and name), namespace-wide or cluster-wide.")
@click.option("--name", help="The Secret's name (fills in or must match the manifest's).")
@click.option("-n", "--namespace", help="The Secret's namespace.")
@click.option("--from-literal", multiple=True, metavar="KEY=VALUE",
              help="A value to seal (repeatable), instead of a Secret manifest.")
@click.option("--from-file", multiple=True, metavar="[KEY=]PATH",
              help="A value to seal from a file (repeatable; KEY defaults to the file name).")
@click.option("--type", "secret_type", metavar="TYPE",
              help="The Secret type with --from-literal/--from-file, or the type of the "
                   "SealedSecret a --raw value is bound to (default Opaque).")
@click.option("--template", "templates", multiple=True, metavar="KEY=TEMPLATE",
              help="A spec.template.data entry rendered from the values (repeatable), e.g. "
                   "url='postgres://{{ .user }}:{{ .password }}@db'; bound to the values.")
@click.option("--raw", is_flag=True,
              help="Seal one value (--from-file, --from-literal or standard input) and print "
                   "only the sealed string; needs --key, and --name/--namespace per scope.")
@click.option("--key", metavar="KEY", help="With --raw: the Secret key the value is for.")
@click.option("--merge-into", metavar="SEALED",
              help="Add or replace these values in an existing SealedSecret file, in place; "
                   "the other values stay byte for byte.")
@click.option("--from-bitnami", metavar="SEALED",
              help="Convert a Bitnami SealedSecret (needs --bitnami-key).")
@click.option("--bitnami-key", multiple=True, metavar="FILE",
              help="A backup of the Bitnami controller's keys (List or Secret of "
                   "kubernetes.io/tls, or a PEM key); repeatable, every key is tried.")
@click.option("--bind-template", is_flag=True,
              help="With --from-bitnami: bind its spec.template.data (which their format does "
                   "not authenticate) to the values; review the template first.")
@click.option("-o", "--format", "fmt", type=FORMATS,
              help="Output format (default yaml; --merge-into keeps the file's).")
@click.option("-w", "--output", metavar="FILE", help="Write to FILE instead of standard output.")
def command(file: str | None, cert: tuple[str, ...], fetch_cert: bool, controller_name: str,
            controller_namespace: str, kubeconfig: str | None, kube_context: str | None,
            recipient: tuple[str, ...], scope: str | None,
            name: str | None, namespace: str | None, from_literal: tuple[str, ...],
            from_file: tuple[str, ...], secret_type: str | None, templates: tuple[str, ...],
            raw: bool, key: str | None,
            merge_into: str | None, from_bitnami: str | None, bitnami_key: tuple[str, ...],
            bind_template: bool, fmt: str | None, output: str | None) -> None:
    """Seal a Secret into a SealedSecret, with public keys only.

    The input is a Secret manifest (FILE or standard input) or values given with
    --from-literal/--from-file. Every value gets its own data key, wrapped for every
    recipient: the lines of --cert plus each --recipient. The values are bound to the
    template (its type and --template entries): edited later, it is refused, not rendered.
    With no --cert and no --recipient, the recipients come from the controller of the
    kubeconfig context (as with kubeseal), and a Secret without a namespace is sealed for the
    context's. A Secret's sealedsecrets.bitnami.com/namespace-wide or cluster-wide
    annotation chooses the scope, as with kubeseal (a different --scope is refused).
    --merge-into seals the new values for every recipient spec.recipients lists: each must be
    given.

    \b
      secretops seal --cert cluster.txt secret.yaml -w sealed.yaml
      secretops seal --cert cluster.txt -r age1breakglass... -n prod --name db \\
          --from-literal password=... > sealed.yaml
      secretops seal --cert cluster.txt --merge-into sealed.yaml --from-literal token=...
      secretops seal --cert cluster.txt -n prod --name db --from-literal user=... \\
          --from-literal password=... --template url='pg://{{ .user }}:{{ .password }}@db'
      secretops seal --context prod -n prod --name db --from-literal password=...
      echo -n value | secretops seal --cert cluster.txt --raw -n prod --name db --key token
      secretops seal --from-bitnami old.yaml --bitnami-key keys.yaml --cert cluster.txt
    """
    with kube_session(kubeconfig, kube_context) as kube:
        sources = Sources(cert, recipient, kube,
                          controller_service(controller_namespace, controller_name), fetch_cert)
        _seal(sources, file, scope, name, namespace, from_literal, from_file, secret_type,
              templates, raw, key, merge_into, from_bitnami, bitnami_key, bind_template, fmt,
              output)


def _seal(sources: Sources, file: str | None, scope: str | None, name: str | None,
          namespace: str | None, from_literal: tuple[str, ...], from_file: tuple[str, ...],
          secret_type: str | None, templates: tuple[str, ...], raw: bool, key: str | None,
          merge_into: str | None, from_bitnami: str | None, bitnami_key: tuple[str, ...],
          bind_template: bool, fmt: str | None, output: str | None) -> None:
    from secretops.errors import ExitCode

    literal = bool(from_literal or from_file)
    modes = [m for m, on in (("--raw", raw), ("--merge-into", merge_into),
                             ("--from-bitnami", from_bitnami)) if on]
    if len(modes) > 1:
        raise fail(f"{' and '.join(modes)} cannot be used together",
                   ExitCode.CONFLICTING_PARAMETERS)
    if file and (literal or from_bitnami):
        raise fail("give a Secret FILE or --from-literal/--from-file/--from-bitnami, not both",
                   ExitCode.CONFLICTING_PARAMETERS)
    if merge_into and output:
        raise fail("--merge-into rewrites its file; it cannot go with --output",
                   ExitCode.CONFLICTING_PARAMETERS)
    if templates and (raw or from_bitnami):
        raise fail("--template goes with a Secret to seal or --merge-into",
                   ExitCode.CONFLICTING_PARAMETERS)
    if bind_template and not from_bitnami:
        raise fail("--bind-template goes with --from-bitnami (and secretops reseal): a "
                   "Secret sealed here binds its own template", ExitCode.CONFLICTING_PARAMETERS)
    if from_bitnami:
        _seal_bitnami(from_bitnami, bitnami_key, sources, namespace, scope,
                      bind_template, fmt, output)
    elif raw:
        _seal_raw(file, sources, scope, name, namespace, key, from_literal, from_file,
                  secret_type, output)
    else:
        if bitnami_key:
            raise fail("--bitnami-key needs --from-bitnami", ExitCode.CONFLICTING_PARAMETERS)
        secret = _input_secret(file, literal, from_literal, from_file, secret_type, name,
                               namespace)
        data = _templates(templates)
        if merge_into:
            _merge(merge_into, secret, sources, scope, data, fmt)
        else:
            _seal_manifest(secret, sources, scope, name, namespace, data, fmt, output,
                           file or "<stdin>")


def _templates(items: tuple[str, ...]) -> dict[str, str]:
    """--template KEY=TEMPLATE entries, each parsed by the sandbox before anything is sealed."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=TEMPLATE", param_hint="--template")
        if key in out:
            raise click.BadParameter(f"key {key!r} is given twice", param_hint="--template")
        out[key] = text
    if out:
        from secretops.sealing.template import check_syntax

        check_syntax(out)
    return out


def _input_secret(file: str | None, literal: bool, from_literal: tuple[str, ...],
                  from_file: tuple[str, ...], secret_type: str | None, name: str | None,
                  namespace: str | None) -> dict[str, Any]:
    import base64

    if not literal:
        src = file or "-"
        return one(read(src), src if src != "-" else "<stdin>", "Secret manifest")
    values = _literals(from_literal, from_file)
    meta = {k: v for k, v in (("name", name), ("namespace", namespace)) if v}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "type": secret_type or "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in values.items()}}


def _seal_manifest(secret: dict[str, Any], sources: Sources, scope: str | None,
                   name: str | None, namespace: str | None,
                   templates: dict[str, str], fmt: str | None, output: str | None,
                   source: str) -> None:
    from secretops.errors import SecretOpsError
    from secretops.sealing import seal_secret
    from secretops.sealing.serialize import dump

    recips = sources.load()
    if namespace is None and not (secret.get("metadata") or {}).get("namespace"):
        namespace = sources.namespace()
    try:
        sealed = seal_secret(secret, recips, scope, name=name, namespace=namespace,
                             templates=templates)
    except SecretOpsError as e:
        raise e.with_file(source) from None
    write(dump(sealed, fmt or "yaml"), output, private=False)


def _merge(path: str, secret: dict[str, Any], sources: Sources, scope: str | None,
           templates: dict[str, str], fmt: str | None) -> None:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file
    from secretops.sealing import merge_into
    from secretops.sealing.format import parse_sealed, secret_values, template_of
    from secretops.sealing.sealed import annotated_scope
    from secretops.sealing.serialize import detect_format, dump

    data = read(path, rewrite=True)
    try:
        sealed = one(data, path, "SealedSecret")
        parts = parse_sealed(sealed)
        if scope and scope != parts.scope.value:
            raise fail(f"the SealedSecret's scope is {parts.scope.value}, not {scope}",
                       ExitCode.CONFLICTING_PARAMETERS)
        meta = secret.get("metadata") or {}
        annotated = annotated_scope(meta.get("annotations"))
        if annotated and annotated is not parts.scope:
            raise fail(f"the Secret is annotated sealedsecrets.bitnami.com/{annotated.value} "
                       f"but the SealedSecret's scope is {parts.scope.value}",
                       ExitCode.CONFLICTING_PARAMETERS)
        for what, mine, theirs in (("name", meta.get("name"), parts.name),
                                   ("namespace", meta.get("namespace"), parts.namespace)):
            if mine and theirs and mine != theirs:
                raise fail(f"the Secret's {what} is {mine!r} but the SealedSecret's is "
                           f"{theirs!r}", ExitCode.CONFLICTING_PARAMETERS)
        values = secret_values(secret)
        if not values:
            raise fail("nothing to merge: no value given", ExitCode.INVALID_INPUT)
        tmeta = template_of(secret).get("metadata", {})
        merged = merge_into(sealed, values, sources.load(),
                            labels=tmeta.get("labels"), annotations=tmeta.get("annotations"),
                            templates=templates)
    except SecretOpsError as e:
        raise e.with_file(path) from None
    write_file(path, dump(merged, fmt or detect_format(data)), private=False, rewrite=True)
    click.echo(f"{path}: sealed {', '.join(sorted(values))}", err=True)


def _seal_raw(file: str | None, sources: Sources, scope: str | None, name: str | None,
              namespace: str | None, key: str | None,
              from_literal: tuple[str, ...], from_file: tuple[str, ...],
              secret_type: str | None, output: str | None) -> None:
    from secretops.errors import ExitCode
    from secretops.sealing import seal_value

    if file:
        raise fail("--raw reads the value from --from-file, --from-literal or standard input",
                   ExitCode.CONFLICTING_PARAMETERS)
    if len(from_literal) + len(from_file) > 1:
        raise fail("--raw seals exactly one value", ExitCode.CONFLICTING_PARAMETERS)
    if from_literal or from_file:
        values = _literals(from_literal, from_file)
        given, value = next(iter(values.items()))
        explicit = "=" in (from_literal or from_file)[0]
        key = key or (given if explicit else None)
    else:
        value = read("-")
    if not key:
        raise fail("--raw needs --key (the Secret key this value is for)",
                   ExitCode.CONFLICTING_PARAMETERS)
    # bound to a SealedSecret whose template has this type and no data (docs/crypto.md)
    recips = sources.load()
    text = seal_value(value, recips, scope or "strict", namespace or sources.namespace(), name,
                      key, template={"type": secret_type} if secret_type else None)
    write((text + "\n").encode("ascii"), output, private=False)


def _seal_bitnami(path: str, key_files: tuple[str, ...], sources: Sources,
                  namespace: str | None, scope: str | None,
                  bind_template: bool, fmt: str | None, output: str | None) -> None:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.sealing.bitnami import convert, load_keys
    from secretops.sealing.serialize import dump

    if not key_files:
        raise fail("--from-bitnami needs --bitnami-key (the backup of their controller's keys)",
                   ExitCode.NO_ENCRYPTION_KEY_FOUND,
                   hints=("kubectl get secret -n kube-system -l "
                           "sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > keys.yaml",))
    keys = []
    for kf in key_files:
        keys += load_keys(read(kf), kf)
    recips = sources.load()
    try:
        ours = convert(one(read(path), path, "SealedSecret"), keys, recips,
                       namespace=namespace, scope=scope, bind_template=bind_template)
    except SecretOpsError as e:
        raise e.with_file(path) from None
    write(dump(ours, fmt or "yaml"), output, private=False)
