"""The CLI reaches a cluster as kubectl does (issue 18, "One way to talk to Kubernetes").

``seal`` (fetching the recipients), ``verify --controller`` and ``reseal --controller`` run
against this module's emulator over HTTPS — client-go sends credentials only over TLS — and a
real controller whose ``/v1/cert``, ``/v1/verify`` and ``/v1/rotate`` the emulator's
``services/proxy`` reaches. Users authenticate as a service account with tokens from the
emulator's TokenRequest, which the emulator validates and audits: merged ``KUBECONFIG`` files,
``--context``, ``--kubeconfig``, exec credential plugins (v1 and v1beta1, ``env``,
``provideClusterInfo``, ``interactiveMode``, cached until ``expirationTimestamp``), CAs and client
certificates, the default fetch when no ``--cert`` is given, and never a token in any output.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import SYSTEM_NS, Controller, prepare_cluster
from tests.controller.helpers import CANARY, apply, load, secret, values
from tests.fixtures.k8s import K8s, free_port
from tests.helpers import Result, secretops
from tests.k8s.emulator.tls import make_certificates
from tests.k8s.helpers import wait_for

APP = "app"
SA = ("cli", "sealer")  # the user: a service account whose calls the emulator audits
PROXIED = f"/api/v1/namespaces/{SYSTEM_NS}/services/secretops-controller:http/proxy/"
PLUGIN = """#!/bin/sh
# A credential plugin: records that it ran (with what kubectl told it), prints its credential.
printf '%s %s\\n' "$PLUGIN_MARK" "$KUBERNETES_EXEC_INFO" >> "$PLUGIN_RECORD"
if [ -n "$PLUGIN_PARENT" ]; then
  echo "$PPID" > "$PLUGIN_PARENT.tmp" && mv "$PLUGIN_PARENT.tmp" "$PLUGIN_PARENT"
fi
# holds the request open until the test says go (polling, at most 60 s)
n=0
while [ -n "$PLUGIN_WAIT" ] && [ ! -e "$PLUGIN_WAIT" ] && [ $n -lt 1200 ]; do
  sleep 0.05; n=$((n+1))
done
if [ -n "$PLUGIN_FAIL" ]; then echo "$PLUGIN_FAIL" >&2; exit 3; fi
cat "$PLUGIN_CREDENTIAL"
"""


@pytest.fixture(scope="module")
def k8s_emulator(k8s_tls_emulator: K8s) -> K8s:
    """This module's cluster (and the controller's) is the HTTPS emulator."""
    return k8s_tls_emulator


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_cluster(k8s_emulator, APP)
    ctl: Controller = start_controller("--key-renew-period", "0")
    # Where the Service's port goes is emulator-only configuration (no Pods here).
    service = {"metadata": {"name": "secretops-controller", "annotations": {
        "emulator.secretops.dev/forward-to": f"127.0.0.1:{ctl.port}"}},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}
    status, body, _ = k8s_emulator.request(
        "POST", f"/api/v1/namespaces/{SYSTEM_NS}/services", service)
    assert status == 201, body
    return ctl


@pytest.fixture
def cert(controller: Controller, tmp_path: Path) -> Path:
    status, text = controller.get("/v1/cert")
    assert status == 200
    path = tmp_path / "cluster.txt"
    path.write_text(text)
    return path


def recipients(cert: Path) -> list[str]:
    return [ln for ln in cert.read_text().splitlines() if ln and not ln.startswith("#")]


class Cli:
    """Runs ``secretops`` and checks every run: no token, no traceback, one error line."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def __call__(self, *args: str) -> Result:
        r = secretops(*args)
        for token in self.tokens:
            assert token not in r.text and token not in r.err, "a token reached the output"
            assert token[-24:] not in r.err, "part of a token reached the output"
        assert "Traceback" not in r.err, r.err
        errors = [ln for ln in r.err.splitlines() if ln.startswith("secretops: error: ")]
        assert len(errors) == (r.code != 0), r.err
        return r


@pytest.fixture
def cli() -> Cli:
    return Cli()


def cluster_entry(k8s: K8s, **extra: Any) -> dict[str, Any]:
    assert k8s.ca_file is not None
    return {"server": k8s.url,
            "certificate-authority-data": base64.b64encode(k8s.ca_file.read_bytes()).decode(),
            **extra}


def config(**parts: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", **parts}


def write(path: Path, obj: dict[str, Any]) -> Path:
    path.write_text(json.dumps(obj, indent=2))  # JSON is YAML
    return path


class Plugin:
    """A credential plugin: ``exec`` user entries that run it; what it printed and its runs."""

    def __init__(self, directory: Path, token: str) -> None:
        self.script = directory / "credential-plugin.sh"
        self.script.write_text(PLUGIN)
        self.script.chmod(0o700)
        self.record = directory / "plugin-runs.txt"
        self.credential = directory / "credential.json"
        self.token = token
        self.issue(expires_in=3600)

    def issue(self, expires_in: float, api_version: str = "client.authentication.k8s.io/v1"
              ) -> None:
        """The next credential: this token, expiring ``expires_in`` seconds from now."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
        self.credential.write_text(json.dumps({
            "apiVersion": api_version, "kind": "ExecCredential",
            "status": {"token": self.token, "expirationTimestamp": stamp}}))

    def user(self, api_version: str = "client.authentication.k8s.io/v1", fail: str = "",
             wait: Path | None = None, parent: Path | None = None,
             **extra: Any) -> dict[str, Any]:
        """``fail``: exit 3 saying this; ``wait``: answer once this file exists; ``parent``:
        write the process id of what ran the plugin (kubectl) there."""
        env = [{"name": "PLUGIN_MARK", "value": "env-from-kubeconfig"},
               {"name": "PLUGIN_RECORD", "value": str(self.record)},
               {"name": "PLUGIN_CREDENTIAL", "value": str(self.credential)},
               {"name": "PLUGIN_FAIL", "value": fail},
               {"name": "PLUGIN_WAIT", "value": str(wait or "")},
               {"name": "PLUGIN_PARENT", "value": str(parent or "")}]
        if api_version.endswith("/v1"):
            extra.setdefault("interactiveMode", "IfAvailable")  # v1 requires it
        return {"exec": {"apiVersion": api_version, "command": str(self.script), "env": env,
                         "provideClusterInfo": True, **extra}}

    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.record.exists():
            return []
        lines = [ln for ln in self.record.read_text().splitlines() if ln]  # the JSON ends "\n"
        return [(mark, json.loads(info)) for mark, _, info in (ln.partition(" ") for ln in lines)]


@pytest.fixture
def plugin(k8s: K8s, tmp_path: Path) -> Plugin:
    return Plugin(tmp_path, k8s.token(*SA, expiration_seconds=24 * 3600))


def audited(k8s: K8s, endpoint: str) -> int:
    """How many calls the service account made to the controller's ``endpoint``."""
    return sum(1 for r in k8s.audit(f"{SA[0]}/{SA[1]}")
               if str(r.get("path", "")).endswith(PROXIED + endpoint))


def seal_to_file(cert: Path, path: Path, name: str, *args: str) -> Path:
    r = secretops("seal", "--cert", str(cert), "-n", APP, "--name", name,
                  "--from-literal", f"k={CANARY}", *args)
    assert r.code == 0, r.err
    path.write_text(r.text)
    return path


@pytest.mark.parametrize("api_version", ["client.authentication.k8s.io/v1",
                                         "client.authentication.k8s.io/v1beta1"])
def test_merged_kubeconfig_with_an_exec_plugin_fetches_the_cert_by_default(
        controller: Controller, k8s: K8s, cert: Path, plugin: Plugin, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, api_version: str) -> None:
    # a holds the user (an exec plugin), b the context (naming a's user) and the cluster:
    # kubectl's merge; the old hand-written reader took the first file only (KeyError).
    a = write(tmp_path / "a.yaml", config(users=[
        {"name": "sealer", "user": plugin.user(api_version, interactiveMode="Never")}]))
    b = write(tmp_path / "b.yaml", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer",
                                               "namespace": APP}}],
        **{"current-context": "work"}))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(a), str(b)]))
    plugin.issue(3600, api_version)
    cli.tokens.append(plugin.token)
    before = audited(k8s, "v1/cert")

    # No --cert, no --recipient, no -n: the context's controller and namespace, as kubeseal.
    name = f"fetched-{api_version[-2:]}"
    r = cli("seal", "--name", name, "--from-literal", f"k={CANARY}")
    assert r.code == 0, r.err
    sealed = load(r.text)
    assert sealed["spec"]["recipients"] == recipients(cert)
    assert sealed["metadata"]["namespace"] == APP
    runs = plugin.runs()
    assert [mark for mark, _ in runs] == ["env-from-kubeconfig"]  # ran once, with its env
    spec = runs[0][1]["spec"]
    assert runs[0][1]["apiVersion"] == api_version
    assert spec["cluster"]["server"] == k8s.url and spec["interactive"] is False
    assert audited(k8s, "v1/cert") == before + 1  # with the plugin's token, not as admin
    apply(k8s, r.text)
    wait_for(lambda: values(secret(k8s, APP, name)) == {"k": CANARY.encode()},
             what="the Secret from a SealedSecret sealed with the fetched recipients")

    r = cli("seal", "--fetch-cert", "-n", APP, "--name", name, "--from-literal", "k=v")
    assert r.code == 0 and load(r.text)["spec"]["recipients"] == recipients(cert), r.err
    assert len(plugin.runs()) == 2  # a new command, a new kubectl: the plugin runs again


def test_an_interactive_plugin_gets_the_terminal(
        controller: Controller, k8s: K8s, cert: Path, plugin: Plugin, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a terminal on stdin and stderr, kubectl gets them (a login prompt, a device code):
    a plugin with interactiveMode Always runs, told that it is interactive."""
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        users=[{"name": "sealer", "user": plugin.user(interactiveMode="Always")}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer"}}],
        **{"current-context": "work"}))
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    terminal, side = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "secretops", "seal", "-n", APP, "--name", "tty",
             "--from-literal", "k=v"],
            stdin=side, stderr=side, stdout=subprocess.PIPE, timeout=60)
    finally:
        os.close(side)
        os.close(terminal)
    assert proc.returncode == 0
    assert load(proc.stdout.decode())["spec"]["recipients"] == recipients(cert)
    runs = plugin.runs()
    assert len(runs) == 1 and runs[0][1]["spec"]["interactive"] is True
    assert plugin.token not in proc.stdout.decode()


def test_an_exec_credential_is_reused_until_it_expires(
        controller: Controller, k8s: K8s, cert: Path, plugin: Plugin, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        users=[{"name": "sealer", "user": plugin.user()}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer"}}],
        **{"current-context": "work"}))
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    cli.tokens.append(plugin.token)
    files = [seal_to_file(cert, tmp_path / f"s{i}.yaml", f"cached-{i}") for i in range(3)]

    before = audited(k8s, "v1/verify")
    r = cli("verify", "--controller", *map(str, files))
    assert r.code == 0 and r.text.count("ok: 1 values open") == 3, r.err
    assert len(plugin.runs()) == 1  # one credential for the three calls
    assert audited(k8s, "v1/verify") == before + 3

    plugin.issue(expires_in=-60)  # what the plugin prints from now on has expired already
    r = cli("verify", "--controller", *map(str, files))
    assert r.code == 0, r.err
    assert len(plugin.runs()) == 1 + 3  # fetched again for every call


def test_context_and_kubeconfig_choose_the_cluster(
        controller: Controller, k8s: K8s, cert: Path, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    token = k8s.token(*SA, expiration_seconds=24 * 3600)
    cli.tokens.append(token)
    dead = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)},
                  {"name": "gone", "cluster": cluster_entry(k8s, server=dead)}],
        users=[{"name": "sealer", "user": {"token": token}}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer"}},
                  {"name": "old", "context": {"cluster": "gone", "user": "sealer"}}],
        **{"current-context": "old"}))
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    sealed = seal_to_file(cert, tmp_path / "s.yaml", "ctx")

    r = cli("verify", "--controller", str(sealed))
    assert r.code == 162 and "context 'old'" in r.err and "refused" in r.err, r.err
    r = cli("verify", "--controller", "--context", "work", str(sealed))
    assert r.code == 0, r.err
    r = cli("verify", "--controller", "--context", "nope", str(sealed))
    assert r.code == 162 and "nope" in r.err, r.err

    # --kubeconfig wins over KUBECONFIG, which now names nothing usable
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing.yaml"))
    r = cli("reseal", "--controller", "--kubeconfig", str(config_file), "--context", "work",
            "-i", str(sealed))
    assert r.code == 0, r.err
    r = cli("seal", "--kubeconfig", str(config_file), "--context", "work", "-n", APP,
            "--name", "flags", "--from-literal", "k=v")
    assert r.code == 0 and load(r.text)["spec"]["recipients"] == recipients(cert), r.err


def test_tls_and_credential_failures_are_one_clean_line(
        controller: Controller, k8s: K8s, plugin: Plugin, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    other_ca = tmp_path / "other-ca"
    make_certificates(other_ca)
    client_a, client_b = tmp_path / "client-a", tmp_path / "client-b"
    make_certificates(client_a)
    make_certificates(client_b)
    token = k8s.token(*SA, expiration_seconds=24 * 3600)
    cli.tokens += [token, plugin.token]

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    cases: list[tuple[dict[str, Any], dict[str, Any], int, tuple[str, ...]]] = [
        # a CA that did not sign the server's certificate
        ({"certificate-authority-data": b64(other_ca / "ca.crt")}, {"token": token}, 162,
         ("certificate signed by unknown authority",)),
        # a client certificate with another certificate's key
        ({}, {"client-certificate-data": b64(client_a / "tls.crt"),
              "client-key-data": b64(client_b / "tls.key")}, 162,
         ("exited with status", "private key does not match public key")),
        # a credential plugin that fails, and one that needs a terminal it does not have
        ({}, plugin.user(fail="no session: log in first"), 162,
         ("getting credentials", "no session: log in first")),
        ({}, plugin.user(interactiveMode="Always"), 162, ("standard input is not a terminal",)),
        # not verifying the server at all is the user's choice, and works
        ({"insecure-skip-tls-verify": True, "certificate-authority-data": None},
         {"token": token}, 0, ()),
    ]
    for i, (cluster, user, code, said) in enumerate(cases):
        entry = {k: v for k, v in cluster_entry(k8s, **cluster).items() if v is not None}
        path = write(tmp_path / f"config-{i}", config(
            clusters=[{"name": "emu", "cluster": entry}],
            users=[{"name": "u", "user": user}],
            contexts=[{"name": f"case-{i}", "context": {"cluster": "emu", "user": "u"}}],
            **{"current-context": f"case-{i}"}))
        monkeypatch.setenv("KUBECONFIG", str(path))
        r = cli("seal", "--fetch-cert", "-n", APP, "--name", "x", "--from-literal", "k=v")
        assert r.code == code, (i, r.err)
        if code:
            assert f"Service {SYSTEM_NS}/secretops-controller" in r.err, r.err
            assert f"context 'case-{i}'" in r.err, r.err
            for words in said:
                assert words in r.err, (i, r.err)


def test_when_seal_goes_to_the_cluster(
        controller: Controller, k8s: K8s, cert: Path, plugin: Plugin, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        users=[{"name": "sealer", "user": plugin.user()}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer"}}],
        **{"current-context": "work"}))
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    cli.tokens.append(plugin.token)
    literal = ("-n", APP, "--name", "x", "--from-literal", "k=v")

    # Something to seal for is given: offline, the cluster is not asked.
    r = cli("seal", "--cert", str(cert), *literal)
    assert r.code == 0 and plugin.runs() == [], r.err
    breakglass = recipients(cert)[0]
    r = cli("seal", "-r", breakglass, *literal)
    assert r.code == 0 and plugin.runs() == [], r.err
    r = cli("seal", "--cert", str(cert), "--context", "work", *literal)  # a context alone
    assert r.code == 0 and plugin.runs() == [], r.err
    monkeypatch.setenv("SECRETOPS_SEALING_CERT", str(cert))
    r = cli("seal", *literal)
    assert r.code == 0 and plugin.runs() == [], r.err
    monkeypatch.delenv("SECRETOPS_SEALING_CERT")

    # Nothing given: the controller of the current context; its Service missing is 162.
    r = cli("seal", "--controller-name", "nope", *literal)
    assert r.code == 162 and f"Service {SYSTEM_NS}/nope" in r.err and "HTTP 404" in r.err
    assert "context 'work'" in r.err, r.err
    # A Secret naming no namespace is sealed for the context's ("default": it names none).
    r = cli("seal", "--name", "x", "--from-literal", "k=v")
    assert r.code == 0 and load(r.text)["metadata"]["namespace"] == "default", r.err

    # No kubeconfig context: the old "no recipient" (111), saying what was tried.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing.yaml"))
    r = cli("seal", *literal)
    assert r.code == 111 and "--cert" in r.err and "no current context" in r.err, r.err
    # ... unless the cluster was asked for: then it is 162.
    r = cli("seal", "--fetch-cert", *literal)
    assert r.code == 162 and "no current context" in r.err, r.err

    # No kubectl at all.
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    r = cli("seal", *literal)
    assert r.code == 111 and "kubectl is not on PATH" in r.err, r.err
    sealed = seal_to_file(cert, tmp_path / "s.yaml", "offline")  # needs no kubectl
    r = cli("verify", "--controller", str(sealed))
    assert r.code == 162 and "kubectl is not on PATH" in r.err, r.err


def test_a_refused_token_is_401_and_says_so(
        controller: Controller, k8s: K8s, cert: Path, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    token = k8s.token(*SA, expiration_seconds=600)
    cli.tokens.append(token)
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        users=[{"name": "sealer", "user": {"tokenFile": str(tmp_path / "token")}}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer"}}],
        **{"current-context": "work"}))
    (tmp_path / "token").write_text(token)
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    sealed = seal_to_file(cert, tmp_path / "s.yaml", "expiring")
    r = cli("verify", "--controller", str(sealed))
    assert r.code == 0, r.err
    k8s.advance_clock(601)  # the emulator's token clock; later tests' tokens last a day
    r = cli("verify", "--controller", str(sealed))
    assert r.code == 162 and "HTTP 401" in r.err and "log in again" in r.err, r.err


def test_a_file_naming_no_namespace_is_asked_about_in_the_contexts(
        controller: Controller, k8s: K8s, cert: Path, cli: Cli, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where kubectl apply would put it: -n, else the context's namespace."""
    token = k8s.token(*SA, expiration_seconds=24 * 3600)
    cli.tokens.append(token)
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        users=[{"name": "sealer", "user": {"token": token}}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer",
                                               "namespace": APP}}],
        **{"current-context": "work"}))
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    sealed = load(seal_to_file(cert, tmp_path / "s.yaml", "nameless").read_text())
    del sealed["metadata"]["namespace"]
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text(json.dumps(sealed))

    r = cli("verify", "--controller", str(nameless))
    assert r.code == 0 and "ok: 1 values open" in r.text, r.err
    r = cli("verify", "--controller", "-n", "elsewhere", str(nameless))
    assert r.code == 160 and "ScopeMismatch" in r.err, r.err
    r = cli("reseal", "--controller", "-i", str(nameless))
    assert r.code == 0, r.err
    resealed = load(nameless.read_text())
    assert "namespace" not in resealed["metadata"]  # the file keeps its shape
    assert resealed["spec"]["encryptedData"]["k"] != sealed["spec"]["encryptedData"]["k"]
    r = cli("verify", "--controller", str(nameless))
    assert r.code == 0, r.err


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for a non-reaping init does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kubectl_proxy_does_not_outlive_a_killed_command(
        controller: Controller, k8s: K8s, plugin: Plugin, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """It serves the user's credentials on its socket: SIGKILL of secretops stops it too."""
    go, parent = tmp_path / "go", tmp_path / "kubectl.pid"
    config_file = write(tmp_path / "config", config(
        clusters=[{"name": "emu", "cluster": cluster_entry(k8s)}],
        users=[{"name": "sealer", "user": plugin.user(wait=go, parent=parent)}],
        contexts=[{"name": "work", "context": {"cluster": "emu", "user": "sealer"}}],
        **{"current-context": "work"}))
    monkeypatch.setenv("KUBECONFIG", str(config_file))
    tmp = Path(tempfile.mkdtemp(prefix="k"))  # the proxy's socket path must stay short
    monkeypatch.setenv("TMPDIR", str(tmp))
    seal = [sys.executable, "-m", "secretops", "seal", "-n", APP, "--name", "killed",
            "--from-literal", "k=v"]
    proc = subprocess.Popen(seal, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        kubectl = int(wait_for(lambda: parent.exists() and parent.read_text().strip(),
                               what="the plugin, run by kubectl proxy, holding the request"))
        assert running(kubectl)
        proc.kill()
        proc.wait(10)
        wait_for(lambda: not running(kubectl), what="kubectl proxy stopped with its command")
        # the killed run's private directory (a dead socket, kubectl's log) is left ...
        assert [p.name.startswith("secretops-") for p in tmp.iterdir()] == [True]
    finally:
        go.touch()  # lets the plugin end
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # ... until the next command that reaches a cluster
    assert subprocess.run(seal, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
    assert list(tmp.iterdir()) == []
    tmp.rmdir()
