"""The command line: every job of this user, whichever kernel or process
runs it, read from the job ledger; and cancel or stop one from outside.

Examples
--------
::

    python -m notebook_ext jobs              # live jobs and the 50 most recent ended ones
    python -m notebook_ext jobs --all --json # every record, as JSON
    python -m notebook_ext jobs --watch      # redrawn every second until Ctrl-C
    python -m notebook_ext cancel fit        # a running job's name (or its id)
    python -m notebook_ext cancel fit --keep # stop and keep what it made so far
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import time
from typing import Any, Sequence, TextIO

from ..core import JobRecord
from ..core.lowlevel import Ledger, Refused, default_history_path, format_number, printable

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m notebook_ext",
                                     description="The jobs of every kernel and process of this user.")
    parser.add_argument("--history", metavar="PATH", help="the ledger file (default: $NOTEBOOK_EXT_HISTORY, "
                        "else ~/.local/share/notebook_ext/history.sqlite3)")
    sub = parser.add_subparsers(dest="command", required=True)
    jobs = sub.add_parser("jobs", help="list live and recent jobs")
    jobs.add_argument("--json", action="store_true", help="print JSON (one document per refresh)")
    jobs.add_argument("--all", action="store_true", help="every ended job too, not only the 50 most recent")
    jobs.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    jobs.add_argument("--interval", type=_positive, default=1.0, metavar="SECONDS",
                      help="seconds between refreshes with --watch (default 1)")
    jobs.add_argument("--count", type=_count, default=None, metavar="N", help="with --watch: stop after N refreshes")
    cancel = sub.add_parser("cancel", help="cancel a job another process runs")
    cancel.add_argument("job", metavar="NAME_OR_ID", help="a running job's name, or its id (see `jobs`)")
    cancel.add_argument("--keep", action="store_true", help="stop and keep what it made so far (a training "
                        "job keeps its model, preprocessing its finished items)")
    cancel.add_argument("--reason", help="why (shown on the job's card)")
    cancel.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                        help="seconds to wait for the job to end (default 5; 0: do not wait)")
    return parser


def _bounded(kind: type, what: str, least: float, strict: bool) -> Any:
    """An argparse type: ``text`` as a ``kind`` of at least (``strict``: more than) ``least``."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < least or (strict and value == least):
            raise argparse.ArgumentTypeError(f"must be {'more than' if strict else 'at least'} {least:g}, "
                                             f"got {text!r}")
        return value
    return parse


_count = _bounded(int, "a whole number", 1, strict=False)
_positive = _bounded(float, "a number of seconds", 0, strict=True)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 refused, 3 a
    cancel not confirmed in time)."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    path = args.history or default_history_path()
    if path is None:
        print("notebook_ext: the job history is off (NOTEBOOK_EXT_HISTORY=off): no ledger to read", file=sys.stderr)
        return 1
    ledger = Ledger(path)
    try:
        if args.command == "jobs":
            return _jobs(ledger, args, out)
        return _cancel(ledger, args, out)
    except (Refused, sqlite3.Error) as exc:
        print(f"notebook_ext: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C ends `--watch`; it leaves a cancel unconfirmed
        return 0 if args.command == "jobs" else 130
    except BrokenPipeError:
        # the reader went away (`jobs --watch | head -3`): stop quietly, and
        # keep Python from failing again when it flushes stdout at exit
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0


def _jobs(ledger: Ledger, args: argparse.Namespace, out: TextIO) -> int:
    refreshes = 0
    while True:
        records = ledger.jobs(ended=None if args.all else 50) if ledger.exists else []
        if args.json:
            text = json.dumps([as_json(r) for r in records], default=str, indent=None if args.watch else 1)
        else:
            text = table(records, time.time())
        if args.watch and not args.json and out.isatty():
            out.write("\x1b[H\x1b[2J")
        out.write(text + "\n")
        out.flush()
        refreshes += 1
        if not args.watch or (args.count is not None and refreshes >= args.count):
            return 0
        if not args.json and not out.isatty():
            out.write("\n")
        time.sleep(args.interval)


def _cancel(ledger: Ledger, args: argparse.Namespace, out: TextIO) -> int:
    action = "stop" if args.keep else "cancel"
    record = ledger.request(args.job, action, args.reason,
                            sender=f"`python -m notebook_ext cancel` (pid {os.getpid()})")
    what = "stop and keep" if args.keep else "cancel"
    print(f"asked {_line(record.owner)} to {what} {record.name!r} ({record.uid})", file=out, flush=True)
    deadline = time.monotonic() + max(args.wait, 0)
    while time.monotonic() < deadline:
        now = ledger.resolve(record.uid)
        if not now.live:
            print(f"{record.name!r} is {now.state}" + (f": {_line(now.error)}" if now.error else ""), file=out)
            return 0
        time.sleep(0.1)
    if args.wait > 0:
        print(f"{record.name!r} still runs after {args.wait:g} s: a thread job stops at its next progress(), "
              f"report() or checkpoint(); `jobs` shows when it ends", file=out)
        return 3
    return 0


def as_json(r: JobRecord) -> dict[str, Any]:
    """One record as the JSON of ``jobs --json`` (`JobRecord.as_json`)."""
    return r.as_json()


def table(records: list[JobRecord], now: float) -> str:
    """The records as the text table of ``jobs``."""
    if not records:
        return "no jobs in the ledger"
    rows = [("ID", "NAME", "STATE", "PROGRESS", "ETA", "WHERE", "WHEN")]
    for r in records:
        if r.done is None or (not r.done and r.total is None):  # no progress reported
            progress = ""
        else:
            progress = f"{format_number(r.done)}/{format_number(r.total)}" if r.total else format_number(r.done)
        if r.done is not None and r.total:
            progress += f" ({100 * r.done / r.total:.0f}%)"
        eta = f"{r.eta:.0f}s" if r.live and r.eta is not None else ""
        owner = r.owner
        where = "" if owner is None else (owner.notebook or (f"kernel {owner.kernel[:8]}" if owner.kernel
                                                             else f"pid {owner.pid}"))
        when = r.ended if r.ended is not None else r.started or r.created
        state = r.state + (f": {r.error}" if r.error and not r.live else "")
        rows.append((r.uid, _line(r.name), _line(state)[:60], progress, eta, _line(where)[:40], _ago(now, when)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _line(text: object) -> str:
    """Text another process wrote (an error, a name, a path) as one line a
    table row or a terminal may show: control characters escaped
    (``\\x1b``), newlines and tabs as spaces."""
    return printable(str(text)).replace("\n", " ").replace("\t", " ")


def _ago(now: float, t: float | None) -> str:
    if t is None:
        return ""
    seconds = max(now - t, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"
