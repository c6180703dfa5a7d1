"""``python -m tests.k8s.emulator [--port P]``: serve an emulated cluster on 127.0.0.1.

Prints ``READY http://127.0.0.1:P`` (``https`` with ``--tls-dir``) once it accepts connections;
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from .server import Emulator, start


async def _main(args: argparse.Namespace) -> None:
    emulator = Emulator(
        history=args.history,
        bookmark_interval=args.bookmark_interval,
        cache_init_seconds=args.cache_init_seconds,
        kube_controllers=not args.no_controllers,
        log_requests=args.log_requests,
        issuer=args.issuer,
        api_audiences=args.api_audiences.split(",") if args.api_audiences else None,
        admission_plugins=[p for p in args.enable_admission_plugins.split(",") if p],
        audit_limit=args.audit_limit,
    )
    context = None
    if args.tls_dir:
        from .tls import make_certificates

        context = make_certificates(Path(args.tls_dir), args.host)
    runner, port = await start(emulator, args.host, args.port, context)
    print(f"READY {emulator.scheme}://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--history",
        type=int,
        default=10_000,
        help="events kept per resource for watch resumption; older versions get 410 Expired",
    )
    parser.add_argument(
        "--cache-init-seconds",
        type=float,
        default=1.0,
        help="after a CRD is served, its lists and watches get 429 'storage is (re)initializing' "
        "for this long, as a real apiserver's new cacher answers (0: never)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between BOOKMARK events on watches that allow them",
    )
    parser.add_argument(
        "--no-controllers",
        action="store_true",
        help="run no garbage collector or namespace controller (a bare apiserver): dependents "
        "outlive their owners, deleted namespaces stay Terminating",
    )
    parser.add_argument(
        "--enable-admission-plugins",
        default="",
        help="comma-separated admission plugins to run (off by default, as upstream): "
        "OwnerReferencesPermissionEnforcement (OpenShift's default; see admission.py)",
    )
    parser.add_argument(
        "--audit-limit",
        type=int,
        default=100_000,
        help="service-account calls whose records the audit log keeps (the newest); its counts "
        "by verb and resource (/_emulator/audit/counts) keep every call whatever the limit",
    )
    parser.add_argument(
        "--log-requests",
        action="store_true",
        help="print one line per request (method, path, status, time)",
    )
    parser.add_argument(
        "--tls-dir",
        help="serve HTTPS with a throwaway CA; its certificate is written to TLS_DIR/ca.crt",
    )
    parser.add_argument(
        "--issuer", help="service-account token issuer (default: the emulator's own URL)"
    )
    parser.add_argument(
        "--api-audiences", help="comma-separated API audiences (default: the issuer)"
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
