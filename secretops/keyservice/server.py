"""``secretops keyservice``: sops's key service, served with this machine's identities.

Each ``Encrypt`` wraps the request's data key for its master key with the key source's own
recipient (:func:`secretops.keys.recipient`) and answers the entry's ``enc``; each
``Decrypt`` unwraps the request's ``enc`` with the identities this environment offers
(:func:`secretops.keys.identity`) — the same code, limits and checks as a local run, including
the sources' own guards (a Vault token goes only to ``VAULT_ADDR``'s server).

What it guards, since anyone who can connect may ask it for data keys (there is no
authentication in sops's protocol; see ``docs/security.md``):

* where it listens: ``127.0.0.1:5000`` by default; an address without a host (Go's "every
  interface") is refused, any address that is not loopback is only served when named and is
  warned about; a unix socket is created 0600, an existing socket that still answers is never
  replaced, and nothing that is not a socket is removed;
* what it reads: gRPC refuses a message over :data:`MAX_MESSAGE` before it is parsed; the
  request is parsed by protobuf, and a payload that is not a data key (32 bytes) or a Shamir
  share (33) or an ``enc`` over :data:`secretops.core.limits.MAX_ENC_CHARS` is refused before
  any key is used — it is a key service, not a general encryption oracle;
* what it says: errors are gRPC statuses whose text names the master key and the cause, never
  key material; one line per request is logged (peer, call, master key, outcome);
* with ``--prompt``, each request waits for a y/n on the terminal *before* any key is used
  (sops asks after doing the work), one question at a time.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from secretops.core.limits import DATA_KEY_SIZE, MAX_ENC_CHARS, SHARE_SIZE
from secretops.errors import ExitCode, LimitExceededError, SecretOpsError
from secretops.keyservice import TCP_SCHEMES
from secretops.keyservice.protocol import ProtocolError, key_fields, messages, parse

MAX_MESSAGE = MAX_ENC_CHARS + 16 * 1024  # an enc at its limit, plus the key's fields
MAX_WORKERS = 4
MAX_CONCURRENT = 16  # requests past this are refused (RESOURCE_EXHAUSTED), not queued
_PAYLOAD_SIZES = (DATA_KEY_SIZE, SHARE_SIZE)
_UNIX_PATH_MAX = 107  # sun_path, less the terminating NUL
_MESSAGE_MAX = 500  # characters of a cause passed on to the client


class Listen(NamedTuple):
    """Where to listen: ``bind`` is gRPC's address, ``path`` the unix socket's."""

    network: str
    address: str
    bind: str
    path: str | None
    loopback: bool


class _Refused(Exception):
    """A request answered with a gRPC status (its name) and a secret-free message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def listen_address(network: str, address: str) -> Listen:
    """Check ``--network``/``--address`` as sops's ``net.Listen`` reads them, refusing what
    would listen more widely than asked."""
    if network == "unix":
        path = os.path.abspath(address)
        if not address or len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise SecretOpsError(f"the unix socket path {address!r} is empty or longer than "
                                 f"{_UNIX_PATH_MAX} bytes", code=ExitCode.GENERIC)
        return Listen(network, address, f"unix:{path}", path, True)
    if network not in TCP_SCHEMES:
        raise SecretOpsError(f"unknown network {network!r}", code=ExitCode.GENERIC,
                             hints=("--network is tcp or unix",))
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise SecretOpsError(f"the address {address!r} is not HOST:PORT", code=ExitCode.GENERIC)
    if not host:
        raise SecretOpsError(
            f"the address {address!r} names no host: sops would listen on every interface",
            code=ExitCode.GENERIC,
            hints=("name it: 127.0.0.1:PORT (this machine only), or 0.0.0.0:PORT if every "
                   "interface is meant",))
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = name == "localhost"
    return Listen(network, address, f"{host}:{port}", None, loopback)


def _describe(kind: str, fields: Mapping[str, Any]) -> str:
    from secretops.keys import describe

    return describe(kind, fields)


def _cause(e: BaseException) -> str:
    text = e.message if isinstance(e, SecretOpsError) else str(e) or type(e).__name__
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_MAX else text[:_MESSAGE_MAX] + "…"


class Service:
    """The two calls, on raw request bytes (gRPC passes them undecoded, so a malformed one gets
    our typed answer rather than gRPC's generic one)."""

    def __init__(self, env: Mapping[str, str], *, ask: Callable[[str], bool] | None = None,
                 log: Callable[[str], None] = lambda line: None,
                 kinds: tuple[str, ...] | None = None) -> None:
        self.env = env
        self._ask = ask
        self._log = log
        self._kinds = kinds  # the key kinds served (None: every registered source)
        self._asking = threading.Lock()  # one question on the terminal at a time

    def encrypt(self, request: bytes, context: Any) -> bytes:
        return self._call("encrypt", request, context)

    def decrypt(self, request: bytes, context: Any) -> bytes:
        return self._call("decrypt", request, context)

    def _call(self, op: str, request: bytes, context: Any) -> bytes:
        import grpc

        peer = context.peer() if context is not None else "-"
        what = "request"
        try:
            m = messages()
            msg = parse(m.encrypt_request if op == "encrypt" else m.decrypt_request, request,
                        f"{op} request")
            kind, fields = key_fields(msg.key)
            what = _describe(kind, fields)
            if self._kinds is not None and kind not in self._kinds:
                raise _Refused("UNIMPLEMENTED", f"this key service does not serve {kind} keys")
            if op == "encrypt":
                out = self._encrypt(kind, fields, bytes(msg.plaintext), peer, what)
                response = m.encrypt_response(ciphertext=out)
            else:
                out = self._decrypt(kind, fields, bytes(msg.ciphertext), peer, what)
                response = m.decrypt_response(plaintext=out)
        except _Refused as e:
            self._log(f"{peer} {op} {what}: refused: {e.message}")
            context.abort(getattr(grpc.StatusCode, e.status), e.message)
            raise  # pragma: no cover - abort raises
        except ProtocolError as e:
            self._log(f"{peer} {op} {what}: refused: {e.message}")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
            raise  # pragma: no cover - abort raises
        self._log(f"{peer} {op} {what}: served")
        data: bytes = response.SerializeToString()
        return data

    def _confirm(self, op: str, peer: str, what: str) -> None:
        if self._ask is None:
            return
        with self._asking:
            try:
                ok = self._ask(f"Received {op} request from {peer} using {what}. "
                               "Respond to request? (y/n): ")
            except OSError:  # the terminal went away: nobody said yes
                ok = False
        if not ok:
            raise _Refused("PERMISSION_DENIED", "Request rejected by user")

    def _encrypt(self, kind: str, fields: dict[str, Any], plaintext: bytes, peer: str,
                 what: str) -> bytes:
        from secretops.keys import recipient
        from secretops.keys.specs import KeySpec

        if len(plaintext) not in _PAYLOAD_SIZES:
            raise _Refused("INVALID_ARGUMENT", f"the plaintext is {len(plaintext)} bytes: this "
                           "key service wraps data keys (32 bytes) and Shamir shares (33) only")
        self._confirm("encrypt", peer, what)
        try:
            enc = recipient(KeySpec(kind, fields), self.env).wrap(plaintext).enc
        except Exception as e:
            raise self._failed(e, what) from None
        return enc.encode("ascii")

    def _decrypt(self, kind: str, fields: dict[str, Any], ciphertext: bytes, peer: str,
                 what: str) -> bytes:
        from secretops.core.metadata import KeyEntry
        from secretops.keys import KeyMismatch, identity, source

        if not ciphertext or len(ciphertext) > MAX_ENC_CHARS:
            raise _Refused("INVALID_ARGUMENT", f"the ciphertext is {len(ciphertext)} bytes: an "
                           f"enc is 1 to {MAX_ENC_CHARS} characters")
        try:
            enc = ciphertext.decode("ascii")
        except UnicodeDecodeError:
            raise _Refused("INVALID_ARGUMENT", "the ciphertext is not an enc: it is not "
                           "ASCII text") from None
        self._confirm("decrypt", peer, what)
        try:
            ident = identity(kind, self.env)
            if ident is None:
                raise _Refused("FAILED_PRECONDITION", f"this key service has no "
                               f"{source(kind).title} identity")
            plaintext = ident.unwrap(KeyEntry(kind, {**fields, "enc": enc}))
        except _Refused:
            raise
        except KeyMismatch:
            raise _Refused("NOT_FOUND", f"no identity of this key service fits {what}") from None
        except Exception as e:
            raise self._failed(e, what) from None
        if len(plaintext) not in _PAYLOAD_SIZES:
            raise _Refused("FAILED_PRECONDITION", f"{what} unwraps to {len(plaintext)} bytes, "
                           "which is not a data key: the entry was altered")
        return plaintext

    @staticmethod
    def _failed(e: Exception, what: str) -> _Refused:
        from secretops.keys import SourceUnavailable

        cause = _cause(e)
        if isinstance(e, SourceUnavailable):
            return _Refused("FAILED_PRECONDITION", f"{what}: {cause}")
        if isinstance(e, LimitExceededError) or (
                isinstance(e, SecretOpsError) and e.code == ExitCode.INVALID_KEY):
            return _Refused("INVALID_ARGUMENT", f"{what}: {cause}")
        return _Refused("UNKNOWN", cause if what in cause else f"{what}: {cause}")


def _prepare_socket(path: str) -> None:
    """Leave ``path`` free for a new socket: a stale socket is removed, a live one or anything
    else is refused. A missing directory is created 0700."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SecretOpsError(f"cannot listen on {path}: it exists and is not a socket",
                             code=ExitCode.GENERIC)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a socket left by a process that has ended
        return
    finally:
        probe.close()
    raise SecretOpsError(f"cannot listen on {path}: address already in use",
                         code=ExitCode.GENERIC)


def warnings_for(listen: Listen) -> list[str]:
    """What to say at start-up about who can reach the service."""
    if listen.path is not None:
        mode = os.stat(os.path.dirname(listen.path)).st_mode
        if mode & 0o077:
            return [f"the socket's directory {os.path.dirname(listen.path)} is open to other "
                    "users: the socket itself is 0600, but a private (0700) directory is safer "
                    "on systems that ignore socket permissions"]
        return []
    if not listen.loopback:
        return [f"listening on {listen.address}, which is not loopback: anyone who can reach "
                "it can ask this key service to wrap and unwrap data keys with this machine's "
                "identities (sops's protocol has no authentication)"]
    return []


class Server:
    """A running gRPC server; :meth:`stop` ends it and removes its socket."""

    def __init__(self, listen: Listen, service: Service) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        from secretops.keyservice.protocol import SERVICE

        self.listen = listen
        options = [("grpc.max_receive_message_length", MAX_MESSAGE),
                   ("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.so_reuseport", 0)]  # never share a port with another process
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Encrypt": grpc.unary_unary_rpc_method_handler(service.encrypt),
            "Decrypt": grpc.unary_unary_rpc_method_handler(service.decrypt),
        })
        self._grpc = grpc.server(ThreadPoolExecutor(MAX_WORKERS), handlers=[handler],
                                 options=options, maximum_concurrent_rpcs=MAX_CONCURRENT)
        if listen.path is not None:
            _prepare_socket(listen.path)
            old = os.umask(0o177)  # the socket is created 0600, with no moment of wider access
        try:
            port = self._grpc.add_insecure_port(listen.bind)
        except RuntimeError:
            port = 0
        finally:
            if listen.path is not None:
                os.umask(old)
        if listen.path is None and not port:
            raise SecretOpsError(f"cannot listen on {listen.network}://{listen.address}: "
                                 "address already in use or not available here",
                                 code=ExitCode.GENERIC)
        if listen.path is not None:
            if not os.path.exists(listen.path):
                raise SecretOpsError(f"cannot listen on {listen.path}", code=ExitCode.GENERIC)
            os.chmod(listen.path, 0o600)
            self._inode = os.stat(listen.path).st_ino
            self.where = f"unix://{listen.path}"
        else:
            host = listen.bind.rpartition(":")[0]
            self.where = f"{listen.network}://{host}:{port}"
        self._grpc.start()

    def stop(self, grace: float = 2.0) -> None:
        self._grpc.stop(grace).wait()
        path = self.listen.path
        if path is not None:
            try:
                if os.stat(path).st_ino == self._inode:  # ours, not a successor's
                    os.unlink(path)
            except FileNotFoundError:
                pass


def serve(network: str, address: str, *, env: Mapping[str, str],
          ask: Callable[[str], bool] | None, log: Callable[[str], None],
          until: threading.Event) -> None:
    """Serve until ``until`` is set (the CLI sets it on SIGINT/SIGTERM)."""
    listen = listen_address(network, address)
    server = Server(listen, Service(env, ask=ask, log=log))
    try:
        for line in warnings_for(listen):
            log(f"warning: {line}")
        log(f"listening on {server.where}")
        until.wait()
    finally:
        server.stop()
