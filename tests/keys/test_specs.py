"""Master keys as users name them: flags, environment, .sops.yaml rules (as sops parses them)."""

from __future__ import annotations

import pytest

from secretops.errors import ExitCode, SecretOpsError
from secretops.keys.awskms import parse_context
from secretops.keys.specs import KeySpec, from_env, from_flags, from_rule

ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = "arn:aws:iam::123456789012:role/sops"


def test_kms_with_role_context_and_profile() -> None:
    (spec,) = from_flags(kms=f"{ARN}+{ROLE}", encryption_context="app:web,env:prod",
                         aws_profile="dev")
    assert spec == KeySpec("kms", {"arn": ARN, "role": ROLE, "aws_profile": "dev",
                                   "context": {"app": "web", "env": "prod"}})


@pytest.mark.parametrize("bad", ["novalue", "a:b,broken", "a:b:c", "a:1,,b:2", "a:1,"])
def test_bad_encryption_context_is_exit_6(bad: str) -> None:
    with pytest.raises(SecretOpsError) as e:
        parse_context(bad)
    assert e.value.code == ExitCode.INVALID_KMS_ENCRYPTION_CONTEXT


def test_encryption_context_is_taken_as_written() -> None:
    """As sops: nothing trimmed (an empty key is sops's business too)."""
    assert parse_context(" a : 1,b:") == {" a ": " 1", "b": ""}


@pytest.mark.parametrize(
    ("uri", "fields"),
    [
        ("https://vault.example.com:8200/v1/transit/keys/sops",
         {"vault_address": "https://vault.example.com:8200", "engine_path": "transit",
          "key_name": "sops"}),
        ("http://127.0.0.1:8200/v1/team/a/transit/keys/k1",
         {"vault_address": "http://127.0.0.1:8200", "engine_path": "team/a/transit",
          "key_name": "k1"}),
        # sops takes any API version and a trailing slash
        ("https://v:1/v1/transit/keys/k1/",
         {"vault_address": "https://v:1", "engine_path": "transit", "key_name": "k1"}),
        ("https://v:1/v2/transit/keys/k1",
         {"vault_address": "https://v:1", "engine_path": "transit", "key_name": "k1"}),
    ],
)
def test_vault_uri(uri: str, fields: dict[str, str]) -> None:
    assert from_flags(hc_vault_transit=uri) == [KeySpec("hc_vault", fields)]


@pytest.mark.parametrize("uri", ["vault:8200/transit/keys/x", "https://v/v1/transit/x",
                                 "https://v/prefix/v1/transit/keys/x", "https://v/v1/keys/x"])
def test_bad_vault_uri(uri: str) -> None:
    with pytest.raises(SecretOpsError):
        from_flags(hc_vault_transit=uri)


def test_pgp_fingerprints_lose_spaces_and_keep_case_as_sops() -> None:
    assert from_flags(pgp="85d7 7543 b3d6 24b6, 1022470DE3F0BC54BC6AB62DE05550BC07FB1A0A!") == [
        KeySpec("pgp", {"fp": "85d77543b3d624b6"}),
        KeySpec("pgp", {"fp": "1022470DE3F0BC54BC6AB62DE05550BC07FB1A0A!"}),
    ]
    with pytest.raises(SecretOpsError):
        from_flags(pgp="85d7!!")


def test_environment_variables() -> None:
    env = {"SOPS_KMS_ARN": ARN, "SOPS_PGP_FP": "ABCDEF", "SOPS_AGE_RECIPIENTS": "age1x",
           "SOPS_VAULT_URIS": "https://v:1/v1/transit/keys/k"}
    assert [s.kind for s in from_env(env)] == ["age", "kms", "hc_vault", "pgp"]


def test_rule_with_key_groups() -> None:
    rule = {"key_groups": [
        {"age": ["age1a"], "kms": [{"arn": ARN, "role": ROLE, "context": {"a": "b"},
                                     "aws_profile": "p"}]},
        {"pgp": ["ABCDEF"], "hc_vault": ["https://v:1/v1/transit/keys/k"]},
    ]}
    groups = from_rule(rule, "creation_rules[0]")
    assert [[s.kind for s in g] for g in groups] == [["age", "kms"], ["hc_vault", "pgp"]]
    assert groups[0][1].fields["context"] == {"a": "b"}


def test_rule_top_level_keys_share_aws_profile() -> None:
    (group,) = from_rule({"kms": f"{ARN},{ARN}+{ROLE}", "aws_profile": "p"}, "r")
    assert [s.fields["aws_profile"] for s in group] == ["p", "p"]
    assert group[1].fields["role"] == ROLE


# every source sops knows has a record now; azure_kv is the metadata's name, not a rule key
@pytest.mark.parametrize("field", ["azure_kv"])
def test_unsupported_sources_are_refused(field: str) -> None:
    with pytest.raises(SecretOpsError, match="does not support"):
        from_rule({field: "x"}, "creation_rules[0]")


def test_a_password_in_a_vault_uri_is_not_shown() -> None:
    from secretops.keys.vault import redact_uri

    assert redact_uri("http://admin:s3cr3t@v:1/v1/t/keys/k") == "http://admin:***@v:1/v1/t/keys/k"
    with pytest.raises(SecretOpsError) as e:
        from_flags(hc_vault_transit="http://admin:s3cr3t@v:1/v1/keys/x")
    assert "s3cr3t" not in e.value.message


def test_an_empty_key_group_is_refused() -> None:
    """Its share could never be opened: the file would be lost, or the policy would shrink."""
    for groups in ([{"age": ["age1a"]}, {"age": []}], [{"age": ["age1a"]}, {"kms": []}]):
        with pytest.raises(SecretOpsError, match="empty key group"):
            from_rule({"key_groups": groups, "shamir_threshold": 2}, "creation_rules[0]")


def test_key_groups_win_over_top_level_keys_as_in_sops() -> None:
    (group,) = from_rule({"age": "age1top", "key_groups": [{"age": ["age1g"]}]}, "r")
    assert group == [KeySpec("age", {"recipient": "age1g"})]
