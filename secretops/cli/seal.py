"""``secretops seal``, ``unseal``, ``reseal`` and ``verify``: SealedSecrets, offline.

Sealing needs only public keys (a recipients file from ``--cert`` and/or ``--recipient``);
unsealing, re-sealing and verifying need an identity (a break-glass key or a backed-up cluster
key ring). Heavy imports happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click

FORMATS = click.Choice(["yaml", "json"])
SCOPES = click.Choice(["strict", "namespace-wide", "cluster-wide"])
CERT_TIMEOUT = 10.0
CERT_MAX_BYTES = 1 << 20


def _fail(message: str, code: Any, **kw: Any) -> Any:
    from secretops.errors import SecretOpsError

    return SecretOpsError(message, code=code, **kw)


def _read(path: str, rewrite: bool = False) -> bytes:
    from secretops.errors import ExitCode
    from secretops.fileio import read_input

    if path == "-" and sys.stdin.isatty():
        raise _fail("no file given (and standard input is a terminal)",
                    ExitCode.NO_FILE_SPECIFIED)
    return read_input(path, rewrite=rewrite)


def _fetch(url: str) -> bytes:
    import urllib.error
    import urllib.request

    from secretops.errors import ExitCode

    try:
        with urllib.request.urlopen(url, timeout=CERT_TIMEOUT) as resp:
            data: bytes = resp.read(CERT_MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise _fail(f"cannot fetch the recipients: HTTP {e.code}", ExitCode.CERT_FETCH_FAILED,
                    file=url) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise _fail(f"cannot fetch the recipients: {reason}", ExitCode.CERT_FETCH_FAILED,
                    file=url, hints=("check the URL, or save the file and give --cert FILE",)
                    ) from None
    if len(data) > CERT_MAX_BYTES:
        raise _fail("the recipients file is larger than 1 MiB", ExitCode.CERT_FETCH_FAILED,
                    file=url)
    return data


DEFAULT_CONTROLLER = "secretops-controller"
DEFAULT_CONTROLLER_NAMESPACE = "secretops-system"


@dataclass
class _Sources:
    """What ``seal`` seals for: --cert files or URLs, --recipient, and the cluster's controller.

    The controller's ``/v1/cert`` is fetched (through kubectl, ``cli/_kube.py``) when
    ``--fetch-cert`` asks, or — as kubeseal does — when nothing else is given to seal for and a
    kubeconfig context exists; an offline-first tool goes to the cluster only where it would
    otherwise fail. ``context`` is the context fetched from, once fetched.
    """

    certs: tuple[str, ...]
    recipients: tuple[str, ...]
    kube: Any = None  # a _kube.Session: None never asks a cluster
    service: Any = None  # a _kube.Service: the controller's
    fetch: bool = False  # --fetch-cert
    context: Any = None

    def load(self) -> Any:
        """The Recipients: every line of each --cert (a file or an http(s) URL), the
        controller's when fetched, then --recipient."""
        from secretops.errors import ExitCode
        from secretops.sealing import Recipients, parse_recipients_file

        texts: list[str] = []
        fetched = self._fetched()
        for cert, data in [*((c, _cert_bytes(c)) for c in self.certs), *fetched]:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("not a text file", ExitCode.INVALID_KEY, file=cert) from None
            found = parse_recipients_file(text, cert)
            if not found:
                raise _fail("holds no recipient", ExitCode.NO_ENCRYPTION_KEY_FOUND, file=cert)
            texts += found
        return Recipients([*texts, *self.recipients])

    def _fetched(self) -> list[tuple[str, bytes]]:
        from secretops.errors import ExitCode, SecretOpsError

        if self.kube is None or not (self.fetch or self.kube.target.explicit
                                     or not (self.certs or self.recipients)):
            return []
        try:
            context = self.kube.context()
        except SecretOpsError as e:
            if self.fetch or self.kube.target.explicit:
                raise
            raise _fail("no recipient to seal for", ExitCode.NO_ENCRYPTION_KEY_FOUND, hints=(
                "give --cert FILE|URL (the cluster's recipients file) and/or --recipient "
                "age1…, or choose a kubeconfig context to fetch them from the controller",
                f"tried the cluster: {e.message}")) from None
        _, data = self.kube.call(self.service, "v1/cert", what="fetch the recipients")
        self.context = context
        return [(self.kube.where(self.service), data)]

    def namespace(self) -> str | None:
        """The kubeconfig context's namespace, when the recipients came from its cluster: where
        kubectl apply puts a manifest that names none (kubeseal's default too)."""
        return str(self.context.namespace) if self.context is not None else None


def _cert_bytes(cert: str) -> bytes:
    return _fetch(cert) if cert.startswith(("http://", "https://")) else _read(cert)


def _recipients(certs: tuple[str, ...], recipient: tuple[str, ...]) -> Any:
    """Offline recipients: --cert files or URLs, then --recipient (no cluster)."""
    return _Sources(certs, recipient).load()


def _kube_options(f: Any) -> Any:
    f = click.option("--context", "kube_context", metavar="NAME",
                     help="The kubeconfig context (default: its current context).")(f)
    return click.option("--kubeconfig", metavar="FILE",
                        help="The kubeconfig (default: KUBECONFIG, files merged as kubectl "
                             "does, else ~/.kube/config).")(f)


def _session(kubeconfig: str | None, kube_context: str | None) -> Any:
    """A kubectl session for the command (it runs nothing until a cluster is needed)."""
    from secretops.cli._kube import Session, Target

    return Session(Target(kubeconfig, kube_context))


def _service(namespace: str, name: str) -> Any:
    from secretops.cli._kube import Service

    return Service(namespace, name)


def _identities(paths: tuple[str, ...]) -> Any:
    from secretops.sealing import IdentitySet, load_identities

    ids = IdentitySet()
    for path in paths:
        ids.extend(load_identities(_read(path), path))
    return ids


def _write(data: bytes, output: str | None, *, private: bool) -> None:
    from secretops.cli._actions import write_result

    write_result(data, "-", False, output, private=private)


def _one(data: bytes, source: str, what: str) -> dict[str, Any]:
    from secretops.errors import ExitCode
    from secretops.sealing.serialize import load_documents

    docs = load_documents(data, source)
    if len(docs) != 1:
        raise _fail(f"expected one {what}, found {len(docs)} objects", ExitCode.INVALID_INPUT,
                    file=source)
    return docs[0]


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
        put(key, _read(path), "--from-file")
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
@_kube_options
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
    with _session(kubeconfig, kube_context) as kube:
        sources = _Sources(cert, recipient, kube, _service(controller_namespace, controller_name),
                           fetch_cert)
        _seal(sources, file, scope, name, namespace, from_literal, from_file, secret_type,
              templates, raw, key, merge_into, from_bitnami, bitnami_key, bind_template, fmt,
              output)


def _seal(sources: _Sources, file: str | None, scope: str | None, name: str | None,
          namespace: str | None, from_literal: tuple[str, ...], from_file: tuple[str, ...],
          secret_type: str | None, templates: tuple[str, ...], raw: bool, key: str | None,
          merge_into: str | None, from_bitnami: str | None, bitnami_key: tuple[str, ...],
          bind_template: bool, fmt: str | None, output: str | None) -> None:
    from secretops.errors import ExitCode

    literal = bool(from_literal or from_file)
    modes = [m for m, on in (("--raw", raw), ("--merge-into", merge_into),
                             ("--from-bitnami", from_bitnami)) if on]
    if len(modes) > 1:
        raise _fail(f"{' and '.join(modes)} cannot be used together",
                    ExitCode.CONFLICTING_PARAMETERS)
    if file and (literal or from_bitnami):
        raise _fail("give a Secret FILE or --from-literal/--from-file/--from-bitnami, not both",
                    ExitCode.CONFLICTING_PARAMETERS)
    if merge_into and output:
        raise _fail("--merge-into rewrites its file; it cannot go with --output",
                    ExitCode.CONFLICTING_PARAMETERS)
    if templates and (raw or from_bitnami):
        raise _fail("--template goes with a Secret to seal or --merge-into",
                    ExitCode.CONFLICTING_PARAMETERS)
    if bind_template and not from_bitnami:
        raise _fail("--bind-template goes with --from-bitnami (and secretops reseal): a "
                    "Secret sealed here binds its own template", ExitCode.CONFLICTING_PARAMETERS)
    if from_bitnami:
        _seal_bitnami(from_bitnami, bitnami_key, sources, namespace, scope,
                      bind_template, fmt, output)
    elif raw:
        _seal_raw(file, sources, scope, name, namespace, key, from_literal, from_file,
                  secret_type, output)
    else:
        if bitnami_key:
            raise _fail("--bitnami-key needs --from-bitnami", ExitCode.CONFLICTING_PARAMETERS)
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
        return _one(_read(src), src if src != "-" else "<stdin>", "Secret manifest")
    values = _literals(from_literal, from_file)
    meta = {k: v for k, v in (("name", name), ("namespace", namespace)) if v}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "type": secret_type or "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in values.items()}}


def _seal_manifest(secret: dict[str, Any], sources: _Sources, scope: str | None,
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
    _write(dump(sealed, fmt or "yaml"), output, private=False)


def _merge(path: str, secret: dict[str, Any], sources: _Sources, scope: str | None,
           templates: dict[str, str], fmt: str | None) -> None:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file
    from secretops.sealing import merge_into
    from secretops.sealing.format import parse_sealed, secret_values, template_of
    from secretops.sealing.sealed import annotated_scope
    from secretops.sealing.serialize import detect_format, dump

    data = _read(path, rewrite=True)
    try:
        sealed = _one(data, path, "SealedSecret")
        parts = parse_sealed(sealed)
        if scope and scope != parts.scope.value:
            raise _fail(f"the SealedSecret's scope is {parts.scope.value}, not {scope}",
                        ExitCode.CONFLICTING_PARAMETERS)
        meta = secret.get("metadata") or {}
        annotated = annotated_scope(meta.get("annotations"))
        if annotated and annotated is not parts.scope:
            raise _fail(f"the Secret is annotated sealedsecrets.bitnami.com/{annotated.value} "
                        f"but the SealedSecret's scope is {parts.scope.value}",
                        ExitCode.CONFLICTING_PARAMETERS)
        for what, mine, theirs in (("name", meta.get("name"), parts.name),
                                   ("namespace", meta.get("namespace"), parts.namespace)):
            if mine and theirs and mine != theirs:
                raise _fail(f"the Secret's {what} is {mine!r} but the SealedSecret's is "
                            f"{theirs!r}", ExitCode.CONFLICTING_PARAMETERS)
        values = secret_values(secret)
        if not values:
            raise _fail("nothing to merge: no value given", ExitCode.INVALID_INPUT)
        tmeta = template_of(secret).get("metadata", {})
        merged = merge_into(sealed, values, sources.load(),
                            labels=tmeta.get("labels"), annotations=tmeta.get("annotations"),
                            templates=templates)
    except SecretOpsError as e:
        raise e.with_file(path) from None
    write_file(path, dump(merged, fmt or detect_format(data)), private=False, rewrite=True)
    click.echo(f"{path}: sealed {', '.join(sorted(values))}", err=True)


def _seal_raw(file: str | None, sources: _Sources, scope: str | None, name: str | None,
              namespace: str | None, key: str | None,
              from_literal: tuple[str, ...], from_file: tuple[str, ...],
              secret_type: str | None, output: str | None) -> None:
    from secretops.errors import ExitCode
    from secretops.sealing import seal_value

    if file:
        raise _fail("--raw reads the value from --from-file, --from-literal or standard input",
                    ExitCode.CONFLICTING_PARAMETERS)
    if len(from_literal) + len(from_file) > 1:
        raise _fail("--raw seals exactly one value", ExitCode.CONFLICTING_PARAMETERS)
    if from_literal or from_file:
        values = _literals(from_literal, from_file)
        given, value = next(iter(values.items()))
        explicit = "=" in (from_literal or from_file)[0]
        key = key or (given if explicit else None)
    else:
        value = _read("-")
    if not key:
        raise _fail("--raw needs --key (the Secret key this value is for)",
                    ExitCode.CONFLICTING_PARAMETERS)
    # bound to a SealedSecret whose template has this type and no data (docs/crypto.md)
    recips = sources.load()
    text = seal_value(value, recips, scope or "strict", namespace or sources.namespace(), name,
                      key, template={"type": secret_type} if secret_type else None)
    _write((text + "\n").encode("ascii"), output, private=False)


def _seal_bitnami(path: str, key_files: tuple[str, ...], sources: _Sources,
                  namespace: str | None, scope: str | None,
                  bind_template: bool, fmt: str | None, output: str | None) -> None:
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.sealing.bitnami import convert, load_keys
    from secretops.sealing.serialize import dump

    if not key_files:
        raise _fail("--from-bitnami needs --bitnami-key (the backup of their controller's keys)",
                    ExitCode.NO_ENCRYPTION_KEY_FOUND,
                    hints=("kubectl get secret -n kube-system -l "
                           "sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > keys.yaml",))
    keys = []
    for kf in key_files:
        keys += load_keys(_read(kf), kf)
    recips = sources.load()
    try:
        ours = convert(_one(_read(path), path, "SealedSecret"), keys, recips,
                       namespace=namespace, scope=scope, bind_template=bind_template)
    except SecretOpsError as e:
        raise e.with_file(path) from None
    _write(dump(ours, fmt or "yaml"), output, private=False)


_identity_option = click.option(
    "--identity", "identity", multiple=True, required=True, metavar="FILE",
    help="An age identities file, an SSH private key, or key-ring Secrets (kubectl get secret "
         "-l secretops.dev/sealing-key -o yaml); repeatable.")
_namespace_option = click.option(
    "-n", "--namespace", help="The namespace, when the SealedSecret file does not say it.")
_optional_identity_option = click.option(
    "--identity", "identity", multiple=True, metavar="FILE",
    help="Offline: an age identities file, an SSH private key, or key-ring Secrets; "
         "repeatable. Without it, --controller asks the cluster's controller.")


def _controller_options(f: Any) -> Any:
    f = click.option("--controller-namespace", default=DEFAULT_CONTROLLER_NAMESPACE,
                     show_default=True, help="With --controller: its namespace.")(f)
    f = click.option("--controller-name", default=DEFAULT_CONTROLLER, show_default=True,
                     help="With --controller: its Service's name.")(f)
    f = _kube_options(f)
    return click.option("--controller", "use_controller", is_flag=True,
                        help="Ask the controller in the kubeconfig context, through the API "
                             "server's service proxy with kubectl (needs services/proxy).")(f)


def _ask_controller(kube: Any, service: Any, endpoint: str, sealed: dict[str, Any],
                    namespace: str | None, file: str) -> dict[str, Any]:
    """POST a SealedSecret to the controller's ``endpoint``; its answer, or its refusal as our
    error. A SealedSecret naming no namespace is asked about in --namespace, else in the
    context's (where kubectl apply would put it)."""
    import json

    from secretops.errors import ExitCode

    meta = sealed.get("metadata")
    if not (isinstance(meta, dict) and meta.get("namespace")):
        sealed = {**sealed, "metadata": {**(meta if isinstance(meta, dict) else {}),
                                         "namespace": namespace or kube.context().namespace}}
    status, body = kube.call(service, endpoint, json.dumps(sealed).encode(), ok=(200, 409),
                             what=f"ask the controller (/{endpoint})")
    if status != 200:
        raise _controller_refusal(body, file)
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise _fail(f"the controller's /{endpoint} answer is not a JSON object",
                    ExitCode.CERT_FETCH_FAILED, file=file if file != "-" else "<stdin>")
    return answer


def _one_way(identity: tuple[str, ...], use_controller: bool) -> None:
    from secretops.errors import ExitCode

    if bool(identity) == use_controller:
        raise _fail("give either --identity (offline) or --controller",
                    ExitCode.CONFLICTING_PARAMETERS)


_REFUSALS = {"ScopeMismatch": "SEALED_SCOPE_MISMATCH", "NoKeyCouldUnseal": "COULD_NOT_RETRIEVE_KEY",
             "ValueAltered": "ERROR_DECRYPTING_TREE", "Malformed": "INVALID_SEALED_SECRET",
             "TemplateNotBound": "SEALED_TEMPLATE_NOT_BOUND"}


def _controller_refusal(body: bytes, file: str) -> Any:
    """The controller's 409 (``{"reason", "message"}``, value-free) as our error and code."""
    import json

    from secretops.errors import ExitCode, SecretOpsError

    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    reason = str(answer.get("reason") or "Malformed")
    code = ExitCode[_REFUSALS.get(reason, "INVALID_SEALED_SECRET")]
    return SecretOpsError(f"the cluster's controller cannot unseal it ({reason}): "
                          f"{answer.get('message') or 'no detail'}", code=code,
                          file=file if file != "-" else "<stdin>")


def _load_sealed(file: str, rewrite: bool = False) -> tuple[bytes, dict[str, Any]]:
    data = _read(file, rewrite)
    return data, _one(data, file if file != "-" else "<stdin>", "SealedSecret")


@click.command("unseal")
@click.argument("file", required=False, default="-")
@_identity_option
@_namespace_option
@click.option("-o", "--format", "fmt", type=FORMATS, help="Output format (default yaml).")
@click.option("-w", "--output", metavar="FILE",
              help="Write the Secret to FILE (created 0600) instead of standard output.")
def unseal_command(file: str, identity: tuple[str, ...], namespace: str | None,
                   fmt: str | None, output: str | None) -> None:
    """Print the Secret a SealedSecret stands for, offline (disaster recovery).

    The identity is a break-glass key the values were also sealed for, or a backup of the
    cluster's key ring. The output holds the plaintext values.

    \b
      secretops unseal --identity break-glass.txt sealed.yaml
      secretops unseal --identity keyring-backup.yaml sealed.yaml | kubectl apply -f -
    """
    from secretops.errors import SecretOpsError
    from secretops.sealing import unseal_sealed
    from secretops.sealing.serialize import dump

    ids = _identities(identity)
    _, sealed = _load_sealed(file)
    try:
        secret = unseal_sealed(sealed, ids, namespace=namespace)
    except SecretOpsError as e:
        raise e.with_file(file if file != "-" else "<stdin>") from None
    _write(dump(secret, fmt or "yaml"), output, private=True)


@click.command("reseal")
@click.argument("file", required=False, default="-")
@_optional_identity_option
@_controller_options
@click.option("--cert", multiple=True, metavar="FILE|URL", envvar="SECRETOPS_SEALING_CERT",
              help="The new recipients file (e.g. the new cluster's), or its URL; repeatable.")
@click.option("-r", "--recipient", multiple=True, metavar="RECIPIENT",
              help="Also seal for this recipient (repeatable).")
@_namespace_option
@click.option("--bind-template", is_flag=True,
              help="Offline: bind spec.template as it is now to the values, though they were "
                   "sealed for another template or before templates were bound; review it "
                   "first.")
@click.option("-i", "--in-place", is_flag=True, help="Rewrite FILE.")
@click.option("-o", "--format", "fmt", type=FORMATS,
              help="Output format (default: the input's).")
@click.option("-w", "--output", metavar="FILE", help="Write to FILE.")
def reseal_command(file: str, identity: tuple[str, ...], use_controller: bool,
                   controller_name: str, controller_namespace: str, kubeconfig: str | None,
                   kube_context: str | None, cert: tuple[str, ...],
                   recipient: tuple[str, ...], namespace: str | None, bind_template: bool,
                   in_place: bool, fmt: str | None, output: str | None) -> None:
    """Seal a SealedSecret again: offline for new recipients, or by the cluster's controller.

    Offline (--identity): every value is opened with the identity and sealed under a fresh
    data key for the recipients given (only those): for a new cluster after a disaster, or
    after a key change. --controller: the controller re-seals every value for its newest key
    (POST /v1/rotate through the API server); no identity leaves the cluster.

    Values are bound to spec.template (its type and data): a template that is not the one
    they were sealed with is refused (164) unless --bind-template (offline only) says that
    you reviewed it; values sealed before templates were bound come out bound.

    \b
      secretops reseal --identity break-glass.txt --cert new-cluster.txt -i sealed.yaml
      secretops reseal --controller -i sealed.yaml        # after a key renewal
      secretops reseal --identity break-glass.txt --cert cluster.txt --bind-template -i s.yaml
    """
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.fileio import write_file
    from secretops.sealing import reseal_sealed
    from secretops.sealing.serialize import detect_format, dump

    if in_place and (output or file == "-"):
        raise _fail("--in-place needs a FILE and no --output", ExitCode.CONFLICTING_PARAMETERS)
    _one_way(identity, use_controller)
    data, sealed = _load_sealed(file, rewrite=in_place)
    if use_controller:
        if bind_template:
            raise _fail("--bind-template is offline only: the controller never binds a "
                        "template (anyone who can reach it could ask)",
                        ExitCode.CONFLICTING_PARAMETERS)
        if cert or recipient:
            raise _fail("--controller re-seals for the cluster's newest key: --cert and "
                        "--recipient are for offline resealing",
                        ExitCode.CONFLICTING_PARAMETERS)
        with _session(kubeconfig, kube_context) as kube:
            new = _ask_controller(kube, _service(controller_namespace, controller_name),
                                  "v1/rotate", sealed, namespace, file)
        if not (sealed.get("metadata") or {}).get("namespace"):
            (new.get("metadata") or {}).pop("namespace", None)  # the file keeps its shape
    else:
        ids = _identities(identity)
        recips = _recipients(cert, recipient)
        try:
            new = reseal_sealed(sealed, ids, recips, namespace=namespace,
                                bind_template=bind_template)
        except SecretOpsError as e:
            raise e.with_file(file if file != "-" else "<stdin>") from None
    out = dump(new, fmt or detect_format(data))
    if in_place:
        write_file(file, out, private=False, rewrite=True)
    else:
        _write(out, output, private=False)


@click.command("verify")
@click.argument("files", nargs=-1, required=True)
@_optional_identity_option
@_controller_options
@_namespace_option
def verify_command(files: tuple[str, ...], identity: tuple[str, ...], use_controller: bool,
                   controller_name: str, controller_namespace: str, kubeconfig: str | None,
                   kube_context: str | None, namespace: str | None) -> None:
    """Check that every value of each SealedSecret opens; print no value.

    Offline with --identity, or --controller: can this cluster unseal it (POST /v1/verify
    through the API server; the controller answers without revealing values; a file naming
    no namespace is checked for --namespace, else the kubeconfig context's).
    Exits 0 when all open, else with the first failure's code (160 moved value, 128 no
    fitting key, 25 altered, 161 malformed); 162 at once when the cluster cannot be asked.

    \b
      secretops verify --identity keyring-backup.yaml sealed/*.yaml
      secretops verify --controller sealed/*.yaml
    """
    from secretops.cli._actions import report
    from secretops.errors import ExitCode, SecretOpsError
    from secretops.sealing import verify_sealed

    _one_way(identity, use_controller)
    ids = None if use_controller else _identities(identity)
    service = _service(controller_namespace, controller_name)
    first = 0
    with _session(kubeconfig, kube_context) as kube:  # one kubectl proxy for every file
        for file in files:
            try:
                _, sealed = _load_sealed(file)
                if use_controller:
                    answer = _ask_controller(kube, service, "v1/verify", sealed, namespace, file)
                    n = answer.get("values", 0)
                else:
                    assert ids is not None
                    n = verify_sealed(sealed, ids, namespace=namespace)
            except SecretOpsError as e:
                if e.code is ExitCode.CERT_FETCH_FAILED and use_controller:
                    raise  # the cluster, not this file: the next file would fail alike
                first = first or report(e.with_file(file))
                continue
            click.echo(f"{file}: ok: {n} values open")
    if first:
        sys.exit(first)
