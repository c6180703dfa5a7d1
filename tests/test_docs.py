"""The documentation's exit-code table lists exactly the codes the code defines."""

from __future__ import annotations

import re
from pathlib import Path

from secretops.errors import ExitCode

DOCS = Path(__file__).resolve().parent.parent / "docs"

# sops's cmd/sops/codes (3.11–3.13): the numbers a row may call "sops: same".
SOPS_CODES = {
    1, 2, 3, 4, 5, 6, 7, 8, 21, 23, 24, 25, 49, 51, 52, 61, 85, 91, 92, 100, 111, 112, 128,
    200, 201, 202, 203,
}

_ROW = re.compile(r"^\| (\d+) \| ([A-Z][A-Z0-9_]*) \| ([^|]+?) \| (sops: same|secretops-only) \|$")


def _table_rows() -> list[tuple[int, str, str, str]]:
    rows = []
    for line in (DOCS / "exit-codes.md").read_text("utf-8").splitlines():
        m = _ROW.match(line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3), m.group(4)))
        else:
            assert not re.match(r"^\| \d", line), f"malformed exit-code row: {line!r}"
    return rows


def test_exit_code_table_lists_every_member_with_its_number() -> None:
    rows = _table_rows()
    documented = [(number, name) for number, name, _, _ in rows]
    assert len(documented) == len(set(documented)), "a code is listed twice"
    assert sorted(documented) == sorted((int(c), c.name) for c in ExitCode)


def test_exit_code_table_says_which_numbers_are_sops_numbers() -> None:
    for number, name, meaning, sops in _table_rows():
        assert meaning.strip(), name
        assert (sops == "sops: same") == (number in SOPS_CODES), (number, name, sops)


def test_relative_links_in_the_docs_resolve() -> None:
    """Every relative link in README.md and docs/ names a file that exists (anchors aside)."""
    root = DOCS.parent
    pages = [root / "README.md", *DOCS.rglob("*.md")]
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text("utf-8"), flags=re.S)
        for target in link.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(root)}: {target}")
    assert not broken, broken


def test_security_md_lists_the_limits_the_code_checks() -> None:
    from secretops.core import limits

    text = (DOCS / "security.md").read_text("utf-8")
    section = text[text.index("## Limits on keys and key entries"):]

    def size(n: int) -> str:
        return f"{n // 1024} KiB" if n >= 1024 else str(n)

    for value in (limits.MAX_KEY_ENTRIES, limits.MAX_KEY_GROUPS, limits.MAX_AGE_STANZAS,
                  limits.MAX_SEAL_RECIPIENTS, limits.MAX_PGP_KEY_PACKETS):
        assert f"| {value} |" in section, value
    for value in (limits.MAX_ENC_CHARS, limits.MAX_AGE_STANZA_BYTES, limits.MAX_AGE_HEADER_BYTES,
                  limits.MAX_AGE_PAYLOAD_BYTES):
        assert f"| {size(value)} |" in section, value
    for value in (limits.MAX_GPG_OUTPUT, limits.MAX_GPG_STDERR):
        assert f"| {size(value)} (then gpg is killed" in section, value


def test_every_test_security_md_cites_exists() -> None:
    """docs/security.md backs each claim with a test named in backticks; a renamed or removed
    test must not leave a claim without one."""
    text = (DOCS / "security.md").read_text("utf-8")
    cited = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text))
    tests = Path(__file__).resolve().parent
    defined = set()
    for path in tests.rglob("*.py"):
        defined.update(re.findall(r"^(?:async )?def (test_[a-z0-9_]+)\(", path.read_text("utf-8"),
                                  re.M))
    files = {p.stem for p in tests.rglob("test_*.py")}
    missing = sorted(c for c in cited if c not in defined and c not in files)
    assert not missing, f"security.md cites tests that do not exist: {missing}"
