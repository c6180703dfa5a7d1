"""Templates bound to the sealed values (format version 2), and values sealed before that.

Whoever may edit a SealedSecret but holds no key must not choose what its values are rendered
into: an edited ``spec.template`` (its ``type`` or ``data``) is refused before anything is
opened or rendered, with the same fixed message whatever the values are. Version-1 values
(``tests/testdata/sealing``, made by the code before this format) keep opening where their
template renders nothing, and are refused beside a template that does.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import struct
from typing import Any

import pytest
import yaml
from pyrage import x25519

from secretops.errors import ExitCode, SecretOpsError
from secretops.sealing import (
    ScopeMismatchError,
    load_identities,
    merge_into,
    reseal_sealed,
    seal_secret,
    seal_value,
    unseal_sealed,
    unseal_value,
    verify_sealed,
)
from secretops.sealing.format import (
    SealedValue,
    TemplateNotBoundError,
    decode,
    template_digest,
)
from secretops.sealing.sealed import annotated_scope, secret_scope
from tests.helpers import CANARY
from tests.sealing.legacy import VALUES, VECTORS, leaked, seal_v1


class Key:
    def __init__(self) -> None:
        self.identity = x25519.Identity.generate()
        self.recipient = str(self.identity.to_public())


@pytest.fixture
def key() -> Key:
    return Key()


URL = "postgres://{{ .user }}:{{ .password }}@db"
SECRET: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": "example.com/db",
          "metadata": {"name": "db", "namespace": "prod", "labels": {"app": "db"}},
          "stringData": {"password": CANARY, "user": "admin"}}

# What a tenant who may edit the SealedSecret but holds no key would put into its template:
# reads of a value through a transformation, and an oracle that fails or not on a guess.
PROBES = {
    "reversed": "{{ values[password[::-1]] }}",
    "slice": "{{ values[password[1:]] }}",
    "upper": "{{ values[password | upper] }}",
    "spaced": '{{ values[password | list | join(" ")] }}',
    "oracle-true": '{% if password.startswith("' + CANARY[:3] + '") %}{{ nope }}{% endif %}',
    "oracle-false": '{% if password.startswith("#") %}{{ nope }}{% endif %}',
    "copy": "{{ .password }}",
}


def _digest_by_hand(ttype: str, data: dict[str, str]) -> bytes:
    """docs/crypto.md's definition, written out independently of the code."""
    def field(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    out = b"secretops.dev/sealed-template/v1\x00" + field(ttype.encode())
    out += struct.pack(">I", len(data))
    for k in sorted(data, key=lambda k: k.encode()):
        out += field(k.encode()) + field(data[k].encode())
    return hashlib.sha256(out).digest()


def test_the_template_digest_is_the_documented_one() -> None:
    data = {"b": "2", "a": "{{ .x }}", "é": "ü"}
    tpl = {"type": "kubernetes.io/tls", "data": data}
    assert template_digest(tpl) == _digest_by_hand("kubernetes.io/tls", data)
    # type defaults to Opaque; labels, annotations and immutability are not bound
    assert template_digest({}) == template_digest({"type": "Opaque"}) == \
        _digest_by_hand("Opaque", {})
    assert template_digest({**tpl, "metadata": {"labels": {"a": "b"},
                                                "annotations": {"c": "d"}},
                            "immutable": True}) == template_digest(tpl)
    # every part counts, and the encoding is unambiguous
    assert template_digest({"data": {"ab": "c"}}) != template_digest({"data": {"a": "bc"}})
    assert template_digest({"type": "a", "data": {}}) != template_digest({"type": "Opaque"})
    with pytest.raises(SecretOpsError) as info:
        template_digest({"type": 5})
    assert info.value.code == ExitCode.INVALID_SEALED_SECRET


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_an_edited_template_is_refused_with_one_fixed_message(probe: str, key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient], templates={"url": URL})
    assert base64.b64decode(unseal_sealed(sealed, [key.identity])["data"]["url"]) == \
        f"postgres://admin:{CANARY}@db".encode()
    edited = copy.deepcopy(sealed)
    edited["spec"]["template"]["data"] = {"url": URL, "x": PROBES[probe]}
    with pytest.raises(TemplateNotBoundError) as info:
        unseal_sealed(edited, [key.identity])
    err = info.value
    assert int(err.code) == 164 and err.code == ExitCode.SEALED_TEMPLATE_NOT_BOUND
    # the same words whatever the probe and whatever the value: no oracle, nothing rendered
    assert str(err) == ('["spec"]["template"]: spec.template is not the template the values '
                        'were sealed with (keys "password", "user"): it was changed after '
                        "sealing; nothing was unsealed or rendered")
    assert not leaked(str(err) + " ".join(err.hints))
    for check in (lambda: verify_sealed(edited, [key.identity]),
                  lambda: verify_sealed(edited, [key.identity], render=False),
                  lambda: reseal_sealed(edited, [key.identity], [key.recipient]),
                  lambda: reseal_sealed(edited, [key.identity], [key.recipient],
                                        keep_unbound=True)):
        with pytest.raises(TemplateNotBoundError):
            check()


@pytest.mark.parametrize("change", ["type", "drop data", "add data"])
def test_type_and_data_are_bound(change: str, key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient], templates={"url": URL})
    tpl = sealed["spec"]["template"]
    if change == "type":
        tpl["type"] = "kubernetes.io/dockerconfigjson"
    elif change == "drop data":
        del tpl["data"]
    else:
        tpl["data"]["more"] = "{{ .user }}"
    with pytest.raises(TemplateNotBoundError):
        unseal_sealed(sealed, [key.identity])


def test_labels_and_annotations_are_not_bound(key: Key) -> None:
    """docs/crypto.md: they compute nothing from the values, and tools rewrite them."""
    sealed = seal_secret(SECRET, [key.recipient], templates={"url": URL})
    meta = sealed["spec"]["template"]["metadata"]
    meta["labels"] = {"app": "db", "release": "2"}
    meta["annotations"] = {"note": "edited"}
    sealed["spec"]["template"]["immutable"] = True
    secret = unseal_sealed(sealed, [key.identity])
    assert secret["metadata"]["labels"]["release"] == "2" and secret["immutable"] is True


def test_a_header_rewritten_for_the_new_template_fails_authentication(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient], templates={"url": URL})
    sealed["spec"]["template"]["data"]["x"] = PROBES["reversed"]
    forged = template_digest(sealed["spec"]["template"])
    enc = sealed["spec"]["encryptedData"]
    for k, text in enc.items():
        sv = decode(text)
        enc[k] = SealedValue(sv.binding, sv.wrapped_key, sv.nonce, sv.ciphertext,
                             forged).encode()
    with pytest.raises(SecretOpsError) as info:
        unseal_sealed(sealed, [key.identity])
    assert info.value.code == ExitCode.ERROR_DECRYPTING_TREE
    assert not leaked(str(info.value))


def test_a_value_downgraded_to_version_1_is_refused(key: Key) -> None:
    """Stripping the digest and claiming version 1: refused beside a data template, and
    failing authentication (the AAD was the version-2 header) beside any other."""
    for templates, code in (({"url": URL}, 164), (None, 25)):
        sealed = seal_secret(SECRET, [key.recipient], templates=templates)
        enc = sealed["spec"]["encryptedData"]
        for k, text in enc.items():
            sv = decode(text)
            enc[k] = SealedValue(sv.binding, sv.wrapped_key, sv.nonce, sv.ciphertext).encode()
            assert decode(enc[k]).template is None
        with pytest.raises(SecretOpsError) as info:
            unseal_sealed(sealed, [key.identity])
        assert info.value.code == code


def test_a_wide_value_moves_only_into_the_same_template(key: Key) -> None:
    text = seal_value(CANARY.encode(), [key.recipient], "namespace-wide", "prod", "a", "pw",
                      template={"data": {"url": "{{ .pw }}"}})
    assert unseal_value(text, [key.identity], "namespace-wide", "prod", "b", "pw",
                        template={"data": {"url": "{{ .pw }}"}}) == CANARY.encode()
    for other in (None, {"data": {"url": "{{ pw[::-1] }}"}}):
        with pytest.raises(TemplateNotBoundError):
            unseal_value(text, [key.identity], "namespace-wide", "prod", "b", "pw",
                         template=other)
    with pytest.raises(ScopeMismatchError):  # the place is still checked first
        unseal_value(text, [key.identity], "namespace-wide", "dev", "b", "pw")


def test_a_raw_value_is_bound_to_its_type(key: Key) -> None:
    tpl = {"type": "kubernetes.io/dockerconfigjson"}
    text = seal_value(b"{}", [key.recipient], "strict", "ns", "n", ".dockerconfigjson",
                      template=tpl)
    assert unseal_value(text, [key.identity], "strict", "ns", "n", ".dockerconfigjson",
                        template=tpl) == b"{}"
    with pytest.raises(TemplateNotBoundError):
        unseal_value(text, [key.identity], "strict", "ns", "n", ".dockerconfigjson")


# --- changing a template: only a key holder, knowingly ---------------------------------------

def test_reseal_refuses_an_edited_template_unless_told_to_bind_it(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient], templates={"url": URL})
    sealed["spec"]["template"]["data"]["url"] = "{{ .user }}@db"
    with pytest.raises(TemplateNotBoundError) as info:
        reseal_sealed(sealed, [key.identity], [key.recipient])
    assert "--bind-template" in " ".join(info.value.hints)
    rebound = reseal_sealed(sealed, [key.identity], [key.recipient], bind_template=True)
    assert base64.b64decode(unseal_sealed(rebound, [key.identity])["data"]["url"]) == b"admin@db"
    # re-binding still authenticates each value under the template it was sealed for
    forged = copy.deepcopy(sealed)
    for k, text in forged["spec"]["encryptedData"].items():
        sv = decode(text)
        forged["spec"]["encryptedData"][k] = SealedValue(
            sv.binding, sv.wrapped_key, sv.nonce, sv.ciphertext, bytes(32)).encode()
    with pytest.raises(SecretOpsError) as failed:
        reseal_sealed(forged, [key.identity], [key.recipient], bind_template=True)
    assert failed.value.code == ExitCode.ERROR_DECRYPTING_TREE


def test_merge_into_binds_new_values_and_refuses_an_edited_template(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient], templates={"url": URL})
    merged = merge_into(sealed, {"user": b"root"}, [key.recipient], labels={"tier": "x"})
    assert base64.b64decode(unseal_sealed(merged, [key.identity])["data"]["url"]) == \
        f"postgres://root:{CANARY}@db".encode()
    edited = copy.deepcopy(sealed)
    edited["spec"]["template"]["data"]["url"] = PROBES["reversed"]
    with pytest.raises(TemplateNotBoundError):  # new values would be bound to the probe
        merge_into(edited, {"user": b"root"}, [key.recipient])
    # a new template changes the binding: every value must come anew
    with pytest.raises(TemplateNotBoundError, match='keys password would no longer open'):
        merge_into(sealed, {"user": b"root"}, [key.recipient], templates={"u": "{{ .user }}"})
    both = merge_into(sealed, {"user": b"root", "password": b"pw"}, [key.recipient],
                      templates={"u": "{{ .user }}"})
    assert base64.b64decode(unseal_sealed(both, [key.identity])["data"]["u"]) == b"root"


def test_merge_into_seals_for_every_listed_recipient_or_refuses(key: Key) -> None:
    """Issue 15 item 10: new values for the cluster only broke the break-glass key."""
    breakglass = Key()
    sealed = seal_secret(SECRET, [key.recipient, breakglass.recipient])
    with pytest.raises(SecretOpsError) as info:
        merge_into(sealed, {"token": b"t"}, [key.recipient])
    err = info.value
    assert err.code == ExitCode.NO_ENCRYPTION_KEY_FOUND
    assert breakglass.recipient in err.message and err.path == '["spec"]["recipients"]'
    merged = merge_into(sealed, {"token": b"t"}, [key.recipient, breakglass.recipient])
    assert verify_sealed(merged, [breakglass.identity]) == 3
    assert verify_sealed(merged, [key.identity]) == 3


# --- version 1 (sealed before templates were bound) ------------------------------------------

def _vector(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((VECTORS / name).read_text()))


@pytest.fixture
def v1_ids() -> Any:
    return load_identities((VECTORS / "v1-key.txt").read_bytes(), "v1-key.txt")


def test_the_version_1_vectors_and_the_helper_read_alike(key: Key, v1_ids: Any) -> None:
    for name in ("v1-no-template-data.yaml", "v1-template-data.yaml"):
        for text in _vector(name)["spec"]["encryptedData"].values():
            raw = base64.b64decode(text)
            assert raw[4] == 1 and decode(text).template is None
    made = seal_v1(VALUES, [key.recipient], "prod", "db")
    for text in made["spec"]["encryptedData"].values():
        assert base64.b64decode(text)[4] == 1 and decode(text).template is None


def test_version_1_without_a_data_template_still_unseals(v1_ids: Any) -> None:
    secret = unseal_sealed(_vector("v1-no-template-data.yaml"), v1_ids)
    assert base64.b64decode(secret["data"]["password"]) == CANARY.encode()
    assert secret["metadata"]["labels"] == {"app": "db"}


def test_version_1_with_a_data_template_is_refused_unrendered(v1_ids: Any) -> None:
    sealed = _vector("v1-template-data.yaml")
    with pytest.raises(TemplateNotBoundError) as info:
        unseal_sealed(sealed, v1_ids)
    err = info.value
    assert 'format 1: keys "password", "user"' in err.message
    assert "secretops reseal --identity KEY --bind-template" in " ".join(err.hints)
    assert not leaked(str(err))
    with pytest.raises(TemplateNotBoundError):
        verify_sealed(sealed, v1_ids, render=False)


def test_migrating_version_1(key: Key, v1_ids: Any) -> None:
    plain, templated = _vector("v1-no-template-data.yaml"), _vector("v1-template-data.yaml")
    # a key holder's reseal binds; a template that renders values only when told to
    bound = reseal_sealed(plain, v1_ids, [key.recipient])
    assert {decode(t).template for t in bound["spec"]["encryptedData"].values()} == {
        template_digest(plain["spec"]["template"])}
    with pytest.raises(TemplateNotBoundError):
        reseal_sealed(templated, v1_ids, [key.recipient])
    rebound = reseal_sealed(templated, v1_ids, [key.recipient], bind_template=True)
    url = unseal_sealed(rebound, [key.identity])["data"]["url"]
    assert base64.b64decode(url) == f"postgres://admin:{CANARY}@db:5432/app".encode()
    # the controller's rotation never binds: version 1 stays version 1, and a data template
    # beside version-1 values is refused there too
    rotated = reseal_sealed(plain, v1_ids, [key.recipient], keep_unbound=True)
    assert {decode(t).template for t in rotated["spec"]["encryptedData"].values()} == {None}
    assert verify_sealed(rotated, [key.identity]) == 2
    with pytest.raises(TemplateNotBoundError):
        reseal_sealed(templated, v1_ids, [key.recipient], keep_unbound=True)


# --- kubeseal's scope annotations (issue 15 item 11) -----------------------------------------

@pytest.mark.parametrize("scope", ["namespace-wide", "cluster-wide"])
def test_a_scope_annotation_chooses_the_scope(scope: str, key: Key) -> None:
    anno = f"sealedsecrets.bitnami.com/{scope}"
    secret = copy.deepcopy(SECRET)
    secret["metadata"]["annotations"] = {anno: "true", "note": "kept"}
    sealed = seal_secret(secret, [key.recipient])
    assert sealed["spec"]["scope"] == scope
    assert sealed["spec"]["template"]["metadata"]["annotations"] == {"note": "kept"}
    assert verify_sealed(sealed, [key.identity]) == 2
    assert seal_secret(secret, [key.recipient], scope)["spec"]["scope"] == scope
    with pytest.raises(SecretOpsError) as info:
        seal_secret(secret, [key.recipient], "strict")
    assert info.value.code == ExitCode.CONFLICTING_PARAMETERS
    assert str(info.value) == (f"--scope strict conflicts with the Secret's annotation "
                               f"sealedsecrets.bitnami.com/{scope}")


def test_scope_annotations_read_as_kubeseal_reads_them_or_refused() -> None:
    ns, cw = ("sealedsecrets.bitnami.com/namespace-wide", "sealedsecrets.bitnami.com/cluster-wide")
    assert annotated_scope({ns: "false"}) is None and annotated_scope(None) is None
    assert secret_scope({"metadata": {"annotations": {cw: "false"}}}, None).value == "strict"
    for bad, code in (({ns: "yes"}, ExitCode.INVALID_INPUT),
                      ({ns: "true", cw: "true"}, ExitCode.CONFLICTING_PARAMETERS)):
        with pytest.raises(SecretOpsError) as info:
            annotated_scope(bad)
        assert info.value.code == code


def test_merge_into_never_seals_for_a_planted_recipient(key: Key) -> None:
    """Someone who can write to the repository lists their own key in spec.recipients: the
    next --merge-into refuses (names it) rather than sealing new values for it."""
    attacker = Key()
    sealed = seal_secret(SECRET, [key.recipient])
    sealed["spec"]["recipients"].append(attacker.recipient)
    with pytest.raises(SecretOpsError) as info:
        merge_into(sealed, {"token": CANARY.encode()}, [key.recipient])
    assert attacker.recipient in info.value.message
    assert info.value.code == ExitCode.NO_ENCRYPTION_KEY_FOUND
    sealed["spec"]["recipients"].remove(attacker.recipient)  # spotted in review
    merged = merge_into(sealed, {"token": CANARY.encode()}, [key.recipient])
    with pytest.raises(SecretOpsError) as info:
        unseal_value(merged["spec"]["encryptedData"]["token"], [attacker.identity], "strict",
                     "prod", "db", "token", template=merged["spec"]["template"])
    assert info.value.code == ExitCode.COULD_NOT_RETRIEVE_KEY
