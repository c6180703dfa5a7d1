"""``secretops keyservice``: serve sops's key service with this machine's identities."""

from __future__ import annotations

import sys

import click


@click.command("keyservice")
@click.option("--network", "--net", "network", default="tcp", show_default=True,
              metavar="NETWORK", help="tcp or unix.")
@click.option("--address", "--addr", "address", default=None, metavar="ADDRESS",
              help="HOST:PORT for tcp (default 127.0.0.1:5000; port 0 picks a free one), a "
                   "socket path for unix.")
@click.option("--prompt", is_flag=True,
              help="Ask on the terminal before answering each request.")
@click.option("--verbose", is_flag=True, help="Accepted for sops compatibility; every request "
                                              "is logged on stderr anyway.")
def command(network: str, address: str | None, prompt: bool, verbose: bool) -> None:
    """Answer sops's key service calls (Encrypt, Decrypt) with the keys of this machine.

    Another machine's sops or secretops then decrypts with --keyservice tcp://HOST:PORT (or
    unix:///PATH), without holding the key. There is no authentication in sops's protocol:
    anyone who can connect can ask for any data key this machine's identities unwrap. The
    default is loopback only; see docs/keys/keyservice.md before listening elsewhere.

    \b
      secretops keyservice                                  # 127.0.0.1:5000
      secretops keyservice --network unix --address ~/.sops/ks.sock
      ssh -L 5000:127.0.0.1:5000 keyholder  # then, here: sops --keyservice tcp://127.0.0.1:5000
    """
    import os
    import signal
    import threading

    from secretops.errors import ExitCode, SecretOpsError
    from secretops.keyservice import DEFAULT_ADDRESS
    from secretops.keyservice.client import check_available
    from secretops.keyservice.server import serve

    if prompt and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise SecretOpsError("--prompt asks on the terminal before each request, and there is "
                             "no terminal", code=ExitCode.CONFIRMATION_REQUIRED,
                             hints=("run it on a terminal, or without --prompt",))
    check_available()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    serve(network, address if address is not None else DEFAULT_ADDRESS, env=os.environ,
          ask=_ask if prompt else None, log=_log, until=stop)


def _log(line: str) -> None:
    sys.stderr.write(f"secretops: keyservice: {line}\n")
    sys.stderr.flush()


def _ask(question: str) -> bool:
    """sops's question, asked until the answer is y or n; no answer (end of input) is no."""
    while True:
        sys.stdout.write("\n" + question)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return False
        if line.strip() in ("y", "n"):
            return line.strip() == "y"
