"""seal / unseal / reseal / verify from the command line, as a user runs them."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from secretops.sealing.keyring import keyring_secret
from tests.helpers import CANARY, TESTDATA, AgeKey, assert_no_canary, make_age_key, secretops

SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app: db
type: Opaque
stringData:
  password: {CANARY}
  user: admin
"""


@pytest.fixture
def cluster(tmp_path: Path) -> AgeKey:
    return make_age_key(tmp_path, "cluster.key")


@pytest.fixture
def cert(tmp_path: Path, cluster: AgeKey) -> Path:
    path = tmp_path / "cluster.txt"
    path.write_text(f"# the prod cluster's sealing key\n{cluster.recipient}\n")
    return path


@pytest.fixture
def breakglass(tmp_path: Path) -> AgeKey:
    return make_age_key(tmp_path, "break-glass.key")


def _seal(tmp_path: Path, cert: Path, *extra: str, name: str = "sealed.yaml") -> Path:
    src = tmp_path / "secret.yaml"
    src.write_text(SECRET)
    out = tmp_path / name
    r = secretops("seal", "--cert", str(cert), *extra, str(src), "-w", str(out))
    assert r.code == 0, r.err
    assert CANARY not in out.read_text() + r.err + r.text
    return out


def _data(text: str | bytes) -> dict[str, bytes]:
    secret = yaml.safe_load(text)
    assert secret["kind"] == "Secret"
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_seal_then_unseal_with_the_cluster_key_or_break_glass(
    tmp_path: Path, cert: Path, cluster: AgeKey, breakglass: AgeKey
) -> None:
    sealed = _seal(tmp_path, cert, "--recipient", breakglass.recipient)
    doc = yaml.safe_load(sealed.read_text())
    assert doc["apiVersion"] == "secretops.dev/v1alpha1" and doc["kind"] == "SealedSecret"
    assert doc["spec"]["recipients"] == [cluster.recipient, breakglass.recipient]
    for key in (cluster, breakglass):
        r = secretops("unseal", "--identity", str(key.path), str(sealed))
        assert r.code == 0, r.err
        assert _data(r.out) == {"password": CANARY.encode(), "user": b"admin"}
        assert yaml.safe_load(r.out)["metadata"]["labels"] == {"app": "db"}


def test_several_clusters_each_open_alone(tmp_path: Path, cert: Path, cluster: AgeKey) -> None:
    us = make_age_key(tmp_path, "us.key")
    us_cert = tmp_path / "us.txt"
    us_cert.write_text(f"# us\n{us.recipient}\n")
    sealed = _seal(tmp_path, cert, "--cert", str(us_cert))
    for key in (cluster, us):
        r = secretops("verify", "--identity", str(key.path), str(sealed))
        assert r.code == 0, r.err


def test_seal_a_manifest_from_stdin_with_its_namespace_given(cert: Path) -> None:
    text = SECRET.replace("  namespace: prod\n", "")
    r = secretops("seal", "--cert", str(cert), input=text.encode())
    assert r.code == 150 and "scope strict needs a namespace" in r.err and "--namespace" in r.err
    r = secretops("seal", "--cert", str(cert), "-n", "dev", input=text.encode())
    assert r.code == 0, r.err
    assert yaml.safe_load(r.out)["metadata"] == {"name": "db", "namespace": "dev"}
    r = secretops("seal", "--cert", str(cert), "-n", "dev", input=SECRET.encode())
    assert r.code == 8 and "namespace is 'prod', not 'dev'" in r.err


def test_seal_from_literals_and_files_as_json(tmp_path: Path, cert: Path,
                                              cluster: AgeKey) -> None:
    (tmp_path / "ca.crt").write_bytes(b"\x00binary\xff")
    r = secretops("seal", "--cert", str(cert), "-n", "prod", "--name", "api",
                  "--scope", "namespace-wide", "--from-literal", f"token={CANARY}",
                  "--from-file", str(tmp_path / "ca.crt"), "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["spec"]["scope"] == "namespace-wide"
    assert sorted(doc["spec"]["encryptedData"]) == ["ca.crt", "token"]
    (tmp_path / "s.json").write_bytes(r.out)
    r = secretops("unseal", "--identity", str(cluster.path), "-o", "json",
                  str(tmp_path / "s.json"))
    assert r.code == 0, r.err
    assert base64.b64decode(json.loads(r.out)["data"]["ca.crt"]) == b"\x00binary\xff"


def test_merge_into_keeps_the_other_values_byte_identical(
    tmp_path: Path, cert: Path, cluster: AgeKey
) -> None:
    sealed = _seal(tmp_path, cert)
    before = sealed.read_text().splitlines()
    r = secretops("seal", "--cert", str(cert), "--merge-into", str(sealed),
                  "--from-literal", "token=new", "--from-literal", "user=root")
    assert r.code == 0, r.err
    assert "sealed token, user" in r.err
    after = sealed.read_text().splitlines()
    changed = [ln for ln in after if ln not in before]
    assert [ln.split(":")[0].strip() for ln in changed] == ["token", "user"]
    assert [ln.strip()[:5] for ln in before if ln not in after] == ["user:"]
    assert next(ln for ln in after if "password:" in ln) == next(
        ln for ln in before if "password:" in ln)
    r = secretops("unseal", "--identity", str(cluster.path), str(sealed))
    assert _data(r.out) == {"password": CANARY.encode(), "user": b"root", "token": b"new"}


def test_merge_into_refuses_another_scope_or_name(tmp_path: Path, cert: Path) -> None:
    sealed = _seal(tmp_path, cert)
    text = sealed.read_bytes()
    r = secretops("seal", "--cert", str(cert), "--merge-into", str(sealed), "--scope",
                  "cluster-wide", "--from-literal", "a=b")
    assert r.code == 8 and "scope is strict" in r.err
    r = secretops("seal", "--cert", str(cert), "--merge-into", str(sealed), "--name", "other",
                  "--from-literal", "a=b")
    assert r.code == 8 and "name is 'other'" in r.err
    assert sealed.read_bytes() == text


def test_raw_prints_one_sealed_value(tmp_path: Path, cert: Path, cluster: AgeKey) -> None:
    r = secretops("seal", "--raw", "--cert", str(cert), "-n", "prod", "--name", "db",
                  "--key", "token", input=CANARY.encode())
    assert r.code == 0, r.err
    text = r.text.strip()
    assert "\n" not in text and text.startswith("U09TT")
    from secretops.sealing import load_identities, unseal_value

    ids = load_identities(cluster.path.read_bytes(), "k")
    assert unseal_value(text, ids, "strict", "prod", "db", "token") == CANARY.encode()
    r = secretops("seal", "--raw", "--cert", str(cert), "-n", "prod", "--name", "db",
                  input=b"x")
    assert r.code == 8 and "--key" in r.err
    r = secretops("seal", "--raw", "--cert", str(cert), "--key", "k", input=b"x")
    assert r.code == 150 and "scope strict needs a namespace" in r.err


def test_unseal_with_a_key_ring_backup(tmp_path: Path, cluster: AgeKey, cert: Path) -> None:
    """kubectl get secret -l secretops.dev/sealing-key -o yaml > backup.yaml is enough."""
    old = make_age_key(tmp_path, "old.key")
    sealed = _seal(tmp_path, cert)
    items = [keyring_secret(k.secret, k.recipient, datetime(2026, 1, n, tzinfo=UTC), "secretops")
             for n, k in ((1, old), (2, cluster))]
    backup = tmp_path / "backup.yaml"
    backup.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    r = secretops("unseal", "--identity", str(backup), "-w", str(tmp_path / "out.yaml"),
                  str(sealed))
    assert r.code == 0, r.err
    out = tmp_path / "out.yaml"
    assert out.stat().st_mode & 0o777 == 0o600
    assert _data(out.read_text())["password"] == CANARY.encode()


def test_reseal_for_a_new_cluster(tmp_path: Path, cert: Path, cluster: AgeKey,
                                  breakglass: AgeKey) -> None:
    sealed = _seal(tmp_path, cert, "-r", breakglass.recipient)
    new = make_age_key(tmp_path, "new-cluster.key")
    new_cert = tmp_path / "new.txt"
    new_cert.write_text(new.recipient + "\n")
    r = secretops("reseal", "--identity", str(breakglass.path), "--cert", str(new_cert),
                  "-r", breakglass.recipient, "-i", str(sealed))
    assert r.code == 0, r.err
    assert CANARY not in sealed.read_text() + r.err
    assert secretops("verify", "--identity", str(new.path), str(sealed)).code == 0
    assert secretops("verify", "--identity", str(breakglass.path), str(sealed)).code == 0
    r = secretops("verify", "--identity", str(cluster.path), str(sealed))
    assert r.code == 128 and "no identity given opens" in r.err


def test_verify_exit_codes_and_no_values(tmp_path: Path, cert: Path, cluster: AgeKey) -> None:
    sealed = _seal(tmp_path, cert)
    r = secretops("verify", "--identity", str(cluster.path), str(sealed))
    assert (r.code, r.text) == (0, f"{sealed}: ok: 2 values open\n")
    doc = yaml.safe_load(sealed.read_text())

    def variant(name: str, change: object) -> Path:
        d = json.loads(json.dumps(doc))
        change(d)  # type: ignore[operator]
        p = tmp_path / name
        p.write_text(yaml.safe_dump(d))
        return p

    moved = variant("moved.yaml", lambda d: d["metadata"].update(namespace="staging"))
    renamed = variant("renamed.yaml", lambda d: d["spec"]["encryptedData"].update(
        pwd=d["spec"]["encryptedData"].pop("password")))

    def tamper(d: dict) -> None:  # type: ignore[type-arg]
        raw = bytearray(base64.b64decode(d["spec"]["encryptedData"]["user"]))
        raw[-1] ^= 1
        d["spec"]["encryptedData"]["user"] = base64.b64encode(bytes(raw)).decode()

    tampered = variant("tampered.yaml", tamper)
    garbled = variant("garbled.yaml", lambda d: d["spec"]["encryptedData"].update(user="AAAA"))
    for path, code, message in [
        (moved, 160, 'sealed for strict scope, namespace "prod", name "db", not for strict '
                     'scope, namespace "staging", name "db"'),
        (renamed, 160, 'key "password", not for strict scope, namespace "prod", name "db", '
                       'key "pwd"'),
        (tampered, 25, "altered"),
        (garbled, 161, "no SOSL header"),
    ]:
        r = secretops("verify", "--identity", str(cluster.path), str(path))
        assert r.code == code, (path, r.err)
        assert message in r.err, r.err
        assert r.err.startswith(f"secretops: error: {path}: ")
        assert CANARY not in r.err + r.text and "admin" not in r.err + r.text
    r = secretops("unseal", "--identity", str(cluster.path), str(moved))
    assert r.code == 160 and r.out == b"" and "secretops: hint: " in r.err


def test_no_recipient_and_bad_recipients(tmp_path: Path) -> None:
    src = tmp_path / "secret.yaml"
    src.write_text(SECRET)
    r = secretops("seal", str(src))
    assert r.code == 111 and "--cert" in r.err
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\nage1notakey\n")
    r = secretops("seal", "--cert", str(bad), str(src))
    assert r.code == 154 and "bad.txt: line 2" in r.err


class _Handler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path == "/v1/cert":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cert_server(cluster: AgeKey) -> Iterator[str]:
    handler = type("H", (_Handler,), {"body": f"{cluster.recipient}\n".encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_cert_from_a_url(tmp_path: Path, cert_server: str, cluster: AgeKey) -> None:
    src = tmp_path / "secret.yaml"
    src.write_text(SECRET)
    r = secretops("seal", "--cert", f"{cert_server}/v1/cert", str(src))
    assert r.code == 0, r.err
    (tmp_path / "s.yaml").write_bytes(r.out)
    assert secretops("verify", "--identity", str(cluster.path), str(tmp_path / "s.yaml")).code \
        == 0
    r = secretops("seal", "--cert", f"{cert_server}/missing", str(src))
    assert r.code == 162 and "HTTP 404" in r.err


def test_from_bitnami(tmp_path: Path, cert: Path, cluster: AgeKey) -> None:
    vectors = TESTDATA / "bitnami"
    out = tmp_path / "ours.yaml"
    args = ("seal", "--from-bitnami", str(vectors / "ok-strict.yaml"), "--bitnami-key",
            str(vectors / "key-backup.yaml"), "--cert", str(cert), "-w", str(out))
    r = secretops(*args)  # its template renders values, unauthenticated in their format
    assert r.code == 164 and "--bind-template" in r.err and not out.exists(), r.err
    assert len(r.err.splitlines()) == 2 and CANARY not in r.err  # error and hint
    r = secretops(*args, "--bind-template")
    assert r.code == 0, r.err
    r = secretops("unseal", "--identity", str(cluster.path), str(out))
    assert _data(r.out)["url"] == f"postgres://admin:{CANARY}@db".encode()
    r = secretops("seal", "--from-bitnami", str(vectors / "fail-moved-scope.yaml"),
                  "--bitnami-key", str(vectors / "key-backup.yaml"), "--cert", str(cert))
    assert r.code == 160 and r.out == b"" and CANARY not in r.err
    r = secretops("seal", "--from-bitnami", str(vectors / "ok-strict.yaml"), "--cert", str(cert))
    assert r.code == 111 and "--bitnami-key" in r.err
    r = secretops("unseal", "--identity", str(vectors / "key-backup.yaml"),
                  str(vectors / "ok-strict.yaml"))
    assert r.code == 154 and "--from-bitnami" in r.err


def test_conflicting_modes(tmp_path: Path, cert: Path) -> None:
    sealed = _seal(tmp_path, cert)
    r = secretops("seal", "--raw", "--merge-into", str(sealed), "--cert", str(cert),
                  "--key", "k", input=b"x")
    assert r.code == 8
    r = secretops("seal", "--cert", str(cert), str(tmp_path / "secret.yaml"),
                  "--from-literal", "a=b")
    assert r.code == 8


def test_offline_rendering_is_bounded_and_says_nothing_of_the_values(
        tmp_path: Path, cert: Path, cluster: AgeKey) -> None:
    """unseal and verify --identity render templates with the same bounded renderer as the
    controller: a spinning template is cut off (2 s, the default), a leaky one fails with
    fixed text, and the error line never carries a value or anything computed from one."""
    cases = {
        "spin": ("{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}"
                 "{% endfor %}", '["spec"]["template"]["data"]: the template did not finish '
                                 "within the time limit (2 s)"),
        "reversed": ("{{ values[password[::-1]] }}", '["spec"]["template"]["data"]["x"]: the '
                     "template uses an undefined name, key or attribute"),
        "oracle": ('{% if password.startswith("canary") %}{{ nope }}{% endif %}',
                   '["spec"]["template"]["data"]: a template fails with the actual values but '
                   "renders with empty ones: what failed is not shown, since it depends on "
                   "the values"),
    }
    for name, (template, message) in cases.items():
        path = _seal(tmp_path, cert, "--template", f"x={template}", name=f"{name}.yaml")
        for command in ("unseal", "verify"):
            r = secretops(command, "--identity", str(cluster.path), str(path))
            assert r.code == 163, (name, command, r.err)
            assert f"secretops: error: {path}: {message}" in r.err, (name, command, r.err)
            assert_no_canary(r.err + r.text, f"{command} of {name}")
