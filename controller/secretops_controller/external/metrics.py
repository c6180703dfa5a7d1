"""The external-secrets metrics, registered on the controller's shared registry
(:class:`secretops_controller.runtime.Metrics`), names as ESO's where they match:

* ``secretops_provider_calls_total{provider, call, status}`` — every provider request
  (``status``: ``ok`` or an :class:`~.provider.ErrorKind`); pass :meth:`observe` to providers;
* ``secretops_externalsecret_cache_entries`` — distinct (store, credentials, ref) entries;
* ``secretops_externalsecret_syncs_total{reason}`` — ExternalSecret syncs by outcome (the
  Ready condition's reason).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ExternalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.provider_calls = Counter(
            "secretops_provider_calls", "Requests made to external secret providers",
            ["provider", "call", "status"], registry=registry)
        self.cache_entries = Gauge(
            "secretops_externalsecret_cache_entries",
            "Distinct (store, credentials, remote key) entries in the scheduler's cache",
            registry=registry)
        self.syncs = Counter(
            "secretops_externalsecret_syncs", "ExternalSecret syncs by outcome (Ready reason)",
            ["reason"], registry=registry)

    def observe(self, provider: str, call: str, status: str) -> None:
        self.provider_calls.labels(provider, call, status).inc()
