"""What the SealedSecret commands share: reading inputs, the recipients, reaching the cluster.

``seal`` (``cli/seal.py``) and ``unseal``/``reseal``/``verify`` (``cli/unseal.py``) read files
and manifests the same way, take recipients from ``--cert``/``--recipient`` and — through
``cli/_kube.py``, the one module that talks to clusters — from the controller, with the same
``--kubeconfig``/``--context`` options. Heavy imports happen inside the functions so
``--help`` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click

FORMATS = click.Choice(["yaml", "json"])
CERT_TIMEOUT = 10.0
CERT_MAX_BYTES = 1 << 20


def fail(message: str, code: Any, **kw: Any) -> Any:
    from secretops.errors import SecretOpsError

    return SecretOpsError(message, code=code, **kw)


def read(path: str, rewrite: bool = False) -> bytes:
    from secretops.errors import ExitCode
    from secretops.fileio import read_input

    if path == "-" and sys.stdin.isatty():
        raise fail("no file given (and standard input is a terminal)",
                   ExitCode.NO_FILE_SPECIFIED)
    return read_input(path, rewrite=rewrite)


def fetch_url(url: str) -> bytes:
    import urllib.error
    import urllib.request

    from secretops.errors import ExitCode

    try:
        with urllib.request.urlopen(url, timeout=CERT_TIMEOUT) as resp:
            data: bytes = resp.read(CERT_MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise fail(f"cannot fetch the recipients: HTTP {e.code}", ExitCode.CERT_FETCH_FAILED,
                   file=url) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise fail(f"cannot fetch the recipients: {reason}", ExitCode.CERT_FETCH_FAILED,
                   file=url, hints=("check the URL, or save the file and give --cert FILE",)
                   ) from None
    if len(data) > CERT_MAX_BYTES:
        raise fail("the recipients file is larger than 1 MiB", ExitCode.CERT_FETCH_FAILED,
                   file=url)
    return data


DEFAULT_CONTROLLER = "secretops-controller"
DEFAULT_CONTROLLER_NAMESPACE = "secretops-system"


@dataclass
class Sources:
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
        for cert, data in [*((c, cert_bytes(c)) for c in self.certs), *fetched]:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise fail("not a text file", ExitCode.INVALID_KEY, file=cert) from None
            found = parse_recipients_file(text, cert)
            if not found:
                raise fail("holds no recipient", ExitCode.NO_ENCRYPTION_KEY_FOUND, file=cert)
            texts += found
        return Recipients([*texts, *self.recipients])

    def _fetched(self) -> list[tuple[str, bytes]]:
        from secretops.errors import ExitCode, SecretOpsError

        if self.kube is None or not (self.fetch or not (self.certs or self.recipients)):
            return []
        try:
            context = self.kube.context()
        except SecretOpsError as e:
            if self.fetch or self.kube.target.explicit:  # the cluster was asked for by name
                raise
            raise fail("no recipient to seal for", ExitCode.NO_ENCRYPTION_KEY_FOUND, hints=(
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


def cert_bytes(cert: str) -> bytes:
    return fetch_url(cert) if cert.startswith(("http://", "https://")) else read(cert)


def recipients(certs: tuple[str, ...], recipient: tuple[str, ...]) -> Any:
    """Offline recipients: --cert files or URLs, then --recipient (no cluster)."""
    return Sources(certs, recipient).load()


def kube_options(f: Any) -> Any:
    f = click.option("--context", "kube_context", metavar="NAME",
                     help="The kubeconfig context (default: its current context).")(f)
    return click.option("--kubeconfig", metavar="FILE",
                        help="The kubeconfig (default: KUBECONFIG, files merged as kubectl "
                             "does, else ~/.kube/config).")(f)


def kube_session(kubeconfig: str | None, kube_context: str | None) -> Any:
    """A kubectl session for the command (it runs nothing until a cluster is needed)."""
    from secretops.cli._kube import Session, Target

    return Session(Target(kubeconfig, kube_context))


def controller_service(namespace: str, name: str) -> Any:
    from secretops.cli._kube import Service

    return Service(namespace, name)


def identities(paths: tuple[str, ...]) -> Any:
    from secretops.sealing import IdentitySet, load_identities

    ids = IdentitySet()
    for path in paths:
        ids.extend(load_identities(read(path), path))
    return ids


def write(data: bytes, output: str | None, *, private: bool) -> None:
    from secretops.cli._actions import write_result

    write_result(data, "-", False, output, private=private)


def one(data: bytes, source: str, what: str) -> dict[str, Any]:
    from secretops.errors import ExitCode
    from secretops.sealing.serialize import load_documents

    docs = load_documents(data, source)
    if len(docs) != 1:
        raise fail(f"expected one {what}, found {len(docs)} objects", ExitCode.INVALID_INPUT,
                   file=source)
    return docs[0]
