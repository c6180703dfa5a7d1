"""Hostile key entries meet the limits before any key is used (docs/security.md, "Limits on keys
and key entries").

Each file here is what someone with write access to a repository could commit: an age entry
whose header carries thousands of stanzas (the age library's header parser is quadratic:
3,000 stanzas kept ``decrypt`` busy 125 s), too many entries, a PGP entry whose compressed
message expands to gigabytes, a wrapped key of the wrong size from every key source. Each is
refused with one line and its documented exit code; files just inside the limits still open.
"""

from __future__ import annotations

import base64
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pyrage
import pytest
from pyrage import x25519

from secretops import fileops
from secretops.core.limits import MAX_AGE_STANZAS, MAX_KEY_ENTRIES, MAX_PGP_KEY_PACKETS
from secretops.core.metadata import KeyEntry
from secretops.core.pgpmsg import ARMOR_BEGIN, ARMOR_END, dearmor
from secretops.keys.datakey import make_recipients
from secretops.keys.specs import from_flags
from tests.fixtures.gpg import gpg
from tests.helpers import CANARY, AgeKey, Result, secretops

TEXT = f"db:\n    password: {CANARY}\n    user: admin\n"
LIMIT, DECRYPT_FAILED = 159, 25


def _encrypt(tmp_path: Path, *flags: str) -> Path:
    src = tmp_path / "s.yaml"
    src.write_text(TEXT)
    r = secretops("encrypt", *flags, str(src))
    assert r.code == 0, r.err
    out = tmp_path / "s.enc.yaml"
    out.write_bytes(r.out)
    return out


def _set_entries(path: Path, entries: list[KeyEntry]) -> None:
    """Rewrite the file so that its one key group lists ``entries`` (values unchanged)."""
    opened = fileops.open_file(path.read_bytes(), format="yaml")
    meta = opened.metadata
    meta.key_groups = [entries]
    path.write_bytes(fileops.rewrite_metadata(opened, meta))


def _data_key(path: Path) -> bytes:
    return fileops.open_file(path.read_bytes(), format="yaml").data_key


def _strangers(n: int) -> list[Any]:
    return [x25519.Identity.generate().to_public() for _ in range(n)]


def _refused(r: Result, code: int, out: Path | None = None) -> None:
    assert r.code == code, r.err
    first = r.err.splitlines()[0]
    assert first.startswith("secretops: error: ") and "Traceback" not in r.err
    assert CANARY not in r.err and CANARY not in r.text
    assert out is None or not out.exists()


@pytest.mark.parametrize(("stanzas", "why"), [
    (100, f"more than {MAX_AGE_STANZAS} recipient stanzas"),
    (1000, "characters long, more than"),  # 130 KB: refused on its size alone
])
def test_age_stanza_bomb_is_refused_before_any_unwrap(stanzas: int, why: str, tmp_path: Path,
                                                      age_key: AgeKey) -> None:
    f = _encrypt(tmp_path, "--age", age_key.recipient)
    me = x25519.Recipient.from_str(age_key.recipient)
    bomb = pyrage.encrypt(_data_key(f), [*_strangers(stanzas), me], armored=True).decode()
    _set_entries(f, [KeyEntry("age", {"recipient": age_key.recipient, "enc": bomb})])
    out = tmp_path / "out.yaml"
    r = secretops("decrypt", "--output", str(out), str(f))
    _refused(r, LIMIT, out)
    assert why in r.err
    assert '["sops"]["age"][0]["enc"]' in r.err.splitlines()[0]
    # the git textconv driver shows the file (masked) with the reason, and exits 0 for git
    t = secretops("git", "textconv", str(f))
    assert t.code == 0 and "cannot decrypt" in t.text and why in t.text
    assert CANARY not in t.text


def test_age_entry_just_inside_the_limits_opens(tmp_path: Path, age_key: AgeKey) -> None:
    f = _encrypt(tmp_path, "--age", age_key.recipient)
    me = x25519.Recipient.from_str(age_key.recipient)
    # 62 recipients: with the decoy stanza the age library adds, 63 stanzas
    wide = pyrage.encrypt(_data_key(f), [*_strangers(MAX_AGE_STANZAS - 3), me],
                          armored=True).decode()
    _set_entries(f, [KeyEntry("age", {"recipient": age_key.recipient, "enc": wide})])
    r = secretops("decrypt", str(f))
    assert r.code == 0 and r.text == TEXT, r.err


def test_too_many_key_entries_are_refused(tmp_path: Path, age_key: AgeKey) -> None:
    f = _encrypt(tmp_path, "--age", age_key.recipient)
    key = _data_key(f)
    others = [str(r) for r in _strangers(MAX_KEY_ENTRIES)]
    entries = [KeyEntry("age", {"recipient": r, "enc": pyrage.encrypt(
        key, [x25519.Recipient.from_str(r)], armored=True).decode()}) for r in others]
    mine = KeyEntry("age", {"recipient": age_key.recipient, "enc": pyrage.encrypt(
        key, [x25519.Recipient.from_str(age_key.recipient)], armored=True).decode()})
    _set_entries(f, [*entries[:MAX_KEY_ENTRIES - 1], mine])
    assert secretops("decrypt", str(f)).code == 0  # exactly the limit: opens
    _set_entries(f, [*entries, mine])
    r = secretops("decrypt", str(f))
    _refused(r, LIMIT)
    assert f"more than {MAX_KEY_ENTRIES} key entries" in r.err
    # and no command writes a file past the limit
    r = secretops("encrypt", "--age", ",".join([*others, age_key.recipient]),
                  str(tmp_path / "s.yaml"))
    _refused(r, LIMIT)


def _wrap_short_key(kind: str, request: pytest.FixtureRequest) -> tuple[list[str], KeyEntry]:
    """Encrypt flags for one key of ``kind``, and an entry of that key wrapping 16 bytes."""
    if kind == "age":
        flags = ["--age", request.getfixturevalue("age_key").recipient]
    elif kind == "pgp":
        flags = ["--pgp", request.getfixturevalue("gpg_key")]
    elif kind == "kms":
        flags = ["--kms", request.getfixturevalue("aws_kms").arns[0]]
    else:
        flags = ["--hc-vault-transit", request.getfixturevalue("vault_key")]
    spec = from_flags(**{flags[0][2:].replace("-", "_"): [flags[1]]})
    recipient = make_recipients([spec], os.environ)[0][0]
    return flags, recipient.wrap(b"\x01" * 16)


@pytest.mark.parametrize("kind", ["age", "pgp", "kms", "hc_vault"])
def test_wrapped_key_of_the_wrong_size_is_a_clean_error(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    flags, short = _wrap_short_key(kind, request)
    f = _encrypt(tmp_path, *flags)
    _set_entries(f, [short])
    out = tmp_path / "out.yaml"
    r = secretops("decrypt", "--output", str(out), str(f))
    _refused(r, DECRYPT_FAILED, out)  # sops's code: its AES refuses the key (ErrorDecryptingTree)
    assert "is 16 bytes, not 32" in r.err


def test_wrong_size_key_in_one_entry_does_not_hide_a_good_one(tmp_path: Path,
                                                              age_key: AgeKey) -> None:
    f = _encrypt(tmp_path, "--age", age_key.recipient)
    good = fileops.open_file(f.read_bytes(), format="yaml").metadata.key_groups[0][0]
    short = make_recipients([from_flags(age=[age_key.recipient])], os.environ)[0][0].wrap(
        b"\x01" * 16)
    _set_entries(f, [short, good])
    r = secretops("decrypt", str(f))
    assert r.code == 0 and r.text == TEXT, r.err


# --- gpg ----------------------------------------------------------------------------------------

GPG_BOMB_BYTES = 64 << 20  # what the message expands to; bzip2 makes it a few hundred bytes
# a decrypt run needs well under this; reading the bomb's output would need twice 64 MiB more
MEMORY_CEILING_KIB = 100 * 1024


@pytest.fixture
def gpg_bomb(gpg_key: str, tmp_path: Path) -> KeyEntry:
    """A pgp entry whose message decompresses to 64 MiB of zeros (a data key is 32 bytes)."""
    zeros = tmp_path / "zeros"
    with open(zeros, "wb") as fh:
        fh.truncate(GPG_BOMB_BYTES)
    p = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--compress-algo", "bzip2", "-z", "9", "--trust-model",
         "always", "--encrypt", "--armor", "-r", gpg_key, "--output", "-", str(zeros)],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=True)
    zeros.unlink()
    assert len(p.stdout) < 4096
    return KeyEntry("pgp", {"created_at": "2025-01-01T00:00:00Z",
                            "enc": p.stdout.decode().strip(), "fp": gpg_key})


def _gpg_children() -> list[int]:
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2:].split()
        if comm == "gpg" and rest[1] == me:
            found.append(int(pid))
    return found


# Run the command from a small intermediate Python and read its children's peak memory there:
# a child's ru_maxrss also counts what it shared with its parent before exec (a pytest worker
# is large), the intermediate's children start from the intermediate's small image.
_MEASURE = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN)"
            ".ru_maxrss)); sys.exit(rc)")


def _run_measured(tmp_path: Path, *args: str) -> tuple[Result, int]:
    """Run the CLI; its result and its peak memory in KiB."""
    import sys

    rss_file = tmp_path / "rss"
    with open(tmp_path / "o", "w+b") as out, open(tmp_path / "e", "w+b") as err:
        code = subprocess.call([sys.executable, "-c", _MEASURE, str(rss_file), sys.executable,
                                "-m", "secretops", *args],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=120)
        out.seek(0)
        err.seek(0)
        result = Result(code, out.read(), err.read().decode("utf-8", "replace"))
    return result, int(rss_file.read_text())


def test_gpg_output_is_bounded(gpg_key: str, gpg_bomb: KeyEntry, tmp_path: Path) -> None:
    f = _encrypt(tmp_path, "--pgp", gpg_key)
    _set_entries(f, [gpg_bomb])
    r, rss = _run_measured(tmp_path, "decrypt", str(f))
    _refused(r, LIMIT)
    assert "gpg's output" in r.err and "passed 4096 bytes" in r.err
    assert rss < MEMORY_CEILING_KIB, (rss, r.err)  # gpg would have written 64 MiB
    r, rss = _run_measured(tmp_path, "git", "textconv", str(f))
    assert r.code == 0 and "cannot decrypt" in r.text and CANARY not in r.text
    assert rss < MEMORY_CEILING_KIB, (rss, r.text[:200])


def test_gpg_is_stopped_and_reaped(gpg_key: str, gpg_bomb: KeyEntry) -> None:
    from secretops.errors import LimitExceededError
    from secretops.keys.pgp import identity

    ident = identity(os.environ)
    assert ident is not None
    with pytest.raises(LimitExceededError, match="passed 4096 bytes"):
        ident.unwrap(gpg_bomb)
    assert _gpg_children() == []


# --- PGP messages: checked before gpg runs ------------------------------------------------------

NO_KEY = 128


def _pgp_entry(fp: str, enc: str) -> KeyEntry:
    return KeyEntry("pgp", {"created_at": "2025-01-01T00:00:00Z", "enc": enc, "fp": fp})


def _wrapped(gpg_key: str, key: bytes) -> str:
    return gpg("--batch", "--trust-model", "always", "--encrypt", "--armor", "-r", gpg_key,
               input=key).decode().strip()


def _symmetric(key: bytes) -> str:
    """The data key under a passphrase: gpg asks gpg-agent for it when it decrypts."""
    return gpg("--batch", "--pinentry-mode", "loopback", "--passphrase", "x", "--symmetric",
               "--armor", input=key).decode().strip()


def _first_packet_end(data: bytes) -> int:
    """Where gpg's first packet (the public-key packet) ends: an old-format header with a 1-
    or 2-byte length, or a new-format one with a 1- or 2-byte length."""
    if data[0] & 0x40:
        first = data[1]
        return 2 + first if first < 192 else 3 + ((first - 192) << 8) + data[2] + 192
    size = 1 << (data[0] & 3)
    return 1 + size + int.from_bytes(data[1:1 + size], "big")


def _armor(data: bytes) -> str:
    """ASCII armor as gpg writes it, CRC-24 line included (gpg 2.2 misreads armor without)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc = (crc << 1) ^ (0x1864CFB if crc & 0x800000 else 0)
    b64 = base64.b64encode(data).decode()
    check = "=" + base64.b64encode((crc & 0xFFFFFF).to_bytes(3, "big")).decode()
    return "\n".join([ARMOR_BEGIN, "", *textwrap.wrap(b64, 64), check, ARMOR_END])


@pytest.mark.parametrize("shape", ["symmetric", "concatenated"])
def test_a_pgp_entry_gpg_would_ask_passphrases_for_is_refused_before_gpg_runs(
        shape: str, gpg_key: str, tmp_path: Path) -> None:
    # the long fuzz run's hang: 65 symmetric messages in one 12 KB entry, one passphrase request
    # to gpg-agent each (without a terminal a pinentry that fails after ~1 s; with one, a prompt)
    f = _encrypt(tmp_path, "--pgp", gpg_key)
    key = _data_key(f)
    good = _wrapped(gpg_key, key)
    enc = _symmetric(key) if shape == "symmetric" else "\n".join([good, *[_symmetric(key)] * 3])
    _set_entries(f, [_pgp_entry(gpg_key, enc), _pgp_entry(gpg_key, good)])
    r = secretops("decrypt", str(f))
    assert r.code == 0 and r.text == TEXT, r.err  # such an entry hides no good one
    _set_entries(f, [_pgp_entry(gpg_key, enc)])
    r = secretops("decrypt", str(f))
    _refused(r, NO_KEY)
    assert "was not given to gpg" in r.err
    assert ("passphrase-encrypted session key" if shape == "symmetric"
            else "more than one PGP message") in r.err


def test_too_many_public_key_packets_are_refused_before_any_key(gpg_key: str,
                                                                 tmp_path: Path) -> None:
    f = _encrypt(tmp_path, "--pgp", gpg_key)
    data = dearmor(_wrapped(gpg_key, _data_key(f)))
    split = _first_packet_end(data)
    key_packet, rest = data[:split], data[split:]
    _set_entries(f, [_pgp_entry(gpg_key, _armor(key_packet * MAX_PGP_KEY_PACKETS + rest))])
    r = secretops("decrypt", str(f))
    assert r.code == 0 and r.text == TEXT, r.err  # exactly the limit: opens
    _set_entries(f, [_pgp_entry(gpg_key, _armor(key_packet * (MAX_PGP_KEY_PACKETS + 1) + rest))])
    r = secretops("decrypt", str(f))
    _refused(r, LIMIT)
    assert f"more than {MAX_PGP_KEY_PACKETS} public-key packets" in r.err
    assert '["sops"]["pgp"][0]["enc"]' in r.err.splitlines()[0]
