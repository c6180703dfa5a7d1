"""Key renewal with a short period, and --key-cutoff-time, against a fresh emulator.

New SealedSecrets are sealed for the newest key (``GET /v1/cert`` changes after a renewal);
values sealed for an older key keep unsealing, because old keys stay in the ring.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from secretops_controller.config import parse_duration
from secretops_controller.keyring import Key, renewal_due

from tests.controller.conftest import SYSTEM_NS, Controller, prepare_cluster
from tests.controller.helpers import CANARY, apply, seal, secret, values, wait_for
from tests.fixtures.k8s import K8s
from tests.helpers import secretops

APP = "renewal"
KEYS = (f"/api/v1/namespaces/{SYSTEM_NS}/secrets"
        "?labelSelector=secretops.dev%2Fsealing-key%3Dtrue")


def _recipient(ctl: Controller) -> str:
    status, text = ctl.get("/v1/cert")
    assert status == 200
    [line] = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return line


def _key_names(k8s: K8s) -> list[str]:
    return sorted(k["metadata"]["name"] for k in k8s.request("GET", KEYS)[1]["items"])


def test_renewal_moves_sealing_to_the_new_key_and_old_values_still_open(
        k8s: K8s, start_controller: Any, tmp_path: Path) -> None:
    prepare_cluster(k8s, APP)
    ctl: Controller = start_controller("--key-renew-period", "2s",
                                       "--key-refresh-interval", "0.5s")
    first = _recipient(ctl)
    old_cert = tmp_path / "old.txt"
    old_cert.write_text(first + "\n")

    second = wait_for(lambda: (r := _recipient(ctl)) != first and r, timeout=15,
                      what="a renewed key served on /v1/cert")
    assert len(_key_names(k8s)) >= 2  # the old key is kept
    cm = f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/secretops-sealing-recipients"
    wait_for(lambda: second in k8s.request("GET", cm)[1]["data"]["recipients.txt"],
             what="the ConfigMap republished")

    new_cert = tmp_path / "new.txt"
    new_cert.write_text(second + "\n")
    apply(k8s, seal(new_cert, "-n", APP, "--name", "new", "--from-literal", f"v={CANARY}"))
    apply(k8s, seal(old_cert, "-n", APP, "--name", "old", "--from-literal", f"v={CANARY}"))
    for name in ("new", "old"):
        wait_for(lambda n=name: values(secret(k8s, APP, n)) == {"v": CANARY.encode()},
                 what=f"Secret {name} unsealed")
    ctl.stop()


def test_cutoff_time_forces_a_new_key_at_start(k8s: K8s, start_controller: Any) -> None:
    prepare_cluster(k8s)
    before = _key_names(k8s)
    if not before:
        start_controller("--key-renew-period", "0").stop()
        before = _key_names(k8s)
    cutoff = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    wait_for(lambda: datetime.now(UTC) > datetime.fromisoformat(cutoff.replace("Z", "+00:00")),
             what="the cutoff passed")
    ctl = start_controller("--key-renew-period", "0", "--key-cutoff-time", cutoff)
    after = _key_names(k8s)
    assert set(before) < set(after) and len(after) == len(before) + 1
    created = {k["metadata"]["name"]: k["metadata"]["annotations"]["secretops.dev/created"]
               for k in k8s.request("GET", KEYS)[1]["items"]}
    assert created[max(after)] >= cutoff
    assert _recipient(ctl) in {k["metadata"]["annotations"]["secretops.dev/recipient"]
                               for k in k8s.request("GET", KEYS)[1]["items"]
                               if k["metadata"]["name"] == max(after)}


def test_renewal_due_decisions() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    key = Key("sealing-key-20260101-000000", t0, "age1x")
    assert renewal_due([], t0, 0, None) == "the key ring is empty"
    assert renewal_due([key], t0 + timedelta(days=29), parse_duration("30d"), None) is None
    assert renewal_due([key], t0 + timedelta(days=30), parse_duration("30d"), None)
    assert renewal_due([key], t0 + timedelta(days=999), 0, None) is None  # 0 disables
    assert "cutoff" in str(renewal_due([key], t0, 0, t0 + timedelta(seconds=1)))
    assert renewal_due([key], t0, 0, t0) is None


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0
    for bad in ("", "5x", "h", "1h 2m"):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


_BACKUP = re.compile(r"^kubectl get secret (-n \S+ -l \S+) -o yaml > keyring-backup\.yaml$", re.M)


def test_the_documented_key_ring_backup_restores_the_ring(
        k8s: K8s, start_controller: Any, tmp_path: Path) -> None:
    """The backup command of docs/sealing.md and docs/controller.md, run as written, captures
    the ring; deleted keys come back with ``kubectl apply -f`` of it (a ``kind: List``); the
    backup opens a SealedSecret offline and the restarted controller unseals with it."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    commands = {m for f in ("sealing.md", "controller.md")
                for m in _BACKUP.findall((docs / f).read_text())}
    assert commands and all(c.split()[1] == SYSTEM_NS for c in commands), commands
    prepare_cluster(k8s, "restore")
    ctl = start_controller("--key-renew-period", "0")
    cert = tmp_path / "cert.txt"
    cert.write_text(_recipient(ctl) + "\n")
    manifest = seal(cert, "-n", "restore", "--name", "bk", "--from-literal", f"v={CANARY}")
    (tmp_path / "sealed.yaml").write_text(manifest)
    apply(k8s, manifest)
    wait_for(lambda: values(secret(k8s, "restore", "bk")) == {"v": CANARY.encode()},
             what="unsealed")
    ctl.stop()
    backup = tmp_path / "keyring-backup.yaml"
    for command in sorted(commands):
        backup.write_text(k8s.kubectl("get", "secret", *command.split(), "-o", "yaml").stdout)
        names = _key_names(k8s)
        assert names and all(n in backup.read_text() for n in names)
    for name in _key_names(k8s):
        k8s.request("DELETE", f"/api/v1/namespaces/{SYSTEM_NS}/secrets/{name}")
    assert _key_names(k8s) == []
    assert "created" in k8s.kubectl("apply", "-f", str(backup)).stdout
    assert _key_names(k8s) == names
    r = secretops("unseal", "--identity", str(backup), str(tmp_path / "sealed.yaml"))
    assert r.code == 0 and "bk" in r.text
    k8s.request("DELETE", "/api/v1/namespaces/restore/secrets/bk")
    start_controller("--key-renew-period", "0")
    wait_for(lambda: values(secret(k8s, "restore", "bk")) == {"v": CANARY.encode()},
             what="unsealed with the restored key")
    assert _key_names(k8s) == names  # no new key was made
