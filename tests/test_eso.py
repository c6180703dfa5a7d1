"""secretops.eso: ESO manifests → secretops's, and ESO Go templates → the jinja2 sandbox.

Vectors in tests/testdata/eso/ follow the examples of ESO's documentation (provider and API
pages, the templating guide); unsupported.yaml gathers what must be named, not translated.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from secretops.eso import GROUP, convert, convert_all, convert_template
from secretops.sealing.serialize import load_documents
from secretops.sealing.template import render_all

DATA = Path(__file__).parent / "testdata" / "eso"


def load(name: str) -> list[dict[str, Any]]:
    return load_documents((DATA / name).read_bytes(), name)


def by_name(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs}


def paths(issues: list[Any]) -> set[tuple[str, str]]:
    return {(i.manifest, i.path) for i in issues}


# ---- stores ----------------------------------------------------------------------------------
def test_vault_stores_token_approle_kubernetes() -> None:
    out, issues = convert_all(load("vault-stores.yaml"))
    assert issues == []
    objs = by_name(out)
    assert all(o["apiVersion"] == GROUP for o in out)
    assert objs["vault-backend"] == {
        "apiVersion": GROUP, "kind": "SecretStore",
        "metadata": {"name": "vault-backend", "namespace": "web"},
        "spec": {"provider": {"vault": {
            "server": "http://my.vault.server:8200", "path": "secret", "version": "v2",
            "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}},
    }
    approle = objs["vault-approle"]["spec"]
    assert approle["provider"]["vault"]["auth"] == {"appRole": {
        "path": "approle", "roleId": "db02de05-fa39-4855-059b-67221c5c2f63",
        "secretRef": {"name": "my-secret", "key": "secret-id"}}}
    assert approle["refreshInterval"] == "300s"  # ESO: seconds as an integer
    css = objs["vault-k8s"]
    assert css["kind"] == "ClusterSecretStore"
    assert css["spec"]["provider"]["vault"]["auth"]["kubernetes"] == {
        "role": "demo", "mountPath": "kubernetes",
        "serviceAccountRef": {"name": "my-sa", "namespace": "eso", "audiences": ["vault"]}}
    assert css["spec"]["conditions"] == [{"namespaceSelector": {"matchLabels": {"team": "web"}}},
                                         {"namespaces": ["ops"]}]


def test_aws_stores_and_jwt_auth_skipped() -> None:
    out, issues = convert_all(load("aws-stores.yaml"))
    objs = by_name(out)
    assert objs["secretstore-sample"]["spec"]["provider"]["aws"] == {
        "service": "SecretsManager", "region": "eu-central-1",
        "auth": {"secretRef": {
            "accessKeyIDSecretRef": {"name": "awssm-secret", "key": "access-key"},
            "secretAccessKeySecretRef": {"name": "awssm-secret", "key": "secret-access-key"}}}}
    assert objs["parameterstore"]["spec"]["provider"]["aws"] == {
        "service": "ParameterStore", "region": "eu-central-1",
        "role": "arn:aws:iam::123456789012:role/team-a-reader"}
    assert "aws-irsa" not in objs  # another service account's identity: not the controller's
    assert paths(issues) == {("ClusterSecretStore aws-irsa", "spec.provider.aws.auth.jwt")}
    assert issues[0].refused


def store(provider: dict[str, Any], kind: str = "SecretStore", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "external-secrets.io/v1", "kind": kind,
            "metadata": {"name": "s", **({"namespace": "web"} if kind == "SecretStore" else {})},
            "spec": {"provider": provider, **spec}}


@pytest.mark.parametrize(("provider", "path"), [
    ({"gcpsm": {"projectID": "p"}}, "spec.provider.gcpsm"),
    ({"azurekv": {"vaultUrl": "https://x"}}, "spec.provider.azurekv"),
    ({"vault": {"server": "https://v", "path": "kv", "version": "v1",
                "auth": {"tokenSecretRef": {"name": "t", "key": "t"}}}},
     "spec.provider.vault.version"),
    ({"vault": {"server": "https://v", "path": "kv", "auth": {"ldap": {"username": "u"}}}},
     "spec.provider.vault.auth"),
    ({"vault": {"server": "https://v", "path": "kv",
                "auth": {"tokenSecretRef": {"name": "t", "key": "t", "namespace": "other"}}}},
     "spec.provider.vault.auth.tokenSecretRef.namespace"),
    ({"aws": {"service": "SecretsManager", "region": "r", "additionalRoles": ["arn:x"]}},
     "spec.provider.aws.additionalRoles"),
])
def test_stores_that_cannot_be_expressed_are_refused_and_named(
        provider: dict[str, Any], path: str) -> None:
    obj, issues = convert(store(provider))
    assert obj is None
    assert path in {i.path for i in issues}
    assert all(i.refused for i in issues)


def test_a_store_field_without_counterpart_refuses_the_store() -> None:
    """A converter may refuse; it never changes meaning: no field is silently left out."""
    obj, issues = convert(store({"vault": {
        "server": "https://v", "path": "kv/", "caProvider": {"type": "Secret", "name": "ca"},
        "auth": {"tokenSecretRef": {"name": "t", "key": "t", "namespace": "web"}}}},
        controller="dev", conditions=[{"namespaces": ["a"]}]))
    assert obj is None
    assert {(i.path, i.refused) for i in issues} == {
        ("spec.provider.vault.caProvider", True), ("spec.controller", True),
        ("spec.conditions", False)}
    # what ESO ignores too is only a note: the store is kept
    obj, issues = convert(store({"vault": {
        "server": "https://v", "path": "kv/",
        "auth": {"tokenSecretRef": {"name": "t", "key": "t", "namespace": "web"}}}},
        conditions=[{"namespaces": ["a"]}], retrySettings={"maxRetries": 3}))
    assert obj is not None and not any(i.refused for i in issues)
    vault = obj["spec"]["provider"]["vault"]
    assert vault["path"] == "kv" and vault["auth"]["tokenSecretRef"] == {"name": "t", "key": "t"}
    assert "conditions" not in obj["spec"]


@pytest.mark.parametrize("auth", ["token", 5, ["tokenSecretRef"], {"tokenSecretRef": "t"},
                                  {"appRole": {"roleId": 5}}, {"kubernetes": {"role": []}}])
def test_a_vault_auth_of_the_wrong_shape_is_refused_not_a_crash(auth: Any) -> None:
    """Issue 15 item 12: a scalar auth crashed with a traceback."""
    obj, issues = convert(store({"vault": {"server": "https://v", "path": "kv", "auth": auth}}))
    assert obj is None and issues and all(i.path.startswith("spec.provider.vault.auth")
                                          for i in issues)


# ---- ExternalSecrets -------------------------------------------------------------------------
def test_external_secret_fields_and_templates() -> None:
    out, issues = convert_all(load("externalsecrets.yaml"))
    assert issues == []
    es = by_name(out)["example"]
    assert es["metadata"] == {"name": "example", "namespace": "web",
                              "annotations": {"team": "web"}}  # last-applied dropped
    spec = es["spec"]
    assert spec["secretStoreRef"] == {"name": "secret-store-name", "kind": "SecretStore"}
    assert spec["refreshInterval"] == "1h0m0s"
    target = spec["target"]
    assert (target["name"], target["creationPolicy"], target["deletionPolicy"]) == (
        "secret-to-be-created", "Owner", "Delete")
    tpl = target["template"]
    assert tpl["type"] == "kubernetes.io/dockerconfigjson"
    assert tpl["metadata"] == {"labels": {"app": "web"}}
    assert "engineVersion" not in tpl
    assert spec["data"] == [
        {"secretKey": "username", "remoteRef": {"key": "provider-key",
                                                "property": "provider-key-property",
                                                "version": "provider-key-version"}},
        {"secretKey": "password", "remoteRef": {"key": "database/creds", "property": "password",
                                                "decodingStrategy": "Base64"}}]
    assert spec["dataFrom"] == [
        {"extract": {"key": "remote-key-in-the-provider"}},
        {"find": {"path": "path-to-filter", "name": {"regexp": ".*foobar.*"},
                  "decodingStrategy": "Auto"}}]
    # the translated templates render in secretops's sandbox as ESO renders the originals
    values = {"username": b"app", "password": b"s3@cr\"t", "api-token": b"tok"}
    rendered = render_all(tpl["data"], values)
    assert rendered["config.yml"] == b'user: app\npassword: s3@cr"t\n'
    assert rendered["token"] == b"dG9r"
    assert rendered["dsn"] == b'postgres://app:s3%40cr"t@pg:5432/app'
    auth = base64.b64encode(b'app:s3@cr"t').decode()
    assert rendered[".dockerconfigjson"] == ('{"auths":{"r.io":{"auth":"' + auth
                                             + '"}}}').encode()
    other = by_name(out)["cluster-store-user"]["spec"]
    assert other["secretStoreRef"]["kind"] == "ClusterSecretStore"
    assert other["refreshInterval"] == "15s" and other["target"] == {"creationPolicy": "Merge"}


def test_untranslatable_parts_are_named_one_issue_each() -> None:
    out, issues = convert_all(load("unsupported.yaml"))
    assert paths(issues) == {
        ("SecretStore web/gcp-store", "spec.provider.gcpsm"),
        ("ClusterExternalSecret everywhere", "kind"),
        ("ExternalSecret web/fancy", "spec.target.deletionPolicy"),
        ("ExternalSecret web/fancy", "spec.target.template.templateFrom"),
        ("ExternalSecret web/fancy", "spec.target.template.data.all.json"),
        ("ExternalSecret web/fancy", "spec.target.template.data.loop"),
        ("ExternalSecret web/fancy", "spec.target.template.data.ok"),
        ("ExternalSecret web/fancy", "spec.data[0].remoteRef.metadataPolicy"),
        ("ExternalSecret web/fancy", "spec.data[1].sourceRef"),
        ("ExternalSecret web/fancy", "spec.dataFrom[0].rewrite"),
        ("ExternalSecret web/fancy", "spec.dataFrom[1].find.tags"),
        ("ExternalSecret web/fancy", "spec.dataFrom[1].find"),
    }
    assert len(issues) == len(paths(issues)) and all(i.refused for i in issues)
    objs = by_name(out)
    assert set(objs) == {"passes-through"}  # each ESO object is refused whole
    assert objs["passes-through"] == load("unsupported.yaml")[-1]  # not ESO's: unchanged
    rewrite = next(i for i in issues if i.path == "spec.dataFrom[0].rewrite")
    assert "keys would have other names" in rewrite.message


def es(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret",
            "metadata": {"name": "e", "namespace": "n"},
            "spec": {"secretStoreRef": {"name": "s"}, **spec}}


@pytest.mark.parametrize(("spec", "expected", "issue"), [
    ({"refreshInterval": "0s"}, "0", None),
    ({"refreshInterval": "90s"}, "90s", None),
    ({"refreshPolicy": "CreatedOnce", "refreshInterval": "1h"}, "0", None),
    ({"refreshPolicy": "OnChange"}, "0", None),
    ({"refreshInterval": "1d"}, None, "spec.refreshInterval"),
    ({"refreshInterval": "500us"}, None, "spec.refreshInterval"),
])
def test_refresh_interval_and_policy(spec: dict[str, Any], expected: str | None,
                                     issue: str | None) -> None:
    obj, issues = convert(es(**spec))
    assert [i.path for i in issues] == ([issue] if issue else [])
    if issue:
        assert obj is None  # refused: the default interval would change its meaning
    else:
        assert obj is not None and obj["spec"].get("refreshInterval") == expected


def test_external_secret_without_store_is_skipped() -> None:
    doc = es()
    del doc["spec"]["secretStoreRef"]
    doc["spec"]["dataFrom"] = [{"sourceRef": {"generatorRef": {"kind": "Password", "name": "p"}}}]
    obj, issues = convert(doc)
    assert obj is None and issues[0].path == "spec.secretStoreRef"


def test_templated_labels_are_named() -> None:
    obj, issues = convert(es(target={"template": {"metadata": {"labels": {
        "a": "{{ .x }}", "b": "plain"}}}}))
    assert obj is None
    assert [i.path for i in issues] == ["spec.target.template.metadata.labels.a"]


def test_other_api_versions_of_eso_are_named_not_guessed() -> None:
    doc = es()
    doc["apiVersion"] = "external-secrets.io/v1alpha1"
    obj, issues = convert(doc)
    assert obj is None and issues[0].path == "apiVersion"


# ---- templates (their meaning: tests/test_eso_templates.py) ----------------------------------
@pytest.mark.parametrize(("go", "jinja", "values", "rendered"), [
    ("{{ .name }}", '{{ values["name"] }}', {"name": "v"}, "v"),
    ("{{ .name | b64enc }}", '{{ values["name"] | b64enc }}', {"name": "hi"}, "aGk="),
    ("{{ .name | toString }}", '{{ values["name"] | string }}', {"name": "v"}, "v"),
    ('{{ index . "a-b" }}', '{{ values["a-b"] | default("", false) }}', {"a-b": "v"}, "v"),
    ('{{ index . "tls.crt" | b64enc }}', '{{ (values["tls.crt"] | default("", false)) | b64enc }}',
     {"tls.crt": "hi"}, "aGk="),
    ("{{ b64enc .name }}", '{{ values["name"] | b64enc }}', {"name": "hi"}, "aGk="),
    ("{{ .name | sha256sum }}", '{{ values["name"] | sha256sum }}', {"name": ""},
     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ('{{ .name | replace "-" "_" }}', '{{ (values["name"] | string) | replace("-", "_") }}',
     {"name": "a-b"}, "a_b"),
    ('{{ .name | default "x" }}', '{{ (values["name"] | string) | default("x", true) }}',
     {"name": ""}, "x"),
    ('{{ printf "%s:%s" .u .p }}', '{{ (values["u"] | string) ~ ":" ~ (values["p"] | string) }}',
     {"u": "a", "p": "b"}, "a:b"),
    ('{{ printf "%s:%s" .u .p | b64enc }}',
     '{{ ((values["u"] | string) ~ ":" ~ (values["p"] | string)) | b64enc }}',
     {"u": "a", "p": "b"}, "YTpi"),
    ("a\n{{- .x -}}\nb", 'a{{ values["x"] }}b', {"x": "v"}, "avb"),
    ("{{/* note */}}k={{ .x }}", 'k={{ values["x"] }}', {"x": "v"}, "k=v"),
    ("{% raw {# x={{ .x }}", '{{ "{%" }} raw {{ "{#" }} x={{ values["x"] }}', {"x": "v"},
     "{% raw {# x=v"),
    ("{{ `raw\\n` }}", '{{ "raw\\\\n" }}', {}, "raw\\n"),
])
def test_go_template_forms(go: str, jinja: str, values: dict[str, str], rendered: str) -> None:
    assert convert_template(go) == jinja
    out = render_all({"k": jinja}, {k: v.encode() for k, v in values.items()})
    assert out["k"] == rendered.encode()


@pytest.mark.parametrize(("go", "why"), [
    ("{{ range $k, $v := . }}{{ $k }}{{ end }}", "variables"),
    ("{{ if .a }}x{{ end }}", "'if'"),
    ("{{ .a | toJson }}", "'toJson'"),
    ("{{ (.a | fromJson).b }}", "parenthesised"),
    ("{{ .a.b }}", "nested field"),
    ("{{ .a | pkcs12cert }}", "'pkcs12cert'"),
    ("{{ printf \"%d\" .a }}", "printf verbs"),
    ("{{ .a | replace \" .b\" \"\" }}", "Go field reference"),
    ("{{ .a ", "unterminated"),
])
def test_go_template_forms_without_counterpart(go: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        convert_template(go)
