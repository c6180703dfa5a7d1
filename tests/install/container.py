"""Running the controller image as a real OCI container, with no Docker daemon.

``umoci unpack`` turns the image (an OCI layout, from ``scripts/build-image``) into a runtime
bundle: ``rootfs/`` and a ``config.json`` made from the image's configuration (its user 10001,
its entrypoint and environment). :func:`prepare_bundle` then sets what the Deployment sets:

* the root filesystem **read-only**, a 16 MiB tmpfs on ``/tmp`` (the Deployment's emptyDir);
* **no capability** at all (``drop: [ALL]``), ``noNewPrivileges`` (``allowPrivilegeEscalation:
  false``), the image's non-root user;
* the kubeconfig mounted read-only at ``/etc/secretops`` (a Pod's service-account mount);
* own PID, mount, IPC and UTS namespaces, but the host's network namespace, so the controller
  reaches the emulator on 127.0.0.1 and the test reaches the controller's port;
* no cgroup settings: this machine's cgroups are a v1/v2 hybrid, which crun refuses outright
  ("cgroups in hybrid mode not supported"); runc runs the bundle without limits.

:class:`Container` runs it with ``runc run`` (crun where runc is missing) and stops it by its
container id (``kill`` SIGTERM, then ``delete --force``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def runtime() -> str | None:
    """The OCI runtime to use: runc, else crun (None: neither is installed)."""
    return shutil.which("runc") or shutil.which("crun")


def unpack(layout: str, bundle: Path) -> dict[str, Any]:
    """``umoci unpack --image LAYOUT:TAG BUNDLE`` → the bundle's config.json."""
    subprocess.run(["umoci", "unpack", "--image", layout, str(bundle)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    return dict(json.loads((bundle / "config.json").read_text()))


def prepare_bundle(bundle: Path, args: list[str], config_dir: Path) -> dict[str, Any]:
    """Set the bundle up as the Deployment runs the image (above); ``args`` follow the image's
    entrypoint. The config written."""
    config = json.loads((bundle / "config.json").read_text())
    process = config["process"]
    process["terminal"] = False
    process["args"] = [*process["args"], *args]
    process["capabilities"] = {kind: [] for kind in process.get("capabilities") or {}}
    process["noNewPrivileges"] = True
    config["root"]["readonly"] = True
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"] + [
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=16m"]},
        {"destination": "/etc/secretops", "type": "bind", "source": str(config_dir),
         "options": ["rbind", "ro", "nosuid", "nodev"]},
    ]
    linux = config["linux"]
    linux.pop("resources", None)
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return dict(config)


@dataclass
class Container:
    """One container run from a prepared bundle."""

    bundle: Path
    name: str
    port: int
    log: Path
    runtime: str
    proc: subprocess.Popen[bytes] | None = None
    responses: list[str] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> Container:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [self.runtime, "run", "--bundle", str(self.bundle), self.name],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.get("/healthz")[0] != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"container exited {self.proc.returncode}:\n{self.logs()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"container not healthy after {timeout} s:\n{self.logs()}")
            time.sleep(0.1)  # polling interval of a loop with a deadline
        return self

    def state(self) -> dict[str, Any]:
        out = subprocess.run([self.runtime, "state", self.name], capture_output=True,
                             text=True, check=True, stdin=subprocess.DEVNULL, timeout=30)
        return dict(json.loads(out.stdout))

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            subprocess.run([self.runtime, "kill", self.name, "TERM"], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=30)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                subprocess.run([self.runtime, "kill", self.name, "KILL"], capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=30)
                self.proc.wait(20)
        subprocess.run([self.runtime, "delete", "--force", self.name], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=30)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=timeout) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        except (urllib.error.URLError, OSError):
            return 0, ""
        self.responses.append(f"{status} {text}")
        return status, text


def readable_copy(source: Path, directory: Path) -> Path:
    """``source`` copied into ``directory`` (made 0755) as 0644, readable by the image's user."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    target = directory / source.name
    shutil.copy(source, target)
    os.chmod(target, 0o644)
    return target
