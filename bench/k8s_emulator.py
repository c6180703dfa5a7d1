"""The Kubernetes API emulator's throughput: ``./scripts/bench --k8s [--stored N] [--creates M]``.

Issue 6's goal: at least 1,000 creates/s with 10,000 objects already stored, schema validation
on and watchers attached (5 by default: the fan-out), driven over keep-alive HTTP from a
separate client process with a few concurrent requests — so the emulator is never the
bottleneck of the controller's scale benchmarks. Prints the rates for the preload and the
measured batch (their ratio shows whether per-request cost grows with the stored objects) and
whether every watcher saw every event, and how soon.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tests.k8s.scale import run

GOAL = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench --k8s")
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--watchers", type=int, default=5,
                        help="watchers attached during the measured batch (fan-out)")
    args = parser.parse_args()
    result = run(args.stored, args.creates, args.concurrency, args.watchers)
    rate, preload = result["creates_per_s"], result["preload_per_s"]
    print(f"emulator start-up      {result['startup_s']:.2f} s")
    print(f"preload ({args.stored:,} objects)  {preload:,.0f} creates/s")
    print(f"measured ({args.creates:,} more)  {rate:,.0f} creates/s   goal >= {GOAL:,}: "
          f"{'PASS' if rate >= GOAL else 'FAIL'}")
    print(f"measured / preload     {rate / preload:.2f}  (about 1: no growth with stored objects)")
    print(f"watch events           {result['watch_events']:,} of "
          f"{args.stored + args.creates:,} at each of {args.watchers} watchers; all caught up "
          f"{result['watch_catchup_s']:.2f} s after the last create")
    out = Path(__file__).parent / "results" / "k8s-emulator-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
