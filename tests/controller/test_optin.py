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
