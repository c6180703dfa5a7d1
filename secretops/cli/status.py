"""``secretops status``: what every file a creation rule covers needs, without a key.

The records come from :mod:`secretops.bulk.inventory` (one per file, in worker processes);
this module prints them as a table (people) or one JSON document (``--json``, CI) and picks
the exit code: 0 nothing to do, 181 (``ACTION_NEEDED``) something needs action, else the
failures' code as for every many-file command (180, or the files' own code when all failed
the same way). The schema and the codes are in ``docs/usage.md`` ("status").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from secretops.cli._bulk import many_options
from secretops.cli._common import FORMAT_CHOICE


@click.command("status")
@click.argument("paths", nargs=-1, metavar="[PATHS]...")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document on standard output (the schema: docs/usage.md).")
@click.option("--older-than", metavar="DURATION",
              help="Also flag files whose data key is at least this old (90d, 12w, 1y) for "
                   "rotation, as rotate --older-than would rotate them.")
@click.option("--input-type", type=FORMAT_CHOICE, help="Format (default: from each file name).")
@click.option("--config", "config_path", metavar="PATH", envvar="SOPS_CONFIG",
              help="The .sops.yaml to use (default: searched upwards from each file).")
@many_options
def command(paths: tuple[str, ...], as_json: bool, older_than: str | None,
            input_type: str | None, config_path: str | None, files_from: str | None,
            null: bool, jobs: int | None) -> None:
    """Report on every file a creation rule covers, without any key.

    For each file: encrypted or not; its key groups against what its rule says now (stale:
    updatekeys would change them); keys no creation rule lists any more (someone who left);
    whether it has a MAC; how old its data key is, from git history. No private key is read
    and nothing is decrypted: it runs in CI with no credentials.

    PATHS are files and directories (default: the current directory; what git ignores is
    skipped), and --files-from names more. Exit 0: nothing to do; 181: some file needs
    action (updatekeys, encrypt, rotate with --older-than, a missing MAC); 180 or another
    code: some files could not be read (each is named on stderr).

    \b
      secretops status
      secretops status --json secrets/ > status.json
      secretops status --older-than 90d
    """
    import os
    import time

    from secretops.bulk.inventory import InventoryJob
    from secretops.cli._actions import report
    from secretops.cli._bulk import collect, gather
    from secretops.errors import SecretOpsError

    try:
        max_age = None
        if older_than is not None:
            from secretops.keyage import parse_duration

            max_age = parse_duration(older_than)
        items = collect(paths or ((".",) if files_from is None else ()), files_from,
                        null).items
    except SecretOpsError as e:
        sys.exit(report(e))
    job = InventoryJob(os.environ, input_type=input_type, config_path=config_path,
                       max_age=max_age, now=time.time())
    outcomes, tally = gather(job, items, jobs=jobs, label="status")
    sys.exit(_finish(outcomes, tally, as_json))


def _finish(outcomes: Sequence[Any], tally: Any, as_json: bool) -> int:
    from secretops.bulk.inventory import needs_action, parse
    from secretops.cli._bulk import exit_code, report_failures
    from secretops.errors import ExitCode

    rows: list[dict[str, Any]] = [
        parse(o.lines[0]) if o.failure is None else
        {"file": o.file, "state": "error", "code": o.failure.code, "message": o.failure.message}
        for o in outcomes if o.failure is not None or o.lines]
    records = [r for r in rows if r["state"] != "error"]
    errors = [{k: r[k] for k in ("file", "code", "message")} for r in rows
              if r["state"] == "error"]
    code = exit_code(tally)
    if not code and any(needs_action(r) for r in records):
        code = int(ExitCode.ACTION_NEEDED)
    if as_json:
        click.echo(_json(records, errors, code))
    else:
        _table(rows, records, errors)
    report_failures(tally.failures, tally.applied)
    return code


def _unlisted(records: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in records:
        for key in r.get("unlisted", ()):
            out.setdefault(key, []).append(r["file"])
    return out


def _summary(records: Sequence[dict[str, Any]], errors: Sequence[Any]) -> dict[str, int]:
    from secretops.bulk.inventory import STATES, needs_action

    counts = {state: sum(1 for r in records if r["state"] == state) for state in STATES}
    return {"files": len(records) + len(errors), **counts, "error": len(errors),
            "needs_action": sum(1 for r in records if needs_action(r)) + len(errors)}


def _json(records: Sequence[dict[str, Any]], errors: Sequence[Any], code: int) -> str:
    import json

    from secretops.bulk.inventory import SCHEMA_VERSION

    doc = {"version": SCHEMA_VERSION, "files": list(records), "errors": list(errors),
           "unlisted_keys": _unlisted(records), "summary": _summary(records, errors),
           "exit_code": code}
    return json.dumps(doc, indent=2)


def _age(record: dict[str, Any]) -> str:
    age = record.get("data_key")
    if not age:
        return "-"
    if age["days"] is None:
        return "unknown"
    return f"{age['days']}d"


def _table(all_rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]],
           errors: Sequence[Any]) -> None:
    rows = [("FILE", "STATE", "MAC", "DATA KEY", "NEEDS")]
    for r in all_rows:  # in the order of the files
        if r["state"] == "error":
            rows.append((r["file"], "error", "-", "-", f"fix (exit {r['code']})"))
            continue
        mac = "-" if r["state"] == "plaintext" else ("yes" if r["mac"] else "NO")
        rows.append((r["file"], r["state"], mac, _age(r), ", ".join(r["actions"]) or "-"))
    if len(rows) == 1:
        click.echo("no file a creation rule covers")
        return
    widths = [max(len(row[n]) for row in rows) for n in range(4)]
    for row in rows:
        click.echo("".join(cell.ljust(w + 2) for cell, w in zip(row, widths, strict=False))
                   + row[4])
    unlisted = _unlisted(records)
    for r in records:
        if r["state"] != "stale":
            continue
        click.echo(f"\n{r['file']}: updatekeys would change:")
        for line in r["changes"]:
            tail = ""
            text = line.strip()
            if text.startswith("- ") and text[2:] in unlisted:
                tail = "  (no rule lists it)"
            click.echo(f"  {line}{tail}")
    if unlisted:
        click.echo("\nkeys no creation rule lists any more:")
        for key, files in unlisted.items():
            click.echo(f"  {key}: in {len(files)} file{'' if len(files) == 1 else 's'}")
    s = _summary(records, errors)
    parts = [f"{s[k]} {k}" for k in ("current", "stale", "plaintext", "error") if s[k]]
    click.echo(f"\n{s['files']} file{'' if s['files'] == 1 else 's'}: {', '.join(parts)}; "
               f"{s['needs_action']} need{'s' if s['needs_action'] == 1 else ''} action")
