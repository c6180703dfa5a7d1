"""The controller image's lock (``controller/requirements.lock``): reading it, and what it must
cover. Shared by ``scripts/lock-controller`` (which writes it) and ``tests/test_lock.py``."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The build backend of the two local projects, installed from the lock too (the Dockerfile
# builds them with --no-build-isolation --no-index, so nothing unhashed is fetched).
BUILD_REQUIREMENT = "setuptools>=77"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass
class Pin:
    version: str
    hashes: list[str]


def runtime_requirements(root: Path) -> list[Requirement]:
    """The library's dependencies with the extras the controller asks for, the controller's
    (less the library itself), and the build backend: what the image installs."""
    lib = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    ctl = tomllib.loads((root / "controller" / "pyproject.toml").read_text())["project"]
    extras = sorted(library_extras(root))
    texts = [*lib["dependencies"],
             *(d for e in extras for d in lib["optional-dependencies"][e]),
             *(d for d in ctl["dependencies"] if Requirement(d).name != "secretops"),
             BUILD_REQUIREMENT]
    return [Requirement(t) for t in texts]


def library_extras(root: Path) -> set[str]:
    """The library's extras the controller depends on (``secretops[aws,vault]``)."""
    ctl = tomllib.loads((root / "controller" / "pyproject.toml").read_text())["project"]
    return {e for d in ctl["dependencies"] if (r := Requirement(d)).name == "secretops"
            for e in r.extras}


def pyproject_digest(root: Path) -> str:
    """A digest of :func:`runtime_requirements`: the lock records it to show it is current."""
    text = json.dumps(sorted(str(r) for r in runtime_requirements(root)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_lock(text: str) -> tuple[dict[str, Pin], str | None]:
    """``{canonical name: Pin}`` and the recorded pyproject digest."""
    pins: dict[str, Pin] = {}
    digest = None
    current: Pin | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# pyproject-digest:"):
            digest = stripped.split(":", 1)[1].strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _PIN.match(stripped)
        if m:
            current = pins[canonicalize_name(m.group(1))] = Pin(m.group(2), [])
        if current is not None:
            current.hashes += _HASH.findall(stripped)
    return pins, digest
