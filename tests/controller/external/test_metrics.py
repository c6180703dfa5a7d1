"""Provider calls are counted on the controller's shared registry, by provider, call, status."""

from __future__ import annotations

from secretops_controller.external.metrics import ExternalMetrics
from secretops_controller.external.provider import RemoteRef
from secretops_controller.external.providers.vault import TokenAuth, VaultConfig, VaultProvider
from secretops_controller.runtime import Metrics

from tests.fixtures.openbao import OpenBao


def test_provider_calls_metric(openbao: OpenBao) -> None:
    shared = Metrics()
    metrics = ExternalMetrics(shared.registry)
    p = VaultProvider(VaultConfig(openbao.url), TokenAuth(openbao.token),
                      observe=metrics.observe)
    p.read_many([RemoteRef("metrics/none")])

    def value(call: str, status: str) -> float | None:
        return shared.registry.get_sample_value(
            "secretops_provider_calls_total",
            {"provider": "vault", "call": call, "status": status})

    assert value("lookup-self", "ok") == 1
    assert value("read", "NotFound") == 1
