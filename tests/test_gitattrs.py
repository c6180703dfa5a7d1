"""path_regex → gitattributes globs: checked against git's own matching (git check-attr)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from secretops.git.attributes import BROAD, globs_for_rules, regex_to_glob
from tests.helpers import git_init

PATHS = [
    "a.enc.yaml", "x/a.enc.yaml", "x/y/a.enc.yaml", "a.yaml", "x/a.yaml", "secrets/a.yaml",
    "secrets/x/b.yaml", "secrets/a.json", "mysecrets/a.yaml", "x/secrets/a.yaml", "prod/a.env",
    "prod/x/b.ini", "app.enc.yaml", "x/app.enc.yaml", "fooXbar.yaml", "a/foo/bar.yaml",
    "penc.yaml", "a.env", "x/.env",
]


def _attr_set(repo: Path, glob: str, paths: list[str]) -> set[str]:
    (repo / ".gitattributes").write_text(f"{glob} diff=secretops\n")
    out = subprocess.run(["git", "-C", str(repo), "check-attr", "diff", "--", *paths],
                         capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    return {ln.split(":")[0] for ln in out.stdout.splitlines() if ln.endswith(": secretops")}


@pytest.mark.parametrize("regex, glob, exact", [
    (r"\.enc\.yaml$", "*.enc.yaml", True),
    (r"^secrets/.*\.yaml$", "secrets/**/*.yaml", True),
    (r"secrets/", "**/*secrets/**", True),
    (r"^prod/", "prod/**", True),
    (r".*\.yaml$", "*.yaml", True),
    (r"^app\.enc\.yaml$", "/app.enc.yaml", True),
    (r"\.env$", "*.env", True),
    (r"/secrets/.*$", "**/secrets/**", False),  # wider than the regex: never narrower
])
def test_translations_match_what_git_matches(tmp_path: Path, regex: str, glob: str,
                                             exact: bool) -> None:
    assert regex_to_glob(regex) == glob
    repo = git_init(tmp_path / "r")
    matched = _attr_set(repo, glob, PATHS)
    wanted = {p for p in PATHS if re.search(regex, p)}
    assert wanted <= matched
    if exact:
        assert matched == wanted


@pytest.mark.parametrize("regex", [
    r"(a|b)\.yaml$", r"secret", r"clusters/.*/secrets/.*\.yaml$", r"^[^/]+\.yaml$",
    r"\.ya?ml$", r"a.*/b", r"foo.*bar\.yaml$",
])
def test_what_does_not_translate_falls_back_to_broad_globs(regex: str) -> None:
    assert regex_to_glob(regex) is None
    assert globs_for_rules([r"\.enc\.yaml$", regex]) == list(BROAD)


def test_rules_without_a_regex_and_configs_in_subdirectories() -> None:
    assert globs_for_rules([None]) == list(BROAD)
    assert globs_for_rules([r"\.enc\.yaml$", r"^prod/"], "deploy/") == [
        "deploy/**/*.enc.yaml", "deploy/prod/**"]
