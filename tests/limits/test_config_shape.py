"""A .sops.yaml that encrypt refuses, check refuses too (fail closed), and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import secretops

R = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
MALFORMED = {
    "rules-not-a-list": f"creation_rules:\n  path_regex: s\n  age: {R}\n",
    "key-groups-a-number": "creation_rules:\n- path_regex: s\n  key_groups: 1\n",
    "key-group-a-number": "creation_rules:\n- path_regex: s\n  key_groups: [1]\n",
    "indent-text": f"creation_rules:\n- age: {R}\nstores:\n  yaml:\n    indent: x\n",
    "threshold-text": f"creation_rules:\n- path_regex: s\n  age: {R}\n  shamir_threshold: two\n",
    "mac-only-text": f"creation_rules:\n- path_regex: s\n  age: {R}\n"
                     "  mac_only_encrypted: maybe\n",
    "two-selections": f"creation_rules:\n- age: {R}\n  encrypted_regex: a\n"
                      "  unencrypted_regex: b\n",
    "age-nested-list": f"creation_rules:\n- path_regex: s\n  age: [[{R}]]\n",
    "later-bad-regex": f"creation_rules:\n- age: {R}\n- path_regex: '('\n",
    "deeply-nested": "creation_rules:\n- path_regex: s\n  key_groups:\n  - age: "
                     + "[" * 2000 + "]" * 2000 + "\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_encrypt_and_check_refuse_alike(name: str, tmp_path: Path) -> None:
    (tmp_path / ".sops.yaml").write_text(MALFORMED[name])
    (tmp_path / "s.yaml").write_text("a: b\n")
    for args in (("encrypt", "s.yaml"), ("check", "s.yaml")):
        r = secretops(*args, cwd=tmp_path)
        assert r.code == 5, (args, r.code, r.err, r.out)
        assert r.err.startswith(f"secretops: error: {tmp_path / '.sops.yaml'}: "), r.err
        assert "Traceback" not in r.err and b"no plaintext" not in r.out


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=6),
                     st.sampled_from(["s", "(", R, "age1x", "arn:aws:kms:x"]))
_keys = st.sampled_from(["creation_rules", "path_regex", "age", "kms", "pgp", "key_groups",
                         "shamir_threshold", "stores", "yaml", "json", "indent", "context",
                         "arn", "merge", "hc_vault", "encrypted_regex", "mac_only_encrypted",
                         "secretops", "check", "allow", "destination_rules", "recreation_rule"])
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)


@given(st.dictionaries(_keys, _values, max_size=4))
def test_fuzzed_configs_load_or_fail_cleanly(data: dict[str, object]) -> None:
    """Any shape: a Config, or a SecretOpsError (exit 5 for the shape) — never another one."""
    import os
    import tempfile

    from secretops.config import load_config
    from secretops.errors import SecretOpsError
    from secretops.git.guard import Policy

    with tempfile.TemporaryDirectory() as d:
        path = Path(d, ".sops.yaml")
        path.write_text(yaml.safe_dump(data))
        try:
            cfg = load_config(path)
            cfg.store_options("yaml")
            cfg.rule_for(os.path.join(d, "s.yaml"))
            Policy({}).verdict(os.path.join(d, "s.yaml"), b"a: b\n")
        except SecretOpsError:
            pass
