"""The controller image, built here without Docker and run as a container against the emulator
(slow: ``pytest -m slow tests/install/test_image.py``; about two minutes, most of it the build).

* ``scripts/build-image`` (mmdebstrap, pip ``--require-hashes``, umoci) writes an OCI layout;
  ``SECRETOPS_IMAGE=/path/to/oci:TAG`` reuses one already built instead.
* The image: user 10001, entrypoint ``secretops-controller``, every package of the lock at its
  locked version and nothing else, no pip, every module byte-compiled at build time (the root
  filesystem is read-only at run time).
* The container (``runc``, :mod:`tests.install.container`): read-only root, no capability, its
  own PID and mount namespaces, the kubeconfig mounted read-only, the host's loopback. It
  becomes healthy, makes its sealing key, leads, and unseals a SealedSecret sealed for its
  ``/v1/cert`` into the Secret; its process runs as uid 10001; no canary in its log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.conftest import FAST, SYSTEM_NS, prepare_cluster
from tests.controller.helpers import CANARY, apply, seal, secret, values, wait_for
from tests.fixtures.k8s import K8s, free_port
from tests.helpers import assert_no_canary
from tests.install.container import Container, prepare_bundle, readable_copy, runtime, unpack

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "controller" / "requirements.lock"
APP = "image-app"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``LAYOUT:TAG`` of the image: built now, or ``$SECRETOPS_IMAGE``."""
    given = os.environ.get("SECRETOPS_IMAGE")
    if given:
        return given
    if os.geteuid() != 0:
        pytest.skip("scripts/build-image needs root (mmdebstrap, umoci)")
    missing = [t for t in ("mmdebstrap", "umoci") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install mmdebstrap umoci")
    out = tmp_path_factory.mktemp("image")
    subprocess.run([str(ROOT / "scripts" / "build-image"), str(out)], check=True,
                   stdin=subprocess.DEVNULL, timeout=1100)
    tag = re.search(r'^version = "(.+)"', (ROOT / "controller" / "pyproject.toml").read_text(),
                    re.M)
    assert tag
    return f"{out / 'oci'}:{tag[1]}"


@pytest.fixture(scope="module")
def unpacked(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed: apt-get install umoci")
    bundle = tmp_path_factory.mktemp("bundle") / "bundle"
    unpack(image, bundle)
    return bundle


def test_image_has_no_device_nodes(unpacked: Path) -> None:
    """The layer holds regular files, directories and links only (the runtime mounts /dev)."""
    special = [p for p in (unpacked / "rootfs").rglob("*")
               if not (p.is_symlink() or p.is_file() or p.is_dir())]
    assert special == []


def test_image_configuration(unpacked: Path) -> None:
    config = json.loads((unpacked / "config.json").read_text())
    assert config["process"]["user"]["uid"] == 10001
    assert config["process"]["user"]["gid"] == 10001
    assert config["process"]["args"] == ["/opt/venv/bin/secretops-controller"]
    assert "PYTHONDONTWRITEBYTECODE=1" in config["process"]["env"]
    rootfs = unpacked / "rootfs"
    assert "secretops:x:10001:10001:" in (rootfs / "etc" / "passwd").read_text()


def test_image_holds_the_lock_and_nothing_else(unpacked: Path) -> None:
    site = unpacked / "rootfs" / "opt" / "venv" / "lib" / "python3.11" / "site-packages"
    installed = {}
    for meta in site.glob("*.dist-info/METADATA"):
        text = meta.read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", text, re.M)
        version = re.search(r"^Version: (.+)$", text, re.M)
        assert name and version
        installed[re.sub(r"[-_.]+", "-", name[1].strip()).lower()] = version[1].strip()
    locked = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", LOCK.read_text(), re.M))
    # the lock's build backend (setuptools) is removed after the two local projects are built
    del locked["setuptools"]
    assert installed == {**locked, "secretops": "0.1.0", "secretops-controller": "0.1.0"}
    assert not (unpacked / "rootfs" / "opt" / "venv" / "bin" / "pip").exists()
    # byte-compiled at build time: nothing needs writing at run time
    for package in ("secretops", "secretops_controller", "kopf"):
        sources = list((site / package).rglob("*.py"))
        compiled = list((site / package).rglob("__pycache__/*.cpython-311.pyc"))
        assert sources and len(compiled) >= len(sources), package


@pytest.fixture
def container(image: str, unpacked: Path, k8s: K8s, tmp_path: Path) -> Iterator[Container]:
    found = runtime()
    if found is None:
        pytest.skip("no OCI runtime: apt-get install runc")
    bundle = tmp_path / "bundle"
    unpack(image, bundle)  # a fresh bundle: its config.json is changed below
    kubeconfig = readable_copy(k8s.kubeconfig, tmp_path / "etc-secretops")
    port = free_port()
    prepare_bundle(bundle, [
        "--kubeconfig", f"/etc/secretops/{kubeconfig.name}", "--namespace", SYSTEM_NS,
        "--http-host", "127.0.0.1", "--http-port", str(port), *FAST,
        "--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "0.5s",
    ], kubeconfig.parent)
    ctr = Container(bundle, f"secretops-test-{os.getpid()}-{port}", port,
                    tmp_path / "container.log", found)
    try:
        yield ctr
    finally:
        ctr.stop()
        assert_no_canary(ctr.logs(), "the container's log")
        assert_no_canary("\n".join(ctr.responses), "the container's HTTP answers")


def test_container_unseals_a_sealed_secret(container: Container, k8s: K8s,
                                           tmp_path: Path) -> None:
    prepare_cluster(k8s, APP)
    container.start()
    pid = container.state()["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^Uid:\s+10001\s", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status  # no capability
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    [root] = [m for m in mounts if m.split()[4] == "/"]
    assert "ro" in root.split()[5].split(","), root  # the root filesystem is read-only

    status_code, cert = container.get("/v1/cert")
    assert status_code == 200 and "\nage1" in cert, cert
    (tmp_path / "cert.txt").write_text(cert)
    apply(k8s, seal(tmp_path / "cert.txt", "-n", APP, "--name", "db",
                    "--from-literal", f"password={CANARY}"))
    wait_for(lambda: values(secret(k8s, APP, "db")) == {"password": CANARY.encode()},
             what="the Secret unsealed by the container")
    wait_for(lambda: "secretops_leader 1.0" in container.get("/metrics")[1],
             what="the container leads")
    keys = k8s.request("GET", f"/api/v1/namespaces/{SYSTEM_NS}/secrets"
                              "?labelSelector=secretops.dev/sealing-key%3Dtrue")[1]
    assert len(keys["items"]) == 1
