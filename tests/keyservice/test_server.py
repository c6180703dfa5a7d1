"""``secretops keyservice``: what it refuses, before any key is used, and what it never says.

Requests go over a real gRPC channel to a server on a free 127.0.0.1 port (in-process, so
the log lines can be read), as raw bytes: malformed and hostile messages are sent as they
are, not as a well-behaved client would build them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from secretops.keyservice.protocol import DECRYPT, ENCRYPT, key_message, messages
from secretops.keyservice.server import (
    MAX_MESSAGE,
    Server,
    Service,
    listen_address,
    warnings_for,
)
from tests.helpers import AgeKey, assert_no_canary, make_age_key

DATA_KEY = bytes(range(32))


class Running:
    def __init__(self, env: dict[str, str]) -> None:
        self.log: list[str] = []
        self.server = Server(listen_address("tcp", "127.0.0.1:0"),
                             Service(env, log=self.log.append))
        self.channel = grpc.insecure_channel(self.server.where[len("tcp://"):])

    def call(self, method: str, request: bytes) -> bytes:
        stub = self.channel.unary_unary(method, request_serializer=None,
                                        response_deserializer=None)
        out: bytes = stub(request, timeout=30)
        return out

    def refused(self, method: str, request: bytes) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as info:
            self.call(method, request)
        err: Any = info.value
        return err.code(), err.details()


@pytest.fixture
def served(age_key: AgeKey) -> Iterator[Running]:
    r = Running(dict(os.environ))
    yield r
    r.channel.close()
    r.server.stop(0)


def _wrap(recipient: str, payload: bytes) -> str:
    import pyrage
    from pyrage import x25519

    return pyrage.encrypt(payload, [x25519.Recipient.from_str(recipient)],
                          armored=True).decode()


def _decrypt_request(recipient: str, enc: bytes) -> bytes:
    m = messages()
    req = m.decrypt_request(key=key_message("age", {"recipient": recipient}), ciphertext=enc)
    return bytes(req.SerializeToString())


def _encrypt_request(recipient: str, plaintext: bytes) -> bytes:
    m = messages()
    req = m.encrypt_request(key=key_message("age", {"recipient": recipient}),
                            plaintext=plaintext)
    return bytes(req.SerializeToString())


def _secret_forms() -> list[str]:
    return [DATA_KEY.hex(), base64.b64encode(DATA_KEY).decode()]


def test_round_trip_and_nothing_secret_logged(served: Running, age_key: AgeKey) -> None:
    m = messages()
    enc = m.encrypt_response.FromString(
        served.call(ENCRYPT, _encrypt_request(age_key.recipient, DATA_KEY))).ciphertext
    assert enc.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    out = m.decrypt_response.FromString(
        served.call(DECRYPT, _decrypt_request(age_key.recipient, enc))).plaintext
    assert out == DATA_KEY
    log = "\n".join(served.log)
    assert "encrypt age recipient" in log and "decrypt age recipient" in log
    for form in _secret_forms():
        assert_no_canary(log, "the key service's log", secret=form)


@pytest.mark.parametrize(("method", "request_bytes", "code", "says"), [
    (DECRYPT, b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT, "not a well-formed"),
    (ENCRYPT, b"\x12\x20" + bytes(32), grpc.StatusCode.INVALID_ARGUMENT, "names no key"),
    # a Key of field 8 (a kind a newer sops might add): a kind this service does not know
    (DECRYPT, b"\x0a\x06\x42\x04\x0a\x02id\x12\x01x", grpc.StatusCode.INVALID_ARGUMENT,
     "does not know"),
    (ENCRYPT, None, grpc.StatusCode.INVALID_ARGUMENT, "data keys (32 bytes)"),
    (DECRYPT, b"", grpc.StatusCode.INVALID_ARGUMENT, "the ciphertext is 0 bytes"),
    (DECRYPT, "\xe9".encode("latin-1") * 10, grpc.StatusCode.INVALID_ARGUMENT, "not ASCII"),
    ("/KeyService/Other", b"", grpc.StatusCode.UNIMPLEMENTED, ""),
])
def test_malformed_requests_are_refused_typed(served: Running, age_key: AgeKey, method: str,
                                              request_bytes: bytes | None,
                                              code: grpc.StatusCode, says: str) -> None:
    if request_bytes is None:  # not a data key: 31 bytes
        request_bytes = _encrypt_request(age_key.recipient, DATA_KEY[:31])
    elif method == DECRYPT and (request_bytes == b"" or request_bytes.startswith(b"\xe9")):
        request_bytes = _decrypt_request(age_key.recipient, request_bytes)
    got, details = served.refused(method, request_bytes)
    assert got == code and says in details, (got, details)


def test_a_message_over_the_limit_is_refused_before_it_is_read(served: Running,
                                                               age_key: AgeKey) -> None:
    big = _decrypt_request(age_key.recipient, b"A" * MAX_MESSAGE)
    got, _ = served.refused(DECRYPT, big)
    assert got == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert served.log == []  # the handler never ran


def test_decrypt_failures_name_the_key_never_the_secret(served: Running, age_key: AgeKey,
                                                       tmp_path: Path) -> None:
    other = make_age_key(tmp_path, "other.txt")
    enc = _wrap(other.recipient, DATA_KEY).encode()
    got, details = served.refused(DECRYPT, _decrypt_request(other.recipient, enc))
    assert got == grpc.StatusCode.NOT_FOUND and other.recipient in details
    # a payload that is not a data key (the entry was altered) is not handed out
    enc = _wrap(age_key.recipient, DATA_KEY + b"more than a data key").encode()
    got, details = served.refused(DECRYPT, _decrypt_request(age_key.recipient, enc))
    assert got == grpc.StatusCode.FAILED_PRECONDITION and "not a data key" in details
    text = details + "\n".join(served.log)
    for form in _secret_forms():
        assert_no_canary(text, "the refusal", secret=form)


def test_no_identity_of_the_kind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    r = Running(env)
    try:
        key = make_age_key(tmp_path, "k.txt")
        enc = _wrap(key.recipient, DATA_KEY).encode()
        got, details = r.refused(DECRYPT, _decrypt_request(key.recipient, enc))
        assert got == grpc.StatusCode.FAILED_PRECONDITION and "no age identity" in details
    finally:
        r.channel.close()
        r.server.stop(0)


@pytest.mark.parametrize(("network", "address", "says"), [
    ("tcp", ":5000", "names no host"),
    ("tcp", "5000", "not HOST:PORT"),
    ("tcp", "127.0.0.1:http", "not HOST:PORT"),
    ("tcp", "127.0.0.1:70000", "not HOST:PORT"),
    ("udp", "127.0.0.1:5000", "unknown network"),
    ("unix", "", "empty or longer"),
    ("unix", "/tmp/" + "x" * 200, "empty or longer"),
])
def test_listen_addresses_refused(network: str, address: str, says: str) -> None:
    from secretops.errors import SecretOpsError

    with pytest.raises(SecretOpsError) as info:
        listen_address(network, address)
    assert says in info.value.message and info.value.code == 1


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:5000", True), ("127.0.0.2:5000", True), ("[::1]:5000", True),
    ("localhost:5000", True), ("0.0.0.0:5000", False), ("192.0.2.1:5000", False),
    ("example.org:5000", False),
])
def test_only_loopback_is_quiet(address: str, loopback: bool) -> None:
    """Listening beyond loopback is only done when named, and then warned about."""
    listen = listen_address("tcp", address)
    assert listen.loopback is loopback
    assert bool(warnings_for(listen)) is not loopback
