"""The controller's settings: parsed once from flags and the environment, then read-only.

Every period and delay is here, so tests run the same code with short values instead of
sleeping (``--key-renew-period 2s --retry-base-delay 0.1s``).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime

from secretops_controller.shards import MAX_SHARDS

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

DEFAULT_NAMESPACE = "secretops-system"
DEFAULT_LEASE_NAME = "secretops-controller"
RECIPIENTS_CONFIGMAP = "secretops-sealing-recipients"


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``720h``, ``1h30m``, ``1.5s``, ``250ms`` or a bare number (``0``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 720h, 90s, 500ms)")
    return total


_SIZE = re.compile(r"(\d+)(Ki|Mi|Gi)?")


def parse_size(text: str) -> int:
    """Bytes in ``64Mi``, ``512Ki``, ``1Gi`` or a bare number (Kubernetes quantity style)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 64Mi, 512Ki)")
    return int(m.group(1)) << {None: 0, "Ki": 10, "Mi": 20, "Gi": 30}[m.group(2)]


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2026-01-01T00:00:00Z``); a time zone is required."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"not an RFC 3339 time with a zone: {text!r}")
    return value


def default_identity() -> str:
    """The Lease holder name: ``$POD_NAME`` (downward API), else ``<hostname>_<pid>``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def backoffs(base: float, ceiling: float, count: int = 8) -> list[float]:
    """``base``, doubling, capped at ``ceiling``: kopf's retry sequences."""
    return [min(base * 2**i, ceiling) for i in range(count)]


SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# A Kubernetes namespace name (a DNS label): --watch-namespace values go into URLs and RBAC.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Config:
    namespace: str = DEFAULT_NAMESPACE
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace
    key_renew_period: float = 30 * 86400.0  # 0 disables renewal
    key_cutoff_time: datetime | None = None
    key_refresh_interval: float = 60.0  # re-read the ring (keys made by another replica)
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    kubeconfig: str | None = None
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    max_retries: int = 20
    watch_timeout: int = 300  # whole seconds: the apiserver refuses timeoutSeconds=300.0
    resync_period: float = 300.0  # leader: repair Secrets the watches missed (0: never)
    # objects handled at once per kind (kopf's per-object workers) and ExternalSecret syncs at
    # once: a bound on the work in flight, so a cold start over 20,000 objects does not run
    # 20,000 handlers (each with its copies, requests and task) together
    workers: int = 64
    log_level: str = "INFO"
    # The controller's own service-account token: Vault Kubernetes auth of a ClusterSecretStore
    # that names no service account (kubelet rotates the file in place; read at each login).
    service_account_token_file: str = SERVICE_ACCOUNT_TOKEN_FILE
    # SecretStores / ClusterSecretStores are validated again this often, unless their
    # spec.refreshInterval says otherwise (0: only on create/update/resume)
    store_refresh_interval: float = 300.0
    # Leader election (a coordination.k8s.io/v1 Lease in ``namespace``; see leader.py).
    leader_elect: bool = True
    lease_name: str = DEFAULT_LEASE_NAME
    lease_duration: float = 15.0  # a non-leader may take over after this long without renewal
    renew_deadline: float = 10.0  # the leader stops its handlers after this long without one
    retry_period: float = 2.0  # how often the leader renews and candidates try
    identity: str = ""  # the Lease holder name: $POD_NAME, else hostname_pid
    # Sharding (shardelect.py): the namespaces split into this many shards, one Lease each
    # (shard 0's is lease_name); 1: the single leader election above
    shards: int = 1
    # Features (docs/controller.md, "Features and RBAC"). One that is off registers no handler
    # and makes no API call, so an install leaves its RBAC out. The last three belong to the
    # external-secrets half and are off with it.
    sealed_secrets: bool = True
    external_secrets: bool = True
    cluster_secret_stores: bool = True  # cluster-scoped stores (a ClusterRole in any mode)
    rollout: bool = True  # list and patch Deployments, StatefulSets, DaemonSets
    # Calm rollouts (external/rollqueue.py): Secret changes of a namespace within this window
    # of the first are rolled together, one roll per workload; at most this many workloads
    # roll at once in the cluster (more wait in a queue); a roll not done after the timeout
    # frees its place (Deployment's own default progressDeadlineSeconds is 600)
    rollout_window: float = 10.0
    rollout_concurrency: int = 10
    rollout_timeout: float = 600.0
    token_requests: bool = True  # serviceaccounts/token for Vault Kubernetes auth
    # Templates (SealedSecret spec.template.data, ExternalSecret spec.target.template.data)
    # render in worker processes, each render bounded (secretops.sealing.workers): its time
    # and how many render at once; every worker's memory past its start-up size (~15 MiB).
    template_timeout: float = 2.0
    worker_memory: int = 32 << 20
    template_workers: int = 2
    # POST /v1/verify and /v1/rotate run in their own workers (they hold the keys; template
    # workers never do), as many at once as there are workers: more are refused with 429.
    request_timeout: float = 10.0
    request_workers: int = 1
    # POST /v1/rotate seals for the ring's newest key and these age recipients (other
    # clusters, break-glass keys) only: never for a recipient the request names.
    reseal_recipients: tuple[str, ...] = ()

    @property
    def namespaced(self) -> bool:
        """Watching a list of namespaces (Roles there) rather than the whole cluster."""
        return bool(self.watch_namespaces)

    @property
    def uses_cluster_stores(self) -> bool:
        return self.external_secrets and self.cluster_secret_stores

    @property
    def uses_rollout(self) -> bool:
        return self.external_secrets and self.rollout

    @property
    def uses_token_requests(self) -> bool:
        return self.external_secrets and self.token_requests

    def in_scope(self, namespace: str) -> bool:
        """Whether the controller may touch ``namespace``: any when cluster-wide, else a watched
        one or its own (key ring, Lease)."""
        return not self.namespaced or namespace in self.watch_namespaces or \
            namespace == self.namespace

    def check(self) -> None:
        """Refuse inconsistent settings (ValueError)."""
        if self.leader_elect and not (
                self.lease_duration > self.renew_deadline > self.retry_period > 0):
            raise ValueError("leader election needs --lease-duration > --renew-deadline > "
                             "--retry-period > 0")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"--shards must be between 1 and {MAX_SHARDS}")
        if self.shards > 1 and not self.leader_elect:
            raise ValueError("--shards needs leader election (the shards are Leases)")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.max_retries < 0 or self.retry_base_delay <= 0:
            raise ValueError("--max-retries must be >= 0 and --retry-base-delay > 0")
        if not (self.sealed_secrets or self.external_secrets):
            raise ValueError("nothing to do: both --no-sealed-secrets and --no-external-secrets")
        for ns in (*self.watch_namespaces, self.namespace):
            if not _NAMESPACE.fullmatch(ns):
                raise ValueError(f"not a namespace name: {ns!r}")
        if min(self.template_timeout, self.request_timeout) <= 0 or min(
                self.template_workers, self.request_workers) < 1 or self.worker_memory < (
                8 << 20):
            raise ValueError("--template-timeout and --request-timeout must be > 0, "
                             "--template-workers and --request-workers >= 1, "
                             "--worker-memory at least 8Mi")
        if self.rollout_window < 0 or self.rollout_concurrency < 1 or self.rollout_timeout <= 0:
            raise ValueError("--rollout-window must be >= 0, --rollout-concurrency >= 1 and "
                             "--rollout-timeout > 0")
        for r in self.reseal_recipients:
            if not r.startswith("age1"):
                raise ValueError(f"--reseal-recipient must be an age recipient: {r!r}")

    def retry_delay(self, retry: int, error: object = None) -> float:
        """The delay before retry number ``retry`` (0-based) of a failed reconcile; at least
        the server's ``Retry-After`` when ``error`` (an API error) carries one."""
        delay = float(min(self.retry_base_delay * 2.0**retry, self.retry_max_delay))
        after = getattr(error, "retry_after", None)
        return max(delay, float(after)) if after else delay
