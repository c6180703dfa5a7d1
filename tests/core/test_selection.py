"""Selection rules: the per-key fast decision equals the whole-path rule sops applies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secretops.core.selection import Selection
from secretops.errors import SecretOpsError

RULES = [
    {}, {"unencrypted_suffix": "_plain"}, {"encrypted_suffix": "_enc"},
    {"unencrypted_regex": "^(kind|meta)"}, {"encrypted_regex": "^(data|stringData)$"},
]
KEYS = st.sampled_from(["data", "stringData", "kind", "metadata", "x_plain", "y_enc", "pass",
                        "data_enc", "k_plain_x", ""])


@settings(max_examples=400, deadline=None)
@given(rule=st.sampled_from(RULES), path=st.lists(KEYS, max_size=5))
def test_incremental_decision_matches_sops_rule(rule: dict[str, str], path: list[str]) -> None:
    sel = Selection.build(**rule)
    matched = any(sel.key_matches(k) for k in path)
    assert sel.decide(matched) == sel.should_encrypt(path, [[]], False)


def test_default_rule_is_the_unencrypted_suffix() -> None:
    assert Selection.build().unencrypted_suffix == "_unencrypted"


def test_only_one_rule() -> None:
    with pytest.raises(SecretOpsError) as e:
        Selection.build(encrypted_regex="a", unencrypted_suffix="b")
    assert e.value.code == 8


def test_encrypted_comment_regex_marker_stays_plain() -> None:
    sel = Selection.build(encrypted_comment_regex="^ ?sops:enc")
    assert sel.should_encrypt(["a"], [[" sops:enc"]], False)
    assert not sel.should_encrypt([], [[" sops:enc"]], True)  # the marker comment itself
    assert not sel.should_encrypt(["b"], [[]], False)
