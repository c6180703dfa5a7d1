"""Find the sops-made vectors of one format under tests/testdata/sops/ (see FINDINGS.md there)."""

from __future__ import annotations

from pathlib import Path

SOPS_DATA = Path(__file__).resolve().parent.parent / "testdata" / "sops"


def vectors(kind: str, ext: str, folders: tuple[str, ...]) -> list[Path]:
    """Files ``NAME.<kind>.<ext>`` in the folders (kind: plain, sops, sops-decrypted)."""
    out: list[Path] = []
    for folder in folders:
        out.extend(sorted((SOPS_DATA / folder).glob(f"*.{kind}.{ext}")))
    return out


def sibling(path: Path, kind: str) -> Path:
    """``x.plain.json`` → ``x.<kind>.json``."""
    name, _, ext = path.name.rpartition(".")
    stem = name.rsplit(".", 1)[0]
    return path.with_name(f"{stem}.{kind}.{ext}")


def ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]
