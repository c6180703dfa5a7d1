"""A hostile tenant and a hostile network client against the running controller (issue 16).

* A tenant who may edit SealedSecrets but not read Secrets writes templates that once leaked a
  value into the Synced condition, an Event and the log (``values[password[::-1]]``, slices,
  ``|upper``, ``|list|join(" ")``), that stalled the controller for everyone (loops) or took it
  to 2.2 GB (250 keys of 1 MB). Now each fails alone, with fixed text, within the renderer's
  limits, while another namespace's SealedSecret syncs and ``/healthz`` answers.
* Anyone who can reach the controller's port sends ``POST /v1/verify`` with a value carrying
  2,000 extra age stanzas (once 38 s of a blocked event loop) and ``POST /v1/rotate`` with a
  941-byte YAML alias bomb (once +700 MiB): each is refused or cut off, more at once are
  refused with 429, and ``/healthz`` answers every poll within 1 s meanwhile.

``/healthz`` is polled with a 1 s client timeout while each hostile request or object is being
handled: a hang guard (every poll must answer), not a timed assertion. The module's teardown
scans every log, HTTP response, Event and status for the canary in any form.
"""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from secretops.errors import SecretOpsError
from secretops.sealing import unseal_sealed
from secretops.sealing.format import SealedValue, decode
from tests.controller.conftest import Controller, prepare_cluster
from tests.controller.helpers import (
    CANARY,
    apply,
    dump,
    healthy_throughout,
    load,
    peak_rss_mib,
    seal,
    secret,
    synced,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s

TENANT, NEIGHBOUR = "tenant", "neighbour"
TIMEOUT_S = 1  # --template-timeout
REQUEST_TIMEOUT_S = 2  # --request-timeout
FIXED = {
    "value-dependent": ("a template fails with the actual values but renders with empty "
                        "ones: what failed is not shown, since it depends on the values"),
    "undefined": "the template uses an undefined name, key or attribute",
    "timeout": f"the template did not finish within the time limit ({TIMEOUT_S} s)",
    "too-large": "the template renders to more than 1 MiB (all keys of the object together)",
}


BREAK_GLASS = x25519.Identity.generate()  # the operator's own: kept by --reseal-recipient


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_cluster(k8s_emulator, TENANT, NEIGHBOUR)
    ctl: Controller = start_controller(
        "--key-renew-period", "0", "--template-timeout", f"{TIMEOUT_S}s",
        "--request-timeout", f"{REQUEST_TIMEOUT_S}s",
        "--reseal-recipient", str(BREAK_GLASS.to_public()))
    return ctl


@pytest.fixture
def cert(controller: Controller, tmp_path: Path) -> Path:
    status, text = controller.get("/v1/cert")
    assert status == 200
    path = tmp_path / "cluster.txt"
    path.write_text(text)
    return path


def templated(cert: Path, ns: str, name: str, templates: dict[str, str]) -> str:
    """Sealed with its templates (bound to the values, as the sealer chose them)."""
    options = [a for k, v in templates.items() for a in ("--template", f"{k}={v}")]
    return seal(cert, "-n", ns, "--name", name, "--from-literal", f"password={CANARY}",
                "--from-literal", "user=admin", *options)


def condition_is(k8s: K8s, ns: str, name: str, reason: str) -> dict[str, Any] | None:
    cond = synced(k8s, ns, name)
    return cond if cond and cond["reason"] == reason else None


LEAKY = {
    "reversed": "{{ values[password[::-1]] }}",
    "slice": "{{ values[password[1:]] }}",
    "upper": "{{ values[password | upper] }}",
    "spaced": '{{ values[password | list | join(" ")] }}',
    "oracle": '{% if password.startswith("canary") %}{{ nope }}{% endif %}',
}


def test_template_failures_report_only_fixed_text(controller: Controller, k8s: K8s,
                                                  cert: Path) -> None:
    for name, template in LEAKY.items():
        apply(k8s, templated(cert, TENANT, f"leak-{name}", {"x": template}))
    apply(k8s, templated(cert, TENANT, "typo", {"x": "{{ .passwrd }}"}))
    for name in LEAKY:
        cond = wait_for(lambda n=name: condition_is(k8s, TENANT, f"leak-{n}", "TemplateError"),
                        what=f"leak-{name} fails")
        assert cond["status"] == "False"
        # the value-dependent ones say one fixed sentence, naming no key and no cause; the
        # others (a missing key whatever the values) name the key and a fixed category
        assert cond["message"].endswith(
            f'["spec"]["template"]["data"]: {FIXED["value-dependent"]}; key-ring keys tried: '
            + cond["message"].rsplit("key-ring keys tried: ", 1)[1]) or cond["message"].count(
            f'["spec"]["template"]["data"]["x"]: {FIXED["undefined"]}') == 1, cond["message"]
        assert secret(k8s, TENANT, f"leak-{name}") is None
    cond = wait_for(lambda: condition_is(k8s, TENANT, "typo", "TemplateError"), what="typo")
    assert f'["spec"]["template"]["data"]["x"]: {FIXED["undefined"]}' in cond["message"]
    # the teardown (scan_for_canary) checks every Event, status and log line for any form


def test_a_slow_template_stalls_only_its_own_object(controller: Controller, k8s: K8s,
                                                    cert: Path) -> None:
    """Nested loops once kept another namespace's SealedSecret unsynced for 20 s and
    /healthz unanswered; now they run in a worker killed after --template-timeout."""
    spin = ("{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}"
            "{% endfor %}")

    def scenario() -> None:
        apply(k8s, templated(cert, TENANT, "spin", {"x": spin}))
        apply(k8s, templated(cert, NEIGHBOUR, "fine", {"url": "db://{{ .user }}@host"}))
        wait_for(lambda: values(secret(k8s, NEIGHBOUR, "fine")).get("url") == b"db://admin@host",
                 timeout=15, what="the neighbour's templated Secret")
        cond = wait_for(lambda: condition_is(k8s, TENANT, "spin", "TemplateError"),
                        timeout=15, what="the slow template cut off")
        assert f'["data"]: {FIXED["timeout"]}' in cond["message"], cond["message"]

    healthy_throughout(controller, scenario)


def test_output_is_bounded_while_rendering(controller: Controller, k8s: K8s,
                                           cert: Path) -> None:
    """250 keys of 1 MB each once took the controller to 2.2 GB (its limit: 256 Mi)."""
    many = {f"k{i}": "{{ 'x' * 1000000 }}" for i in range(250)}

    def scenario() -> None:
        apply(k8s, templated(cert, TENANT, "huge", many))
        cond = wait_for(lambda: condition_is(k8s, TENANT, "huge", "TemplateError"),
                        timeout=15, what="the oversized template refused")
        assert f'["k1"]: {FIXED["too-large"]}' in cond["message"], cond["message"]

    healthy_throughout(controller, scenario)
    assert controller.proc is not None
    assert peak_rss_mib(controller.proc.pid) < 200


# ---- the HTTP endpoints ----------------------------------------------------------------------
def many_stanzas(cert: Path, ns: str, name: str, extra: int = 2000) -> str:
    """A SealedSecret whose one value's data key is wrapped for ``extra`` strangers first and
    the cluster last (made by hand: a sealing tool may refuse that many recipients)."""
    import pyrage
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    manifest = load(seal(cert, "-n", ns, "--name", name, "--from-literal", f"v={CANARY}"))
    cluster = x25519.Recipient.from_str(
        next(ln for ln in cert.read_text().splitlines() if ln.startswith("age1")))
    strangers = [x25519.Identity.generate().to_public() for _ in range(extra)]
    data_key, nonce = os.urandom(32), os.urandom(12)
    honest = decode(manifest["spec"]["encryptedData"]["v"])  # its place and template binding
    wrapped = bytes(pyrage.encrypt(data_key, [*strangers, cluster]))
    sealed = AESGCM(data_key).encrypt(nonce, CANARY.encode(), honest.header())
    manifest["spec"]["encryptedData"]["v"] = SealedValue(
        honest.binding, wrapped, nonce, sealed, honest.template).encode()
    return dump(manifest)


def alias_bomb(cert: Path) -> bytes:
    """A valid SealedSecret (anyone can seal for the cluster's public key) plus ~400 bytes of
    YAML aliases: 9**7 strings once expanded, which re-sealing keeps and a JSON answer spells
    out (once hundreds of MiB in the controller)."""
    manifest = seal(cert, "-n", TENANT, "--name", "bomb", "--from-literal", f"v={CANARY}")
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
               for i in range(6)]
    return (manifest + "\n".join(levels) + "\nz: *g\n").encode()


def test_a_request_with_many_stanzas_blocks_nothing(controller: Controller, cert: Path
                                                    ) -> None:
    body = many_stanzas(cert, TENANT, "stanzas").encode()
    status, text = healthy_throughout(
        controller, lambda: controller.request("POST", "/v1/verify", body, timeout=30))
    # refused before the work (a stanza limit) or cut off at --request-timeout: never done
    assert status in (409, 503), (status, text)


def test_an_alias_bomb_is_bounded(controller: Controller, cert: Path) -> None:
    assert controller.proc is not None
    bomb = alias_bomb(cert)
    before = peak_rss_mib(controller.proc.pid)
    status, text = healthy_throughout(controller, lambda: controller.request(
        "POST", "/v1/rotate", bomb, {"Accept": "application/json"}, timeout=60))
    # refused by an alias limit, or cut off by the worker's memory limit: never expanded here
    assert status in (409, 422, 503), (status, text[:200])
    assert peak_rss_mib(controller.proc.pid) - before < 32


def test_requests_beyond_the_limit_are_refused_at_once(controller: Controller, cert: Path
                                                       ) -> None:
    """One request per endpoint at a time (--request-workers 1): a client that holds
    /v1/verify (its body trickling in) makes the next one 429 at once, not queued; the other
    endpoint still answers; the slow client is cut off after --request-timeout."""
    small = seal(cert, "-n", TENANT, "--name", "small", "--from-literal", "v=x").encode()
    with socket.create_connection(("127.0.0.1", controller.port), timeout=30) as slow:
        slow.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: controller\r\n"
                     b"Content-Type: application/yaml\r\nContent-Length: 4096\r\n\r\nap")
        busy = wait_for(lambda: (r := controller.request("POST", "/v1/verify", small))[0] == 429
                        and r, timeout=10, what="a second /v1/verify refused")
        assert '"reason": "Busy"' in busy[1]
        assert controller.request("POST", "/v1/rotate", small)[0] == 200
        answer = slow.recv(4096)  # the hang guard is the socket's timeout
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert controller.request("POST", "/v1/verify", small)[0] == 200  # the slot is free again
    # a body over 1 MiB is refused before it is read
    assert controller.request("POST", "/v1/verify", b"x" * ((1 << 20) + 1))[0] == 413


def test_rotate_never_seals_for_a_recipient_the_caller_names(controller: Controller,
                                                             cert: Path) -> None:
    """A SealedSecret is no secret (it sits in git), and spec.recipients is not authenticated:
    POST /v1/rotate once re-sealed the values for any age recipient listed there — the
    caller's own key — and so handed every value to anyone who could reach the port. Now it
    re-seals for the ring's newest key and the recipients the controller was configured to
    keep (--reseal-recipient), whatever the body lists."""
    attacker = x25519.Identity.generate()
    manifest = load(seal(cert, "-n", TENANT, "--name", "stolen", "--from-literal",
                         f"v={CANARY}"))
    manifest["spec"]["recipients"] = [*(manifest["spec"].get("recipients") or []),
                                      str(attacker.to_public())]
    status, body = controller.request("POST", "/v1/rotate", dump(manifest).encode())
    assert status == 200, body
    resealed = load(body)
    with pytest.raises(SecretOpsError):
        unseal_sealed(resealed, [attacker])
    assert str(attacker.to_public()) not in resealed["spec"].get("recipients", [])
    # the recipients the operator configured are kept: a break-glass key opens the result
    secret_ = unseal_sealed(resealed, [BREAK_GLASS])
    assert base64.b64decode(secret_["data"]["v"]) == CANARY.encode()
