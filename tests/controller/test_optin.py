"""Who may opt an existing Secret in: only the Secret itself (pure: desired_secret)."""

from __future__ import annotations

from secretops_controller.sealed import desired_secret

DESIRED = {"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "db", "namespace": "a", "labels": {"x": "1"}},
           "type": "Opaque", "data": {"pw": "bmV3"}}


def _existing(annotations: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "a", "annotations": annotations or {}},
            "type": "Opaque", "data": {"pw": "b2xk", "other": "a2VlcA=="}}


def _sealed(template_annotations: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": "db", "namespace": "a"},
            "spec": {"template": {"metadata": {"annotations": template_annotations}}}}


def test_a_sealedsecret_cannot_opt_a_foreign_secret_in_by_its_own_annotations() -> None:
    for opt in ({"secretops.dev/managed": "true"}, {"secretops.dev/patch": "true"}):
        assert desired_secret(_existing(), DESIRED, _sealed(opt)) is None


def test_the_secret_itself_opts_in() -> None:
    took = desired_secret(_existing({"secretops.dev/managed": "true"}), DESIRED, _sealed({}))
    assert took is not None and took["data"] == {"pw": "bmV3"}
    merged = desired_secret(_existing({"secretops.dev/patch": "true"}), DESIRED, _sealed({}))
    assert merged is not None and merged["data"] == {"pw": "bmV3", "other": "a2VlcA=="}


def test_a_patched_secret_never_becomes_ours() -> None:
    """After the first merge the Secret carries our label (for the drift watch); the next
    merge must still not give it our ownerReference, or deleting the SealedSecret would
    delete the keys it never managed."""
    owned = {**DESIRED, "metadata": {**DESIRED["metadata"], "ownerReferences": [{
        "apiVersion": "secretops.dev/v1alpha1", "kind": "SealedSecret", "name": "db",
        "uid": "u1", "controller": True}]}}
    patched = _existing({"secretops.dev/patch": "true"})
    first = desired_secret(patched, owned, _sealed({}))
    assert first is not None and "ownerReferences" not in first["metadata"]
    first["metadata"]["labels"] = {"secretops.dev/sealed-by": "true"}
    second = desired_secret(first, owned, _sealed({}))
    assert second is not None and "ownerReferences" not in second["metadata"]
    both = _existing({"secretops.dev/patch": "true", "secretops.dev/managed": "true"})
    took = desired_secret(both, owned, _sealed({}))
    assert took is not None and took["metadata"]["ownerReferences"][0]["uid"] == "u1"
