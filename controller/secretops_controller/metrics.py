"""The controller's Prometheus metrics, served on ``GET /metrics`` (docs/metrics.md).

One :class:`Metrics` per controller, in its own ``prometheus_client`` registry (no
process-global state: tests run several). Names follow Prometheus' conventions (a
``secretops_`` prefix, base units, counters end in ``_total``) and mirror those Sealed Secrets'
and ESO's users already alert on; docs/metrics.md maps them.

Labels carry names of objects, providers, operations and fixed reasons only: never a value nor
anything computed from one. The per-object condition gauges
(``secretops_sealedsecret_condition``, ``secretops_externalsecret_status_condition``) hold
one series per object, condition and status (1 for the current status, 0 for the others,
as ESO's ``externalsecret_status_condition``; ``Unknown`` only once it has been the status)
and drop an object's series when it is deleted
(:meth:`ConditionGauge.forget`), so their cardinality follows the objects that exist.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from secretops_controller.conditions import STATUSES, UNKNOWN


class ConditionGauge(Collector):
    """``<name>{namespace, name, condition, status}``: 1 for an object's current status of
    each condition, 0 for the other statuses; :meth:`forget` removes the object's series.

    A collector over one compact map (object → its conditions' statuses), made into samples
    when scraped: a ``prometheus_client`` child per series costs ~0.8 KiB, two or three per
    object, which at 20,000 objects was the largest per-object state of the controller."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        # (namespace, name) -> ((condition, status), ...)
        self._state: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        self._unknown: set[tuple[str, str, str]] = set()  # (ns, name, condition) ever Unknown
        registry.register(self)

    def set(self, namespace: str, name: str, condition: str, status: str) -> None:
        key = (namespace, name)
        rest = tuple(c for c in self._state.get(key, ()) if c[0] != condition)
        self._state[key] = (*rest, (condition, _STATUS.get(status, status)))
        if status == UNKNOWN:
            self._unknown.add((namespace, name, condition))

    def forget(self, namespace: str, name: str) -> None:
        for condition, _ in self._state.pop((namespace, name), ()):
            self._unknown.discard((namespace, name, condition))

    def clear(self) -> None:
        self._state.clear()
        self._unknown.clear()

    def forget_namespaces(self, keep: Callable[[str], bool]) -> None:
        """Forget every object whose namespace ``keep`` refuses (shards no longer handled)."""
        for ns, name in [k for k in self._state if not keep(k[0])]:
            self.forget(ns, name)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation,
                                   labels=["namespace", "name", "condition", "status"])
        for (namespace, name), conditions in list(self._state.items()):
            for condition, status in conditions:
                # True and False always (as ESO); Unknown only once it has been the status,
                # which these conditions never are today
                unknown = (namespace, name, condition) in self._unknown
                for s in STATUSES:
                    if s != UNKNOWN or unknown:
                        family.add_metric([namespace, name, condition, s],
                                          1.0 if s == status else 0.0)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation,
                                labels=["namespace", "name", "condition", "status"])


_STATUS = {s: s for s in STATUSES}  # the status strings, shared by every object


def _version() -> str:
    try:
        return metadata.version("secretops-controller")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        from secretops import __version__

        return __version__


class Metrics:
    """Every metric of the controller, both halves."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.build_info = Gauge("secretops_build_info",
                                "Always 1; the controller's version and Python's as labels",
                                ["version", "python_version"], registry=r)
        self.build_info.labels(_version(), platform.python_version()).set(1)
        self.leader = Gauge("secretops_leader",
                            "1 while this replica holds the leader Lease (its handlers run)",
                            registry=r)
        self.shards_held = Gauge("secretops_shards_held",
                                 "Shard Leases this replica holds (--shards; its handlers run "
                                 "for their namespaces)", registry=r)
        self.reconcile_duration = Histogram(
            "secretops_reconcile_duration_seconds", "Time to reconcile one object", ["kind"],
            registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        # ---- SealedSecrets
        self.unseals = Counter("secretops_unseals_total",
                               "SealedSecrets unsealed into a Secret", registry=r)
        self.unseal_errors = Counter("secretops_unseal_errors_total",
                                     "SealedSecrets that could not be unsealed or written",
                                     ["reason"], registry=r)
        self.sealing_keys = Gauge("secretops_sealing_keys", "Keys in the sealing key ring",
                                  registry=r)
        self.newest_key_created = 0.0
        self.newest_key_age = Gauge("secretops_newest_sealing_key_age_seconds",
                                    "Age of the newest sealing key", registry=r)
        self.newest_key_age.set_function(
            lambda: time.time() - self.newest_key_created if self.newest_key_created else 0.0)
        self.sealed_condition = ConditionGauge(
            "secretops_sealedsecret_condition",
            "1 for the current status of each condition of a SealedSecret, 0 for the others",
            r)
        # ---- ExternalSecrets
        self.provider_calls = Counter(
            "secretops_provider_calls_total", "Requests made to external secret providers",
            ["provider", "operation", "result"], registry=r)
        self.cache_entries = Gauge(
            "secretops_externalsecret_cache_entries",
            "Distinct (read identity, remote key) entries in the scheduler's cache: the "
            "provider reads of one refresh round", registry=r)
        self.store_refs = Gauge(
            "secretops_externalsecret_store_refs",
            "Distinct (store, remote key) pairs in use: the reads of one refresh round if each "
            "store had a cache of its own (minus cache_entries: saved by shared identities)",
            registry=r)
        self.syncs = Counter(
            "secretops_externalsecret_syncs_total",
            "ExternalSecret syncs by outcome (the Ready condition's reason)", ["reason"],
            registry=r)
        # ---- rollouts (external/rollqueue.py)
        self.rollout_changes = Counter(
            "secretops_rollout_changes_total",
            "Secret data changes that asked for a rollout (several may make one roll)",
            registry=r)
        self.rollouts = Counter(
            "secretops_rollouts_total",
            "Workload rolls by kind and result: started (patched), done, failed (past "
            "its progress deadline, or refused), timeout, skipped (paused)",
            ["kind", "result"], registry=r)
        self.rollouts_queued = Gauge(
            "secretops_rollouts_queued", "Workloads waiting for a place in the rollout budget",
            registry=r)
        self.rollouts_in_progress = Gauge(
            "secretops_rollouts_in_progress",
            "Workloads rolling now (patched, not yet done): at most --rollout-concurrency",
            registry=r)
        self.external_condition = ConditionGauge(
            "secretops_externalsecret_status_condition",
            "1 for the current status of each condition of an ExternalSecret, 0 for the others",
            r)

    def forget_conditions(self, keep: Callable[[str], bool] | None = None) -> None:
        """Drop every per-object condition series (this replica stops or starts leading), or
        (``--shards``) those of the namespaces ``keep`` refuses."""
        for gauge in (self.sealed_condition, self.external_condition):
            if keep is None:
                gauge.clear()
            else:
                gauge.forget_namespaces(keep)

    def observe_provider_call(self, provider: str, operation: str, result: str) -> None:
        """A provider request: ``result`` is ``ok`` or an error kind (``NotFound``...). Pass
        it to providers as their ``observe``."""
        self.provider_calls.labels(provider, operation, result).inc()


__all__ = ["ConditionGauge", "Metrics"]
