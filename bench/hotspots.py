"""Profile one secretops encrypt and decrypt in-process with cProfile.

    .venv/bin/python -m bench.hotspots [--size 10000] [--helm] [--top 15] [--sort KEYS]

Runs the CLI's entry point (``secretops encrypt|decrypt``) inside this process, output to
/dev/null, once unprofiled (imports, caches) and then once under cProfile, and prints the top
functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.inputs import InputSpec, write_input
from bench.procs import make_age_key


@contextlib.contextmanager
def stdout_to(path: str) -> Iterator[None]:
    """Point file descriptor 1 (and sys.stdout) at ``path`` for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(fd)
        os.close(saved)


def run_cli(args: list[str], out: str) -> None:
    """``secretops ARGS`` as the console script runs it: the fast path for plain encrypt /
    decrypt (without the entry point's ``os._exit``, which would end this process), else the
    click application."""
    from secretops.cli import _fast

    saved = sys.argv
    sys.argv = ["secretops", *args]
    try:
        with stdout_to(out):
            code = _fast.run(args)
            if code is None:
                from secretops.cli.app import cli

                cli(args=args, prog_name="secretops", standalone_mode=False)
                code = 0
        if code:
            raise RuntimeError(f"secretops {args[0]} exited {code}")
    finally:
        sys.argv = saved


def profile(args: list[str], out: str, top: int, sorts: list[str]) -> tuple[float, str]:
    run_cli(args, out)  # warm: imports and caches are not what we are after
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run_cli(args, out)
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    for sort in sorts:
        stats.sort_stats(sort).print_stats(top)
    return wall, buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__)
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--helm", action="store_true", help="Helm values instead of a Secret")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--sort", default="cumulative,tottime",
                    help="pstats sort keys, comma-separated (default cumulative,tottime)")
    args = ap.parse_args(argv)
    kind = "helm" if args.helm else "secret"
    spec = InputSpec(f"{kind}_{args.size}", kind, args.size)
    with tempfile.TemporaryDirectory(prefix="secretops-prof-") as tmp:
        work = Path(tmp)
        os.environ.update({"HOME": tmp, "XDG_CONFIG_HOME": tmp,
                           "SOPS_AGE_KEY_FILE": str(work / "keys.txt")})
        recipient = make_age_key(work / "keys.txt")
        src = write_input(spec, work)
        enc = work / f"{spec.name}.enc.yaml"
        enc_args = ["encrypt", "--age", recipient, *spec.encrypt_flags, str(src)]
        run_cli(enc_args, str(enc))
        for title, cli_args in (("encrypt", enc_args), ("decrypt", ["decrypt", str(enc)])):
            wall, text = profile(cli_args, os.devnull, args.top, args.sort.split(","))
            print(f"== secretops {title} {spec.name}, in-process: {wall:.3f} s under cProfile")
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
