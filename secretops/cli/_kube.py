"""The one place the CLI talks to a cluster: through the user's own ``kubectl``.

``seal`` fetching the recipients, ``verify --controller`` and ``reseal --controller`` reach the
controller's Service through the API server's service proxy, and they do it here. This module
never reads a kubeconfig itself: kubectl is the reference implementation of kubeconfig, so what
works for the user's other kubectl commands (and for kubeseal, on the same client-go) works here
— ``KUBECONFIG`` lists merged by kubectl's rules, ``--kubeconfig``, ``--context``, the context's
namespace, tokens and token files, client certificates, ``certificate-authority(-data)``,
``insecure-skip-tls-verify``, ``tls-server-name``, ``proxy-url``, and ``exec`` credential plugins
(``client.authentication.k8s.io/v1`` and ``v1beta1``, ``interactiveMode``, ``env``,
``provideClusterInfo``, credentials cached until their ``expirationTimestamp``).

How:

1. ``kubectl config view --minify`` names the context and its namespace (nothing else leaves
   kubectl), so a missing context or a broken kubeconfig is a clear error before anything runs;
2. one ``kubectl proxy`` for the whole command listens on a Unix socket in a fresh 0700
   directory and accepts only service-proxy paths; requests go to it as plain HTTP. One proxy
   per command means an exec plugin runs once and its credential is reused until it expires
   (client-go's cache), for every file a ``verify`` checks;
3. the proxy is stopped by its PID and the directory removed when the command ends; on Linux
   the kernel stops it too if this process is killed (``PR_SET_PDEATHSIG``), and the next
   command removes the directory a killed run left (``secretops/leftovers.py``).

No credential passes through this process and nothing is written to disk but kubectl's own
stderr (in that private directory, for the error message). Every text that comes from kubectl,
a credential plugin or a server is cut to one line and scrubbed of token-shaped strings before
it is shown. Failures are :class:`~secretops.errors.SecretOpsError` with exit code 162
(``CERT_FETCH_FAILED``), naming the Service and the context tried.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from secretops.errors import ExitCode, SecretOpsError

CONFIG_TIMEOUT = 30.0  # kubectl config view reads files only
START_TIMEOUT = 30.0  # until kubectl proxy listens
REQUEST_TIMEOUT = 60.0  # one request, an exec plugin's run included
INTERACTIVE_TIMEOUT = 600.0  # a plugin may be waiting for a login in a browser
STOP_GRACE = 5.0
MAX_BODY = 1 << 20
# The proxy forwards only what this module asks for (other local processes of the same user
# could reach the socket while it lives; they could run kubectl themselves, but need not get more).
ACCEPT_PATHS = r"^/api/v1/namespaces/[^/]+/services/[^/]+/proxy/"
_KLOG = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]+\] ")
# JWTs, "Bearer x"/"Basic x", and any long run of token characters (API keys, base64 blobs).
_TOKENISH = re.compile(r"(?i)\b(bearer|basic)\s+\S+|eyJ[\w-]+\.[\w-]+\.?[\w-]*|[\w+=~.-]{40,}")


def tidy(text: str, limit: int = 240) -> str:
    """Outside text made safe to show: one line, token-shaped strings removed, length capped."""
    line = _KLOG.sub("", " ".join(text.split()))
    line = _TOKENISH.sub(lambda m: f"{m.group(1)} <redacted>" if m.group(1) else "<redacted>",
                         line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _fail(message: str, hints: tuple[str, ...] = ()) -> SecretOpsError:
    return SecretOpsError(message, code=ExitCode.CERT_FETCH_FAILED, hints=hints)


@dataclass(frozen=True)
class Target:
    """The cluster the user chose: kubectl's ``--kubeconfig`` and ``--context`` (None: kubectl's
    defaults, ``KUBECONFIG`` or ``~/.kube/config`` and its current context)."""

    kubeconfig: str | None = None
    context: str | None = None

    @property
    def explicit(self) -> bool:
        return bool(self.kubeconfig or self.context)

    def flags(self) -> list[str]:
        out = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        return out + ([f"--context={self.context}"] if self.context else [])

    def source(self) -> str:
        """Where kubectl reads the kubeconfig from, for messages."""
        if self.kubeconfig:
            return f"--kubeconfig {self.kubeconfig}"
        if os.environ.get("KUBECONFIG"):
            return f"KUBECONFIG={os.environ['KUBECONFIG']}"
        return "~/.kube/config"


@dataclass(frozen=True)
class Context:
    """The context kubectl resolved: its name and namespace ("default" when it names none)."""

    name: str
    namespace: str


@dataclass(frozen=True)
class Service:
    """A Service reached through the API server: ``/api/v1/namespaces/NS/services/NAME:PORT/
    proxy/…`` (the port by name, as the controller's manifests name it)."""

    namespace: str
    name: str
    port: str = "http"

    def path(self, tail: str) -> str:
        return (f"/api/v1/namespaces/{quote(self.namespace, safe='')}/services/"
                f"{quote(self.name, safe='')}:{quote(self.port, safe='')}/proxy/{tail}")


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    if not found:
        raise _fail("cannot reach the cluster: kubectl is not on PATH", hints=(
            "secretops talks to clusters through kubectl (kubeconfig, contexts, credential "
            "plugins): install it, or seal offline with --cert FILE",))
    return found


def find_context(target: Target) -> Context:
    """The context kubectl would use, or a 162 saying why there is none."""
    kubectl = kubectl_path()
    view = 'jsonpath={.current-context}{"\\n"}{.contexts[0].context.namespace}'
    try:
        proc = subprocess.run([kubectl, *target.flags(), "config", "view", "--minify", "-o", view],
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=CONFIG_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _fail(f"cannot run kubectl: {tidy(str(e))}") from None
    if proc.returncode != 0:
        said = tidy(proc.stderr.decode(errors="replace")).removeprefix("error: ")
        if "current-context must exist" in said:
            said = "no current context"
        raise _fail(f"cannot use the kubeconfig ({target.source()}): {said or 'kubectl failed'}",
                    hints=("choose one with --context NAME or kubectl config use-context NAME",))
    name, _, namespace = proc.stdout.decode(errors="replace").partition("\n")
    return Context(name.strip(), namespace.strip() or "default")


class Session:
    """One ``kubectl proxy`` for the length of a command: ``with Session(target) as kube:``.

    The proxy starts on the first request; :meth:`context` alone runs only ``kubectl config``.
    """

    def __init__(self, target: Target, context: Context | None = None) -> None:
        self.target = target
        self._context = context
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        # An interactive plugin (a login prompt, a device code) needs the terminal, as with
        # kubectl itself; otherwise kubectl's stderr is kept for the error message.
        self.interactive = sys.stdin.isatty() and sys.stderr.isatty()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def context(self) -> Context:
        if self._context is None:
            self._context = find_context(self.target)
        return self._context

    def where(self, service: Service) -> str:
        return (f"Service {service.namespace}/{service.name} through the API server of context "
                f"{self.context().name!r}")

    def _socket(self, failed: str) -> str:
        """The proxy's socket, started on first use; ``failed`` opens any error message."""
        from secretops.leftovers import DIR_PREFIX, remove_tree, run_tag, sweep_private_dirs

        if self._dir is not None:
            return os.path.join(self._dir, "s")
        context = self.context()
        kubectl = kubectl_path()
        base = tempfile.gettempdir()
        sweep_private_dirs(base, remove_tree)  # what runs killed with SIGKILL left
        # 0700, only this user; short, as a socket path is at most 107 bytes
        self._dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{run_tag()}-k", dir=base)
        sock = os.path.join(self._dir, "s")
        # the context config view resolved, so both see the same cluster
        pinned = Target(self.target.kubeconfig, context.name or self.target.context)
        args = [kubectl, *pinned.flags(), "proxy",
                f"--unix-socket={sock}", f"--accept-paths={ACCEPT_PATHS}"]
        with open(os.path.join(self._dir, "kubectl.log"), "wb") as log:
            try:
                self._proc = subprocess.Popen(
                    args, stdout=subprocess.DEVNULL,
                    stdin=None if self.interactive else subprocess.DEVNULL,
                    stderr=None if self.interactive else log, preexec_fn=_dies_with_us())
            except OSError as e:
                raise _fail(f"{failed}: cannot run kubectl: {tidy(str(e))}") from None
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(sock):
            if self._proc.poll() is not None:
                raise _fail(f"{failed}: kubectl proxy exited with status "
                            f"{self._proc.returncode}", hints=self._kubectl_said())
            if time.monotonic() > deadline:
                raise _fail(f"{failed}: kubectl proxy did not start within "
                            f"{START_TIMEOUT:.0f} s")
            time.sleep(0.01)  # polling a child process's start, with a deadline
        return sock

    def _kubectl_said(self) -> tuple[str, ...]:
        """The last line kubectl or a credential plugin wrote, scrubbed, as a hint."""
        if self._dir is None or self.interactive:
            return ()
        try:
            with open(os.path.join(self._dir, "kubectl.log"), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
                lines = [ln for ln in f.read().decode(errors="replace").splitlines()
                         if ln.strip() and "Error while proxying request" not in ln]
        except OSError:
            return ()
        return (f"kubectl said: {tidy(lines[-1])}",) if lines else ()

    def call(self, service: Service, tail: str, body: bytes | None = None,
             ok: tuple[int, ...] = (200,), what: str = "reach the controller"
             ) -> tuple[int, bytes]:
        """GET (or POST of JSON ``body``) ``tail`` of ``service``: (status, body) for a status
        in ``ok``, else a one-line 162 naming the Service and the context."""
        where = self.where(service)
        sock = self._socket(f"cannot {what} from {where}")
        headers = {"Accept": "application/json, */*"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeout = INTERACTIVE_TIMEOUT if self.interactive else REQUEST_TIMEOUT
        conn = _UnixHTTPConnection(sock, timeout)
        try:
            conn.request("POST" if body is not None else "GET", service.path(tail), body=body,
                         headers=headers)
            resp = conn.getresponse()
            status, data = resp.status, resp.read(MAX_BODY + 1)
            kind = resp.getheader("Content-Type") or ""
        except (OSError, http.client.HTTPException) as e:
            gone = self._proc is not None and self._proc.poll() is not None
            reason = ("kubectl proxy stopped" if gone else "no answer" if
                      isinstance(e, socket.timeout) else tidy(str(e) or type(e).__name__))
            raise _fail(f"cannot {what} from {where}: {reason}",
                        hints=self._kubectl_said()) from None
        finally:
            conn.close()
        if len(data) > MAX_BODY:
            raise _fail(f"cannot {what} from {where}: the answer is larger than 1 MiB")
        if status in ok:
            return status, data
        detail = _detail(data, kind)
        raise _fail(f"cannot {what} from {where}: HTTP {status}" + (f": {detail}" if detail
                                                                     else ""),
                    hints=self._hints(status, service, body is not None))

    def _hints(self, status: int, service: Service, post: bool) -> tuple[str, ...]:
        verb = "create" if post else "get"
        if status == 401:
            return ("the API server refused the credentials of this context: log in again "
                    "(kubectl auth whoami shows who you are)",)
        if status == 403:
            return (f"you need {verb} on services/proxy in namespace {service.namespace} "
                    f"(kubectl auth can-i {verb} services/proxy -n {service.namespace})",)
        if status in (404, 503):
            return ("check --controller-name/--controller-namespace and that the controller "
                    "runs there",)
        return self._kubectl_said()

    def close(self) -> None:
        """Stop the proxy (by its PID) and remove the private directory."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._dir is not None:
            from secretops.leftovers import remove_tree

            remove_tree(self._dir)
            self._dir = None


def _detail(data: bytes, kind: str) -> str:
    """What an error answer says: a Kubernetes Status's message, or the text kubectl's proxy
    answers with (a credential plugin failing, a TLS or connection error)."""
    text = data.decode("utf-8", errors="replace")
    if "json" in kind:
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            text = str(answer.get("message") or answer.get("reason") or "")
    return tidy(text)


def _dies_with_us() -> Any:
    """Linux: what makes kubectl proxy get SIGTERM when this process dies, even by SIGKILL —
    it serves the user's credentials on its socket and must not outlive the command."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:  # in the child, between fork and exec
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # we died before it was armed
            os._exit(1)

    return arm


def _listening(path: str) -> bool:
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False  # bound, not yet listening
    return True


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to kubectl proxy's Unix socket (it checks that the Host is localhost)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock
