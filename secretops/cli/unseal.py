"""``secretops unseal``, ``reseal`` and ``verify``: SealedSecrets opened offline or by the cluster.

Offline they need an identity (a break-glass key or a backed-up cluster key ring); with
``--controller`` they ask the cluster's controller through the API server (``cli/_kube.py``),
and no identity leaves the cluster. Heavy imports happen inside the commands so ``--help``
stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from secretops.cli._sealing import (
    DEFAULT_CONTROLLER,
    DEFAULT_CONTROLLER_NAMESPACE,
    FORMATS,
    controller_service,
    fail,
    identities,
    kube_options,
    kube_session,
    one,
    read,
    recipients,
    write,
)

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
    f = kube_options(f)
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
        raise fail(f"the controller's /{endpoint} answer is not a JSON object",
                   ExitCode.CERT_FETCH_FAILED, file=file if file != "-" else "<stdin>")
    return answer


def _one_way(identity: tuple[str, ...], use_controller: bool) -> None:
    from secretops.errors import ExitCode

    if bool(identity) == use_controller:
        raise fail("give either --identity (offline) or --controller",
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
    data = read(file, rewrite)
    return data, one(data, file if file != "-" else "<stdin>", "SealedSecret")


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

    ids = identities(identity)
    _, sealed = _load_sealed(file)
    try:
        secret = unseal_sealed(sealed, ids, namespace=namespace)
    except SecretOpsError as e:
        raise e.with_file(file if file != "-" else "<stdin>") from None
    write(dump(secret, fmt or "yaml"), output, private=True)


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
        raise fail("--in-place needs a FILE and no --output", ExitCode.CONFLICTING_PARAMETERS)
    _one_way(identity, use_controller)
    data, sealed = _load_sealed(file, rewrite=in_place)
    if use_controller:
        if bind_template:
            raise fail("--bind-template is offline only: the controller never binds a "
                       "template (anyone who can reach it could ask)",
                       ExitCode.CONFLICTING_PARAMETERS)
        if cert or recipient:
            raise fail("--controller re-seals for the cluster's newest key: --cert and "
                       "--recipient are for offline resealing",
                       ExitCode.CONFLICTING_PARAMETERS)
        with kube_session(kubeconfig, kube_context) as kube:
            new = _ask_controller(kube, controller_service(controller_namespace, controller_name),
                                  "v1/rotate", sealed, namespace, file)
        if not (sealed.get("metadata") or {}).get("namespace"):
            (new.get("metadata") or {}).pop("namespace", None)  # the file keeps its shape
    else:
        ids = identities(identity)
        recips = recipients(cert, recipient)
        try:
            new = reseal_sealed(sealed, ids, recips, namespace=namespace,
                                bind_template=bind_template)
        except SecretOpsError as e:
            raise e.with_file(file if file != "-" else "<stdin>") from None
    out = dump(new, fmt or detect_format(data))
    if in_place:
        write_file(file, out, private=False, rewrite=True)
    else:
        write(out, output, private=False)


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
    ids = None if use_controller else identities(identity)
    service = controller_service(controller_namespace, controller_name)
    first = 0
    with kube_session(kubeconfig, kube_context) as kube:  # one kubectl proxy for every file
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
