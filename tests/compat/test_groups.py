"""``groups add`` / ``groups delete``, side by side with sops 3.11.

What must be the same: the exit status, the key groups written (kinds, keys, threshold), the
values' ciphertext, ``lastmodified`` and ``mac`` untouched (the data key does not change), and
the file decrypting with the real sops afterwards with the keys the threshold asks for, and not
with fewer. Where sops writes a file nobody can open again (a group without keys, a threshold
of 1 with several groups), secretops refuses and leaves the file as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.compat.sidebyside import Pair, assert_same, run_both
from tests.helpers import CANARY, AgeKey, assert_no_canary, make_age_key, secretops, sops

PLAIN = f"user: admin\npassword: {CANARY}\nlist:\n  - 1\n  - two\n"


def _yaml(content: bytes) -> Any:
    import yaml

    return yaml.safe_load(content)


def _groups(doc: Any) -> list[list[tuple[str, str]]]:
    """The key groups of a parsed file, as (kind, key) pairs, whatever the layout."""
    meta = doc["sops"]
    raw = meta.get("key_groups") or [{k: meta.get(k) for k in ("age", "pgp", "kms", "hc_vault")}]
    names = {"age": "recipient", "pgp": "fp", "kms": "arn", "hc_vault": "key_name"}
    return [sorted((kind, str(e[names[kind]])) for kind in names for e in (g.get(kind) or []))
            for g in raw]


def shape(content: bytes) -> dict[str, Any]:
    """What groups must keep or change: groups, threshold, the values' ciphertext, lastmodified,
    mac, the selection rule."""
    doc = _yaml(content)
    meta = doc["sops"]
    return {"groups": _groups(doc), "threshold": meta.get("shamir_threshold", 0),
            "values": {k: v for k, v in doc.items() if k != "sops"},
            **{k: meta.get(k) for k in ("lastmodified", "mac", "unencrypted_suffix",
                                        "version")}}


def assert_same_groups(pair: Pair, out: str = "stdout") -> None:
    """Both succeeded and wrote the same key groups around the same ciphertext."""
    assert pair.sops.ok and pair.ours.ok, pair
    s, o = ((pair.sops.out, pair.ours.out) if out == "stdout"
            else (pair.sops.files[out], pair.ours.files[out]))
    assert shape(s) == shape(o), pair
    if out == "stdout":
        assert pair.sops.files == pair.ours.files == pair.before, "the file must be left alone"


@pytest.fixture
def keys(tmp_path: Path) -> list[AgeKey]:
    d = tmp_path / "keys"
    d.mkdir()
    return [make_age_key(d, f"k{n}.txt") for n in range(3)]


def _use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *keys: AgeKey) -> None:
    """SOPS_AGE_KEY_FILE holding exactly ``keys``."""
    path = tmp_path / "keys" / ("use-" + "-".join(k.path.stem for k in keys) + ".txt")
    path.write_text("".join(k.path.read_text() for k in keys))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(path))


def _encrypted(sops_bin: str, tmp_path: Path, *groups: list[AgeKey], threshold: int = 0,
               name: str = "s.enc.yaml") -> bytes:
    """A file made by sops with one key group per argument."""
    d = tmp_path / "made"
    d.mkdir(exist_ok=True)
    rules = "".join("      - age: [" + ", ".join(k.recipient for k in g) + "]\n" for g in groups)
    extra = f"    shamir_threshold: {threshold}\n" if threshold else ""
    (d / ".sops.yaml").write_text(f"creation_rules:\n  - key_groups:\n{rules}{extra}")
    suffix = name.rsplit(".", 1)[1]
    plain = PLAIN if suffix == "yaml" else json.dumps({"user": "admin", "password": CANARY})
    (d / f"p.{suffix}").write_text(plain)
    r = sops(sops_bin, "encrypt", f"p.{suffix}", cwd=d)
    assert r.code == 0, r.err
    return r.out


def _decrypts_with_sops(sops_bin: str, content: bytes, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch, *keys: AgeKey) -> bool:
    d = tmp_path / "check"
    d.mkdir(exist_ok=True)
    (d / "f.enc.yaml").write_bytes(content)
    _use(monkeypatch, tmp_path, *keys)
    r = sops(sops_bin, "decrypt", "f.enc.yaml", cwd=d)
    if r.code == 0:
        assert CANARY in r.text
    return r.code == 0


# -- groups add ---------------------------------------------------------------------------------

def test_add_to_stdout(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One group becomes two (threshold 2: both needed); the file itself is untouched."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    pair = run_both(sops_bin, ["groups", "add", "--file", "s.enc.yaml", "--age",
                               keys[1].recipient], {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair)
    assert shape(pair.ours.out)["threshold"] == 2
    for out in (pair.sops.out, pair.ours.out):
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[0], keys[1])
        assert not _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[1])
    assert_no_canary(pair.ours.err + pair.ours.out.decode(), "groups add output")


def test_add_with_threshold_lets_the_new_group_open_with_one_other(
        sops_bin: str, keys: list[AgeKey], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two groups (threshold 2) + a third with -f and threshold 2: the new key with one old key
    decrypts; the new key alone does not."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]], [keys[1]], threshold=2)
    _use(monkeypatch, tmp_path, keys[0], keys[1])
    pair = run_both(sops_bin, ["groups", "add", "-f", "s.enc.yaml", "--age", keys[2].recipient,
                               "--shamir-secret-sharing-threshold", "2"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair)
    for out in (pair.sops.out, pair.ours.out):
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[2], keys[0])
        assert not _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[2])


def test_add_in_place_json(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encrypted(sops_bin, tmp_path, [keys[0]], name="s.enc.json")
    _use(monkeypatch, tmp_path, keys[0])
    pair = run_both(sops_bin, ["groups", "add", "--in-place", "--file", "s.enc.json",
                               "--age", keys[1].recipient, "--age", keys[2].recipient],
                    {"s.enc.json": enc}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    assert pair.sops.out == pair.ours.out == b""
    s, o = (json.loads(p.files["s.enc.json"]) for p in (pair.sops, pair.ours))
    assert s["sops"]["shamir_threshold"] == o["sops"]["shamir_threshold"] == 2
    assert ([sorted(e["recipient"] for e in g["age"]) for g in s["sops"]["key_groups"]]
            == [sorted(e["recipient"] for e in g["age"]) for g in o["sops"]["key_groups"]])
    assert {k: v for k, v in s.items() if k != "sops"} == {k: v for k, v in o.items()
                                                           if k != "sops"}
    assert pair.sops.modes == pair.ours.modes


def test_add_kms_and_vault_keys(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, aws_kms: Any,
                                vault_key: str) -> None:
    """--kms with --encryption-context and --aws-profile, and --hc-vault-transit, against moto
    and OpenBao: a second group of KMS and Vault keys; with threshold 2, the age group's share
    and the new group's (opened with KMS or Vault) decrypt the file."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    profile = tmp_path / "aws-profile"
    aws_kms.write_profile(profile, "dev")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    pair = run_both(sops_bin, ["groups", "add", "--file", "s.enc.yaml", "--kms", aws_kms.arns[0],
                               "--encryption-context", "app:web", "--aws-profile", "dev",
                               "--hc-vault-transit", vault_key],
                    {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair)
    for out in (pair.sops.out, pair.ours.out):
        kms = _yaml(out)["sops"]["key_groups"][1]["kms"][0]
        assert kms["context"] == {"app": "web"} and kms["aws_profile"] == "dev"
        # the KMS and Vault group's share plus the age group's: sops opens it
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[0])


def test_add_azure_and_hckms_keys(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, hckms: Any,
                                  azure_kv: Any) -> None:
    """--azure-kv and --hckms against their stand-ins (sops reaches both). The new group's
    share (opened through its keys) with the age group's decrypts the file. Differs: sops 3.11
    takes --hckms and drops it (its groups add never reads the flag), so its group holds only
    the Key Vault key; secretops's holds both, in sops's order."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    pair = run_both(sops_bin, ["groups", "add", "--file", "s.enc.yaml", "--hckms",
                               hckms.key_ids[0], "--azure-kv", azure_kv.urls[0]],
                    {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair)
    theirs, ours = (_yaml(out)["sops"]["key_groups"][1] for out in (pair.sops.out, pair.ours.out))
    assert list(theirs) == ["azure_kv", "hc_vault", "age"]
    assert list(ours) == ["hckms", "azure_kv", "hc_vault", "age"]
    assert [e["key_id"] for e in ours["hckms"]] == [hckms.key_ids[0]]
    assert ours["azure_kv"][0]["name"] == theirs["azure_kv"][0]["name"]
    for out in (pair.sops.out, pair.ours.out):
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[0])
    # the hckms key alone opens the new group's share
    alone = _yaml(pair.ours.out)
    del alone["sops"]["key_groups"][1]["azure_kv"]
    import yaml

    assert _decrypts_with_sops(sops_bin, yaml.safe_dump(alone, sort_keys=False).encode(),
                               tmp_path, monkeypatch, keys[0])


def test_a_threshold_given_for_one_group_holds_for_groups_added_later(
        sops_bin: str, keys: list[AgeKey], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``encrypt --shamir-secret-sharing-threshold 2`` with one key group: sops writes the
    threshold (no effect yet), so two groups added later by sops's ``groups add`` are under
    it — any two of the three open the file. secretops's file must carry it too (it left it
    out, and the grown file then needed all three groups)."""
    _use(monkeypatch, tmp_path, keys[0])
    pair = run_both(sops_bin, ["encrypt", "--age", keys[0].recipient,
                               "--shamir-secret-sharing-threshold", "2", "p.yaml"],
                    {"p.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    grown = []
    for side, out in (("sops", pair.sops.out), ("secretops", pair.ours.out)):
        assert _yaml(out)["sops"]["shamir_threshold"] == 2, side
        d = tmp_path / f"grow-{side}"
        d.mkdir()
        (d / "f.enc.yaml").write_bytes(out)
        _use(monkeypatch, tmp_path, *keys)  # the second add needs two groups' shares
        for key in keys[1:]:
            r = sops(sops_bin, "groups", "add", "-i", "--file", "f.enc.yaml", "--age",
                     key.recipient, cwd=d)
            assert r.code == 0, r.err
        grown.append((d / "f.enc.yaml").read_bytes())
    assert shape(grown[0])["groups"] == shape(grown[1])["groups"]
    for content in grown:
        assert shape(content)["threshold"] == 2
        assert _decrypts_with_sops(sops_bin, content, tmp_path, monkeypatch, keys[1], keys[2])


def test_add_pgp_key(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch, gpg_key: str) -> None:
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    pair = run_both(sops_bin, ["groups", "add", "--file", "s.enc.yaml", "--pgp", gpg_key],
                    {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair)
    for out in (pair.sops.out, pair.ours.out):
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[0])


# -- groups delete ------------------------------------------------------------------------------

def test_delete_to_one_group_with_threshold_1(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting group 1 of two needs the threshold lowered; sops then writes
    ``shamir_threshold: 1`` beside one group, and the remaining key alone opens the file."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]], [keys[1]])
    _use(monkeypatch, tmp_path, keys[0], keys[1])
    pair = run_both(sops_bin, ["groups", "delete", "--file", "s.enc.yaml",
                               "--shamir-secret-sharing-threshold", "1", "1"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair)
    assert shape(pair.ours.out)["threshold"] == 1
    for out in (pair.sops.out, pair.ours.out):
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[0])
        assert not _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[1])
        _use(monkeypatch, tmp_path, keys[0])
        r = secretops("decrypt", "--input-type", "yaml", "/dev/stdin", input=out)
        assert r.code == 0 and CANARY in r.text, r.err


def test_delete_in_place(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encrypted(sops_bin, tmp_path, [keys[0]], [keys[1]], [keys[2]], threshold=2)
    _use(monkeypatch, tmp_path, keys[0], keys[1])
    pair = run_both(sops_bin, ["groups", "delete", "-i", "-f", "s.enc.yaml", "0"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert_same_groups(pair, out="s.enc.yaml")
    assert pair.sops.out == pair.ours.out == b""
    for side in (pair.sops, pair.ours):
        out = side.files["s.enc.yaml"]
        assert _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[1], keys[2])
        assert not _decrypts_with_sops(sops_bin, out, tmp_path, monkeypatch, keys[0], keys[1])


@pytest.mark.parametrize("argv", [
    ["groups", "delete", "--file", "s.enc.yaml", "1"],        # threshold 2 cannot be met
    ["groups", "delete", "--file", "s.enc.yaml", "x"],        # not a number
    ["groups", "delete", "--file", "s.enc.yaml", "--", "-1"],
    ["groups", "delete", "--file", "s.enc.yaml"],             # no index
    ["groups", "delete", "--file", "s.enc.yaml", "0", "1"],   # two
    ["groups", "add", "--file", "s.enc.yaml", "--age", "AGE", "extra"],  # positional
])
def test_refusals_as_in_sops(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    """Exit 1, nothing written, in both."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]], [keys[1]])
    _use(monkeypatch, tmp_path, keys[0], keys[1])
    argv = [keys[2].recipient if a == "AGE" else a for a in argv]
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.code == 1, pair
    assert_same(pair, code=True, files="bytes")
    assert pair.ours.out == b"" and "Traceback" not in pair.ours.err


@pytest.mark.parametrize("argv", [
    ["groups", "add", "--age", "AGE"],                         # no --file: sops exit 2
    ["groups", "add", "--file", "missing.enc.yaml", "--age", "AGE"],
    ["groups", "delete", "--file", "s.enc.yaml", "5"],         # sops: a Go panic, exit 2
    ["groups", "delete", "--file", "s.enc.yaml", "2"],         # one past the end: a panic too
])
def test_failures_that_exit_with_another_code(sops_bin: str, keys: list[AgeKey],
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              argv: list[str]) -> None:
    """Both fail and write nothing; the codes differ (docs/sops-compat.md says which)."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]], [keys[1]])
    _use(monkeypatch, tmp_path, keys[0], keys[1])
    argv = [keys[2].recipient if a == "AGE" else a for a in argv]
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert_same(pair, code=False, files="bytes")
    assert "Traceback" not in pair.ours.err and pair.ours.err.startswith("secretops: error:")


def test_without_the_key_nothing_changes(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No identity fits: both fail (sops exit 1, secretops 128) and write nothing."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[2])
    pair = run_both(sops_bin, ["groups", "add", "-i", "--file", "s.enc.yaml", "--age",
                               keys[1].recipient], {"s.enc.yaml": enc}, tmp_path)
    assert_same(pair, code=False, files="bytes")
    assert pair.ours.code == 128


# -- where sops writes a file nobody can open ---------------------------------------------------

@pytest.mark.parametrize(("argv", "code"), [
    (["groups", "add", "--file", "s.enc.yaml"], 111),                      # an empty group
    (["groups", "add", "--file", "s.enc.yaml", "--age", "AGE",
      "--shamir-secret-sharing-threshold", "1"], 8),                       # no split with 1
    (["groups", "add", "--file", "s.enc.yaml", "--age", "AGE",
      "--shamir-secret-sharing-threshold", "3"], 8),                       # 3 of 2 groups
    (["groups", "add", "--file", "s.enc.yaml", "--age", "notakey"], 154),  # sops skips it
])
def test_refused_where_sops_writes_an_unusable_file(
        sops_bin: str, keys: list[AgeKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        argv: list[str], code: int) -> None:
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    argv = [keys[1].recipient if a == "AGE" else a for a in argv]
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair  # sops says it worked ...
    assert not _decrypts_with_sops(sops_bin, pair.sops.out, tmp_path, monkeypatch,
                                   keys[0], keys[1])  # ... but not even sops can open it
    assert pair.ours.code == code, pair
    assert pair.ours.out == b"" and pair.ours.files == pair.before


def test_a_tampered_file_is_refused(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """sops re-wraps the data key of a file whose values were altered (it never reads them);
    secretops decrypts and checks the file first and refuses (exit 25 here: a value fails its
    authentication; 51 for a MAC mismatch): no new key is given to a file that is not what
    its keys' holders encrypted."""
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    doc = enc.decode()
    start = doc.index("user: ENC[AES256_GCM,data:") + len("user: ENC[AES256_GCM,data:")
    tampered = (doc[:start] + ("A" if doc[start] != "A" else "B") + doc[start + 1:]).encode()
    pair = run_both(sops_bin, ["groups", "add", "-i", "--file", "s.enc.yaml", "--age",
                               keys[1].recipient], {"s.enc.yaml": tampered}, tmp_path)
    assert pair.sops.ok, pair
    assert pair.ours.code == 25 and pair.ours.files == pair.before, pair


def test_the_only_group_is_not_deleted(sops_bin: str, keys: list[AgeKey], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encrypted(sops_bin, tmp_path, [keys[0]])
    _use(monkeypatch, tmp_path, keys[0])
    pair = run_both(sops_bin, ["groups", "delete", "-i", "--file", "s.enc.yaml", "0"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert pair.ours.code == 111 and pair.ours.files == pair.before, pair
    if pair.sops.ok:  # sops writes a file without keys
        assert not _decrypts_with_sops(sops_bin, pair.sops.files["s.enc.yaml"], tmp_path,
                                       monkeypatch, keys[0])
