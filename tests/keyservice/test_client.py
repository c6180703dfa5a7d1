"""The client side: settings read as sops reads them, and answers of a hostile key service.

The hostile service is a real gRPC server in this process that answers whatever the test
says — what a compromised or broken key service could send back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from secretops import api
from secretops.errors import ExitCode, SecretOpsError
from secretops.keyservice import Endpoint, endpoint, parse_bool, settings
from secretops.keyservice.protocol import SERVICE, messages
from tests.helpers import CANARY, AgeKey, assert_no_canary


@pytest.mark.parametrize(("text", "value"), [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False),
    ("False", False), ("yes", None), ("tRUE", None), ("", None), (" true", None),
])
def test_go_booleans(text: str, value: bool | None) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize(("uri", "found"), [
    ("tcp://127.0.0.1:5000", Endpoint("tcp://127.0.0.1:5000", "tcp", "127.0.0.1:5000")),
    ("tcp://[::1]:5000", Endpoint("tcp://[::1]:5000", "tcp", "[::1]:5000")),
    ("unix:///tmp/ks.sock", Endpoint("unix:///tmp/ks.sock", "unix", "unix:///tmp/ks.sock")),
    ("unix:ks.sock", Endpoint("unix:ks.sock", "unix", "unix:ks.sock")),
    ("foo://127.0.0.1:1", Endpoint("foo://127.0.0.1:1", "foo", "")),  # fails when asked
    ("localhost:5000", Endpoint("localhost:5000", "localhost", "")),  # Go: scheme localhost
    ("127.0.0.1:5000", None),  # Go: first path segment cannot contain colon
    ("tcp://[::1", None),
    ("tcp://127.0.0.1:port", None),
])
def test_endpoints_as_sops_parses_them(uri: str, found: Endpoint | None) -> None:
    assert endpoint(uri) == found


def test_settings() -> None:
    s = settings({"SOPS_KEYSERVICE": " tcp://a:1 ,,127.0.0.1:2, unix:///s",
                  "SOPS_ENABLE_LOCAL_KEYSERVICE": ""})
    assert not s.local and [e.uri for e in s.endpoints] == ["tcp://a:1", "unix:///s"]
    assert s.skipped == ("127.0.0.1:2",)
    assert settings({}).local and not settings({}).remote
    with pytest.raises(SecretOpsError) as info:
        settings({"SOPS_ENABLE_LOCAL_KEYSERVICE": "maybe"})
    assert info.value.code == ExitCode.GENERIC


Answer = Callable[[bytes, Any], bytes]


@pytest.fixture
def hostile() -> Iterator[Callable[[Answer, Answer], str]]:
    servers: list[Any] = []

    def start(encrypt: Answer, decrypt: Answer) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(2), options=[
            ("grpc.max_send_message_length", 8 * 1024 * 1024)])
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
            "Encrypt": grpc.unary_unary_rpc_method_handler(encrypt),
            "Decrypt": grpc.unary_unary_rpc_method_handler(decrypt)})])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"tcp://127.0.0.1:{port}"

    yield start
    for s in servers:
        s.stop(0)


def _env(uri: str) -> dict[str, str]:
    return {**os.environ, "SOPS_KEYSERVICE": uri, "SOPS_ENABLE_LOCAL_KEYSERVICE": "false"}


def _plain(ciphertext: bytes = b"", plaintext: bytes = b"") -> Answer:
    m = messages()
    return lambda req, ctx: bytes(
        (m.encrypt_response(ciphertext=ciphertext) if ciphertext or not plaintext
         else m.decrypt_response(plaintext=plaintext)).SerializeToString())


@pytest.mark.parametrize(("ciphertext", "says"), [
    ("é".encode() * 4, "not an enc"),
    (b"", "not an enc"),
    (b"A" * (65 * 1024), "not an enc"),
    (b"A" * (2 * 1024 * 1024), "RESOURCE_EXHAUSTED"),  # over the message limit: not read
])
def test_encrypt_refuses_what_is_not_an_enc(ciphertext: bytes, says: str, age_key: AgeKey,
                                            hostile: Callable[[Answer, Answer], str]) -> None:
    uri = hostile(_plain(ciphertext=ciphertext), _plain())
    with pytest.raises(SecretOpsError) as info:
        api.encrypt(f"a: {CANARY}\n".encode(), format="yaml", age=age_key.recipient,
                    env=_env(uri))
    assert says in str(info.value.message), info.value.message
    assert info.value.code == ExitCode.ERROR_ENCRYPTING_TREE


def test_decrypt_checks_the_size_of_what_comes_back(age_key: AgeKey,
                                                     hostile: Callable[[Answer, Answer], str]
                                                     ) -> None:
    """A key service answering 40 bytes for a data key: refused as an altered entry (exit 25),
    as for any identity."""
    enc = api.encrypt(f"a: {CANARY}\n".encode(), format="yaml", age=age_key.recipient)
    uri = hostile(_plain(), _plain(plaintext=b"x" * 40))
    with pytest.raises(SecretOpsError) as info:
        api.decrypt(enc, format="yaml", env=_env(uri))
    assert info.value.code == ExitCode.ERROR_DECRYPTING_TREE


def test_long_errors_are_one_short_line(age_key: AgeKey,
                                        hostile: Callable[[Answer, Answer], str]) -> None:
    enc = api.encrypt(f"a: {CANARY}\n".encode(), format="yaml", age=age_key.recipient)

    def refuse(req: bytes, ctx: Any) -> bytes:
        ctx.abort(grpc.StatusCode.UNKNOWN, "line\n" * 1000)
        raise AssertionError  # pragma: no cover

    uri = hostile(_plain(), refuse)
    with pytest.raises(SecretOpsError) as info:
        api.decrypt(enc, format="yaml", env=_env(uri))
    text = "\n".join(info.value.hints)
    said = next(h for h in info.value.hints if "UNKNOWN" in h)
    assert "\n" not in said and len(said) < 500
    assert info.value.code == ExitCode.COULD_NOT_RETRIEVE_KEY
    assert_no_canary(text, "the error")
