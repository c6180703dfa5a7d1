"""``secretops-controller`` / ``python -m secretops_controller``: flags → :func:`operator.run`.

The same code runs in a Pod (service account, ``POD_NAMESPACE``) and in tests (``--kubeconfig``
pointing at the emulator, short periods).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence

from secretops_controller.config import (
    DEFAULT_LEASE_NAME,
    DEFAULT_NAMESPACE,
    SERVICE_ACCOUNT_TOKEN_FILE,
    Config,
    default_identity,
    parse_duration,
    parse_size,
    parse_time,
)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seconds(text: str) -> int:
    """A duration in whole seconds (rounded up): for parameters the apiserver types as int64."""
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1s: {text!r}")
    return math.ceil(value)


def env_flag(name: str, default: bool = True) -> bool:
    """A feature switch from the environment (``true``/``false``, ``1``/``0``, ``on``/``off``)."""
    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"secretops-controller: error: ${name}: not true or false: {text!r}")


def env_list(name: str) -> list[str]:
    """A comma-separated list from the environment (``SECRETOPS_WATCH_NAMESPACES=a,b``)."""
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]
def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _time(text: str) -> object:
    try:
        return parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="secretops-controller",
        description="Unseal SealedSecrets into Secrets; keep the sealing key ring.")
    p.add_argument("--namespace", default=env("POD_NAMESPACE") or DEFAULT_NAMESPACE,
                   help="the controller's own namespace: key ring and recipients ConfigMap "
                        "(default: $POD_NAMESPACE or %(default)s)")
    p.add_argument("--watch-namespace", action="append", default=None, metavar="NS",
                   help="namespaced mode: watch only this namespace (repeatable; default: "
                        "$SECRETOPS_WATCH_NAMESPACES, comma-separated, else all namespaces)")
    p.add_argument("--key-renew-period", type=_duration, default=parse_duration("30d"),
                   metavar="DURATION", help="make a new sealing key this often (0: never; "
                   "default 30d)")
    p.add_argument("--key-cutoff-time", type=_time, default=None, metavar="RFC3339",
                   help="renew at start if the newest key was made before this time")
    p.add_argument("--key-refresh-interval", type=_duration, default=60.0,
                   metavar="DURATION", help="re-read the key ring this often (default 60s)")
    p.add_argument("--http-host", default=env("SECRETOPS_HTTP_HOST", "0.0.0.0"))
    p.add_argument("--http-port", type=int, default=int(env("SECRETOPS_HTTP_PORT", "8080")),
                   help="/v1/cert, /v1/verify, /v1/rotate, /healthz, /metrics (default 8080)")
    p.add_argument("--kubeconfig", default=None,
                   help="default: $KUBECONFIG, else the Pod's service account")
    p.add_argument("--retry-base-delay", type=_duration,
                   default=parse_duration(env("SECRETOPS_RETRY_BASE_DELAY", "1s")),
                   metavar="DURATION", help="first retry delay, doubled per retry (1s)")
    p.add_argument("--retry-max-delay", type=_duration,
                   default=parse_duration(env("SECRETOPS_RETRY_MAX_DELAY", "60s")),
                   metavar="DURATION", help="longest retry delay (60s)")
    p.add_argument("--max-retries", type=int, default=20,
                   help="give up a failing reconcile after this many retries (20)")
    p.add_argument("--watch-timeout", type=_seconds, default=300, metavar="DURATION",
                   help="server-side timeout of each watch request (300s)")
    p.add_argument("--resync-period", type=_duration, default=300.0, metavar="DURATION",
                   help="the leader re-checks that every Synced SealedSecret has its Secret "
                        "this often, repairing what a dropped watch missed (300s; 0: never)")
    p.add_argument("--workers", type=int, default=int(env("SECRETOPS_WORKERS", "64")),
                   metavar="N", help="objects handled at once per kind, and ExternalSecret "
                   "syncs at once (64): bounds the work in flight, and so the memory, of a "
                   "start over many objects")
    p.add_argument("--store-refresh-interval", type=_duration, default=300.0,
                   metavar="DURATION", help="validate each SecretStore / ClusterSecretStore "
                   "again this often unless its spec.refreshInterval says otherwise (5m; 0: "
                   "only when it changes)")
    p.add_argument("--service-account-token-file", default=SERVICE_ACCOUNT_TOKEN_FILE,
                   metavar="FILE", help="the controller's own service-account token, for Vault "
                   "Kubernetes auth of a ClusterSecretStore naming no service account "
                   "(default: the Pod's, %(default)s)")
    p.add_argument("--log-level", default=env("SECRETOPS_LOG_LEVEL", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    ft = p.add_argument_group(
        "features (a feature that is off registers no handler and makes no API call; "
        "defaults from $SECRETOPS_<NAME>=true|false, else on)")
    for flag, var, what in (
            ("sealed-secrets", "SECRETOPS_SEALED_SECRETS",
             "unseal SealedSecrets; keep the key ring; /v1/cert, /v1/verify, /v1/rotate"),
            ("external-secrets", "SECRETOPS_EXTERNAL_SECRETS",
             "sync ExternalSecrets from SecretStores"),
            ("cluster-secret-stores", "SECRETOPS_CLUSTER_SECRET_STORES",
             "ClusterSecretStores (cluster-scoped: a ClusterRole in every mode)"),
            ("rollout", "SECRETOPS_ROLLOUT",
             "roll Deployments, StatefulSets, DaemonSets when a synced Secret changes"),
            ("token-requests", "SECRETOPS_TOKEN_REQUESTS",
             "request service-account tokens for Vault Kubernetes auth (serviceAccountRef)")):
        ft.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction,
                        default=env_flag(var), help=f"{what} (${var})")
    ro = p.add_argument_group("calm rollouts (when --rollout is on)")
    ro.add_argument("--rollout-window", type=_duration, default=10.0, metavar="DURATION",
                    help="Secret changes of a namespace within this long of the first are "
                         "rolled together: one roll per workload (10s; 0: at once)")
    ro.add_argument("--rollout-concurrency", type=int, default=10, metavar="N",
                    help="workloads rolling at once in the whole cluster; more wait in a "
                         "queue (10)")
    ro.add_argument("--rollout-timeout", type=_duration, default=600.0, metavar="DURATION",
                    help="a roll not done after this long frees its place in the budget, "
                         "with a Warning Event (10m)")
    lim = p.add_argument_group(
        "limits on untrusted work (templates, request bodies): each job runs in a worker "
        "process, killed past its time")
    lim.add_argument("--template-timeout", type=_duration, default=2.0, metavar="DURATION",
                     help="wall-clock time one object's templates may take to render (2s)")
    lim.add_argument("--worker-memory", type=_size, default=32 << 20, metavar="SIZE",
                     help="memory each worker (template or request) may use past its "
                          "start-up size (32Mi)")
    lim.add_argument("--template-workers", type=int, default=2, metavar="N",
                     help="template worker processes, started on first use (2)")
    lim.add_argument("--request-timeout", type=_duration, default=10.0, metavar="DURATION",
                     help="time one POST /v1/verify or /v1/rotate may take (10s)")
    p.add_argument("--reseal-recipient", action="append", default=[], metavar="AGE1…",
                   help="POST /v1/rotate also seals for this age recipient (repeatable: other "
                        "clusters, break-glass keys); never for one the request lists")
    lim.add_argument("--request-workers", type=int, default=1, metavar="N",
                     help="POST /v1/verify and /v1/rotate requests served at once; more are "
                          "refused with 429 (1)")
    le = p.add_argument_group("leader election (a coordination.k8s.io/v1 Lease in --namespace)")
    le.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                    help="only the holder of the Lease reconciles, renews keys and writes "
                         "(default: on; --no-leader-elect for a single replica)")
    le.add_argument("--lease-name", default=DEFAULT_LEASE_NAME,
                    help="the Lease's name (default %(default)s)")
    le.add_argument("--lease-duration", type=_duration, default=15.0, metavar="DURATION",
                    help="a non-leader takes over after the Lease went this long without "
                         "renewal (15s)")
    le.add_argument("--renew-deadline", type=_duration, default=10.0, metavar="DURATION",
                    help="the leader stops its handlers when it could not renew for this long "
                         "(10s; less than --lease-duration)")
    le.add_argument("--retry-period", type=_duration, default=2.0, metavar="DURATION",
                    help="how often the leader renews and the others try to acquire (2s)")
    le.add_argument("--shards", type=int, default=int(env("SECRETOPS_SHARDS", "1")),
                    metavar="N", help="split the namespaces into N shards, one Lease each "
                    "(shard 0's is --lease-name, shard i's <lease-name>-shard-<i>): the "
                    "replicas share them out and each handles the namespaces of its shards; "
                    "1: one leader handles all (default: $SECRETOPS_SHARDS, else 1)")
    return p


def config_from(args: argparse.Namespace) -> Config:
    return Config(
        namespace=args.namespace,
        watch_namespaces=tuple(dict.fromkeys(
            args.watch_namespace or env_list("SECRETOPS_WATCH_NAMESPACES"))),
        key_renew_period=args.key_renew_period,
        key_cutoff_time=args.key_cutoff_time,
        key_refresh_interval=args.key_refresh_interval,
        http_host=args.http_host,
        http_port=args.http_port,
        kubeconfig=args.kubeconfig,
        retry_base_delay=args.retry_base_delay,
        retry_max_delay=args.retry_max_delay,
        max_retries=args.max_retries,
        watch_timeout=args.watch_timeout,
        resync_period=args.resync_period,
        workers=args.workers,
        log_level=args.log_level,
        service_account_token_file=args.service_account_token_file,
        store_refresh_interval=args.store_refresh_interval,
        leader_elect=args.leader_elect,
        lease_name=args.lease_name,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
        shards=args.shards,
        identity=default_identity(),
        sealed_secrets=args.sealed_secrets,
        external_secrets=args.external_secrets,
        cluster_secret_stores=args.cluster_secret_stores,
        rollout=args.rollout,
        rollout_window=args.rollout_window,
        rollout_concurrency=args.rollout_concurrency,
        rollout_timeout=args.rollout_timeout,
        token_requests=args.token_requests,
        template_timeout=args.template_timeout,
        worker_memory=args.worker_memory,
        template_workers=args.template_workers,
        request_timeout=args.request_timeout,
        request_workers=args.request_workers,
        reseal_recipients=tuple(args.reseal_recipient),
    )


def configure_logging(level: str) -> None:
    """Log lines to stderr at ``level``. At INFO, each object handled is one line of ours (what
    was written, or why not); kopf's own per-object INFO lines ("Handler ... succeeded",
    "Creation is processed ...": four to six per object, formatted and written at every cold
    start) are left to DEBUG. kopf's warnings and errors are kept at every level."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(
            max(logging.WARNING, logging.getLogger().getEffectiveLevel()))


def main(argv: Sequence[str] | None = None) -> None:
    p = parser()
    config = config_from(p.parse_args(argv))
    try:
        config.check()
    except ValueError as e:
        p.error(str(e))
    configure_logging(config.log_level)
    from secretops_controller import operator  # kopf is imported only once flags are valid

    operator.run(config)


if __name__ == "__main__":
    main()
