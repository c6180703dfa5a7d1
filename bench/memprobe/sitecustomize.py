"""What the controller's memory is made of at its peak: a debugging probe, not part of the product.

Put this directory first on ``PYTHONPATH`` and set ``SECRETOPS_MEMPROBE=<file>``; every Python
process started so imports it, and in a controller (``python -m secretops_controller``) it
starts ``tracemalloc`` and a thread that, each time the traced memory reaches a new high (by
``SECRETOPS_MEMPROBE_STEP`` MiB, 8 by default, or 25 %), stops the event loop for a moment and
writes to ``<file>`` (overwritten: the last one is the peak's; ``<file>.log`` gets a line for
each):

* the traced bytes by the allocating line, and by the first frame in kopf or secretops (who
  asked for the memory: a JSON decode is charged to kopf's fetching or to our handler);
* what holds it: our informers' queues (bodies waiting, their peak, events read and dropped),
  kopf's per-object queues (the watch events waiting for their worker, by kind),
  kopf's schedulers (pending and running workers), and our own maps (the Context's and the
  external half's), each as the deep size of what it references.

Used by ``./scripts/bench --scale`` runs in docs/controller.md's Scale section (2,000–5,000 of
each). tracemalloc slows the controller and adds its own memory: read the traced figures, not
the RSS of such a run.
"""

from __future__ import annotations

import os
import sys

_OUT = os.environ.get("SECRETOPS_MEMPROBE")


def _deep(obj: object, seen: set[int]) -> int:
    """Bytes of ``obj`` and everything it references through containers (each object once)."""
    size = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        size += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif type(o).__module__.startswith("secretops_controller.") \
                and type(o).__name__ not in _SHARED:
            # records of ours (entries of a map), never the shared objects they point at
            if hasattr(o, "__dict__"):
                stack.append(vars(o))
            for s in getattr(type(o), "__slots__", ()):
                if hasattr(o, s):
                    stack.append(getattr(o, s))
    return size


# objects every record may point at: counted once elsewhere, not per entry
_SHARED = {"Context", "Kube", "KeyRing", "Metrics", "ExternalSecrets", "Config", "WorkerPool",
           "Health", "Ownership", "Stores", "Sync", "Scheduler", "SyncQueue", "RolloutQueue"}


def _analyse(out: str, started: float) -> None:
    import asyncio
    import collections
    import gc
    import time
    import tracemalloc

    mib = 1 << 20
    t0 = time.monotonic()
    lines = [f"t={time.monotonic() - started:.1f}s"]
    with open("/proc/self/status") as f:
        lines += [ln.strip() for ln in f if ln.startswith(("VmRSS", "VmHWM"))]
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        snap = tracemalloc.take_snapshot()
        lines.append(f"traced current {current / mib:.1f} MiB, peak {peak / mib:.1f} MiB")
        by_line = collections.Counter[str]()
        by_owner = collections.Counter[str]()
        owners: dict[object, tuple[str, str]] = {}
        # the raw traces (domain, size, frames most recent first, depth): Trace objects are slow
        for _, size, frames, _ in snap.traces._traces:  # type: ignore[attr-defined]
            names = owners.get(frames)
            if names is None:
                top = frames[0]
                line = f"{top[0].rsplit('site-packages/', 1)[-1]}:{top[1]}"
                owner = "other"
                for name, lineno in frames:
                    if "/kopf/" in name or "secretops" in name:
                        owner = f"{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}:{lineno}"
                        break
                names = owners[frames] = (line, owner)
            by_line[names[0]] += size
            by_owner[names[1]] += size
        del snap
        lines.append("\n== traced by allocating line (top 25)")
        lines += [f"{v / mib:8.2f} MiB  {k}" for k, v in by_line.most_common(25)]
        lines.append("\n== traced by first kopf/secretops frame (top 30)")
        lines += [f"{v / mib:8.2f} MiB  {k}" for k, v in by_owner.most_common(30)]

    objs = gc.get_objects()
    holders: list[tuple[str, float, str]] = []
    # kopf's per-object queues: the watch events waiting for a worker
    queued: collections.Counter[str] = collections.Counter()
    queued_n: collections.Counter[str] = collections.Counter()
    seen: set[int] = set()
    queues = [o for o in objs if isinstance(o, asyncio.Queue)]
    sampled: collections.Counter[str] = collections.Counter()
    for q in queues:
        for item in list(getattr(q, "_queue", ())):
            kind = "other"
            if isinstance(item, dict) and isinstance(item.get("object"), dict):
                kind = str(item["object"].get("kind"))
            elif type(item).__name__ == "SchedulerJob":
                kind = "SchedulerJob"
            queued_n[kind] += 1
            if queued_n[kind] % 25 == 1:  # a sample: the deep walk costs ~20 µs an object
                queued[kind] += _deep(item, seen)
                sampled[kind] += 1
    for kind, size in queued.most_common():
        each = size / sampled[kind]
        holders.append((f"queued items: {kind}", each * queued_n[kind] / mib,
                        f"{queued_n[kind]} items, ~{each:.0f} B each"))
    # every live object body (queued, in a handler, in a LIST response), by kind
    live_n: collections.Counter[str] = collections.Counter()
    live: collections.Counter[str] = collections.Counter()
    live_s: collections.Counter[str] = collections.Counter()
    live_seen: set[int] = set()
    for o in objs:
        if type(o) is dict and "metadata" in o and "apiVersion" in o:
            kind = str(o.get("kind"))
            live_n[kind] += 1
            if live_n[kind] % 25 == 1:
                live[kind] += _deep(o, live_seen)
                live_s[kind] += 1
    for kind, n in live_n.most_common():
        each = live[kind] / live_s[kind]
        holders.append((f"live bodies: {kind}", each * n / mib, f"{n} bodies, ~{each:.0f} B each"))
    holders.append(("asyncio.Queue objects", sum(sys.getsizeof(q) + sys.getsizeof(vars(q))
                    for q in queues) / mib, f"{len(queues)} queues"))
    for o in objs:  # our informers' queues: the bodies waiting, and the most that ever did
        if type(o).__name__ == "Informer" and type(o).__module__.endswith(".informer"):
            q = o.queue
            holders.append((f"informer {o.watch.plural}", _deep(q._pending, set()) / mib,
                            f"waiting {q.waiting} (peak {q.peak}, bound {q.bound}), running "
                            f"{len(q._running)}, handled {q.handled}, read {o.received}, "
                            f"dropped {o.dropped}"))
    for o in objs:
        if type(o).__name__ == "Scheduler" and type(o).__module__.startswith("kopf"):
            holders.append(("kopf scheduler", 0.0, f"pending {o._pending_coros.qsize()}, "
                            f"running {len(o._running_tasks)}"))
    coros = collections.Counter(getattr(o, "__qualname__", "?") for o in objs
                                if asyncio.iscoroutine(o))
    tasks = sum(1 for o in objs if isinstance(o, asyncio.Task))
    holders.append(("coroutines", 0.0, ", ".join(f"{k} {v}" for k, v in coros.most_common(8))))
    holders.append(("tasks", 0.0, str(tasks)))
    ours: set[int] = set()  # every map of ours together, each object once
    ours_size = 0
    for o in objs:
        cls = type(o)
        if cls.__module__ in ("secretops_controller.context",
                              "secretops_controller.external.reconcile",
                              "secretops_controller.metrics") \
                and cls.__name__ in ("Context", "ExternalSecrets", "Metrics"):
            members = [(f"{cls.__name__}.{a}", v) for a, v in vars(o).items()]
            while members:
                name, value = members.pop()
                if isinstance(value, (dict, list, set, tuple)):
                    size = _deep(value, set())
                    ours_size += _deep(value, ours)
                    if size > 64 * 1024:
                        holders.append((name, size / mib, f"len {len(value)}"))
                elif type(value).__module__.startswith("secretops_controller.") \
                        and hasattr(value, "__dict__") and name.count(".") < 3:
                    members += [(f"{name}.{a}", v) for a, v in vars(value).items()]
    del objs
    holders.append(("ours: all the maps above together", ours_size / mib, "each object once"))
    lines.append("\n== holders (deep sizes, MiB)")
    lines += [f"{size:8.2f}  {name}  ({note})" for name, size, note in holders]
    lines.append(f"analysis took {time.monotonic() - t0:.1f} s")
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)
    with open(out + ".log", "a") as f:  # the timeline: one line per new high
        big = " | ".join(f"{name} {size:.1f}" for name, size, _ in holders if size >= 1)
        f.write(" ".join(lines[:3]) + f" | {big}\n")


def _rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _probe(out: str) -> None:
    import asyncio
    import gc
    import threading
    import time
    import tracemalloc

    frames = int(os.environ.get("SECRETOPS_MEMPROBE_FRAMES", "10"))
    if frames:  # 0: no tracemalloc, the holders at each new high of the RSS
        tracemalloc.start(frames)
    step = float(os.environ.get("SECRETOPS_MEMPROBE_STEP", "8")) * (1 << 20)
    started = time.monotonic()

    def loop_of_controller() -> asyncio.AbstractEventLoop | None:
        for o in gc.get_objects():
            if isinstance(o, asyncio.BaseEventLoop) and o.is_running():
                return o
        return None

    def run() -> None:
        loop = None
        last = 0.0
        while True:
            time.sleep(0.5)
            if loop is None or loop.is_closed():
                loop = loop_of_controller()
                continue
            current = tracemalloc.get_traced_memory()[0] if frames else _rss()
            if current < max(last + step, last * (1.25 if frames else 1.0)):
                continue
            last = current
            done = threading.Event()

            def analyse(done: threading.Event = done) -> None:
                try:
                    _analyse(out, started)
                finally:
                    done.set()

            loop.call_soon_threadsafe(analyse)
            done.wait(120)

    threading.Thread(target=run, name="memprobe", daemon=True).start()


if _OUT and "secretops_controller" in getattr(sys, "orig_argv", []):
    _probe(_OUT)
