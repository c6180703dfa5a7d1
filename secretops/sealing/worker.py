"""A worker process of :mod:`secretops.sealing.workers`: ``python -m secretops.sealing.worker
ROLE MEMORY TIMEOUT``.

It imports what its role needs, limits itself (no core dumps, no file writes, its address space
``MEMORY`` bytes past its start-up size, CPU time per job), says ``ready``, then answers one JSON
request per line on stdin with one JSON reply per line on stdout until stdin closes. Nothing it
prints can reach its caller's log: stderr is /dev/null, and a reply carries fixed categories and
:class:`~secretops.errors.SecretOpsError` texts only (which never hold a value), never an
exception's own text.

Roles:

* ``render`` — ``{"templates": {key: text}, "values": {key: base64}, "max_output": n}`` →
  ``{"ok": {key: base64}}`` or ``{"fail": category, "key": key, "line": n}`` (see
  :func:`secretops.sealing.template.render_here`). Never holds a key.
* ``sealed`` — ``{"op": "verify" | "reseal", "body": base64, "identities": [AGE-SECRET-KEY…],
  "recipients": [age1…], "format": "yaml" | "json"}`` →
  ``{"ok": {"values": n}}`` or ``{"ok": {"body": base64}}``, or ``{"error": {"code",
  "message", "path"}}``: the controller's ``/v1/verify`` and ``/v1/rotate`` on a request
  body, parsed here and not in the controller.
"""

from __future__ import annotations

import base64
import json
import math
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _render(job: dict[str, Any]) -> dict[str, Any]:
    from secretops.sealing.template import render_here

    values = {k: base64.b64decode(v) for k, v in job["values"].items()}
    return render_here(job["templates"], values, int(job["max_output"]))


def _sealed(job: dict[str, Any]) -> dict[str, Any]:
    from secretops.errors import SecretOpsError
    from secretops.sealing import reseal_sealed, verify_sealed
    from secretops.sealing.keyring import identities_from_age_text
    from secretops.sealing.serialize import dump, load_documents

    try:
        ids = identities_from_age_text("\n".join(job["identities"]) + "\n", "key ring")
        docs = load_documents(base64.b64decode(job["body"]), "request body")
        if len(docs) != 1:
            raise SecretOpsError("send exactly one SealedSecret")
        if job["op"] == "verify":
            # templates are parsed, not rendered: see verify_sealed
            return {"ok": {"values": verify_sealed(docs[0], ids, render=False)}}
        # only the recipients the caller chose: never those the body lists (spec.recipients is
        # not authenticated, so a listed recipient could be anyone's key); never binds: a value
        # keeps the template binding it has, and one sealed before templates were bound stays
        # unbound
        out = reseal_sealed(docs[0], ids, list(job["recipients"]), keep_unbound=True)
        body = dump(out, "json" if job.get("format") == "json" else "yaml")
        return {"ok": {"body": base64.b64encode(body).decode("ascii")}}
    except SecretOpsError as e:
        return {"error": {"code": int(e.code), "message": e.message, "path": e.path}}


ROLES: dict[str, Handler] = {"render": _render, "sealed": _sealed}


def _preload(role: str) -> None:
    """Import before the memory limit is set, so the limit is headroom for the job alone."""
    if role == "render":
        from secretops.sealing.template import sandbox

        sandbox()
    else:
        import secretops.sealing
        import secretops.sealing.serialize  # noqa: F401


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limit(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a core dump would hold values
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    try:
        size = _address_space()
    except OSError:  # no /proc: not Linux; the caller's deadline still bounds the job
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = size + memory
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def _cpu_budget(timeout: float) -> None:
    """The CPU time this job may use, counted from now (the limit is per process: raise the
    soft limit each job; SIGXCPU kills the worker, which its caller sees as a failure)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(use.ru_utime + use.ru_stime + timeout) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def main(argv: list[str]) -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # a traceback could quote a value: nothing of ours reaches the log
    role, memory, timeout = argv[0], int(argv[1]), float(argv[2])
    handler = ROLES[role]
    _preload(role)
    _limit(memory)
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        retire = False
        try:
            _cpu_budget(timeout)
            reply = handler(json.loads(line))
        except MemoryError:
            reply, retire = {"fail": "resources"}, True
        except Exception:  # its text could hold anything: the category only
            reply = {"fail": "internal"}
        if retire:
            reply["retire"] = True
        try:
            out.write(json.dumps(reply).encode("ascii") + b"\n")
            out.flush()
        except MemoryError:
            return 1  # the caller sees the pipe close: a failed job
        if retire:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
