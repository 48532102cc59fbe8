"""9. Soak: many jobs and many cards, to find what leaks or floods.

Part 1, 20,000 mixed jobs in-process on ``Scheduler(slots=2)`` with the
history on (a temporary file): loop and thread jobs, a few process jobs,
2% raising, 1% cancelled while running, 1% cancelled right after submit.
Every job must end in its expected state, the history must hold one row per
job, and threads, file descriptors and child processes must go back to where
they were once the scheduler is shut down; memory kept per job is the RSS
growth divided by the job count.

Part 2, 5,000 ``%%bg`` cards made by one cell of a real kernel: every IOPub
message of that cell and of the cell waiting for the jobs, with its arrival
time here, so the peak and mean message rates the frontend (and the Jupyter
server, which drops IOPub traffic past 1,000 messages a second) would see.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

import notebook_ext as nx
from notebook_ext.core import checkpoint

from ._kernel import Kernel, peak_per_second
from ._table import Row

_NEVER = threading.Event()  # never set: blocking jobs wait on it until cancelled


# -- the jobs --------------------------------------------------------------------
async def _loop_ok() -> None:
    return None


def _thread_ok() -> None:
    return None


def _process_ok(i: int) -> int:
    return i * 2


async def _loop_fail() -> None:
    raise ValueError("soak: this job fails on purpose")


def _thread_fail() -> None:
    raise ValueError("soak: this job fails on purpose")


async def _loop_block() -> None:
    await asyncio.Event().wait()  # until the task is cancelled


def _thread_block() -> None:
    while True:  # until cancel: checkpoint() raises JobCancelled
        checkpoint()
        _NEVER.wait(0.002)


# -- part 1: mixed jobs ------------------------------------------------------------
def _mix(batch: int) -> dict[str, int]:
    """Jobs of each kind in one batch: 1% process, 2% raise, 1% cancelled
    running, 1% cancelled at once, the rest no-ops split loop/thread."""
    p = batch // 100
    counts = {"cancel_running": p, "cancel_now": p, "fail": 2 * p, "process": p}
    ok = batch - sum(counts.values())
    return {**counts, "loop_ok": ok // 2, "thread_ok": ok - ok // 2}


def _expected(counts: dict[str, int], batches: int) -> dict[str, int]:
    return {"done": (counts["loop_ok"] + counts["thread_ok"] + counts["process"]) * batches,
            "failed": counts["fail"] * batches,
            "cancelled": (counts["cancel_running"] + counts["cancel_now"]) * batches}


def _halves(n: int) -> tuple[int, int]:
    return n // 2, n - n // 2


def _submit_batch(s: nx.Scheduler, counts: dict[str, int], first: int) -> tuple[list, list]:
    """Submit one batch; returns (all its jobs, the jobs to cancel once running).
    The blocking jobs go first, at a higher priority, so they start soon."""
    lb, tb = _halves(counts["cancel_running"])
    blockers = (s.submit_many(_loop_block, [()] * lb, priority=1)
                + s.submit_many(_thread_block, [()] * tb, priority=1))
    lf, tf = _halves(counts["fail"])
    jobs = list(blockers)
    jobs += s.submit_many(_loop_ok, [()] * counts["loop_ok"])
    jobs += s.submit_many(_thread_ok, [()] * counts["thread_ok"])
    ln, tn = _halves(counts["cancel_now"])
    for fn in [_loop_block] * ln + [_thread_block] * tn:
        job = s.submit(fn)
        s.cancel(job, "soak: cancelled right after submit")
        jobs.append(job)
    jobs += s.submit_many(_loop_fail, [()] * lf)
    jobs += s.submit_many(_thread_fail, [()] * tf)
    jobs += s.submit_many(_process_ok, [(first + i,) for i in range(counts["process"])], executor="process")
    return jobs, blockers


def _cancel_when_running(blockers: list, timeout: float = 120) -> int:
    """Cancel each job as soon as it is running; returns how many were
    running when cancelled (past ``timeout`` the rest are cancelled anyway)."""
    left, running = list(blockers), 0
    deadline = time.monotonic() + timeout
    while left:
        late = time.monotonic() > deadline
        for job in list(left):
            if job.state == "running" or late:
                running += job.state == "running"
                job.cancel("soak: cancelled while running")
                left.remove(job)
        time.sleep(0.001)
    return running


def _resources() -> dict[str, int]:
    return {"threads": len(os.listdir("/proc/self/task")), "fds": len(os.listdir("/proc/self/fd")),
            "children": len(psutil.Process().children(recursive=True))}


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def _warm(tmp: str) -> None:
    """One small untimed run first: what multiprocessing starts once per
    interpreter (forkserver, resource tracker, shared-memory arena) and lazy
    imports are then part of the baseline, not counted as left over."""
    s = nx.Scheduler(slots=2, history=Path(tmp) / "warm.sqlite3")
    jobs, blockers = _submit_batch(s, _mix(100), 0)
    _cancel_when_running(blockers)
    s.wait(*jobs, timeout=60)
    s.shutdown()
    time.sleep(2)  # its exiting threads are gone (as for the "2 s after" numbers)


def _soak(s: nx.Scheduler, counts: dict[str, int], batches: int) -> tuple[list, int, int]:
    """All batches, each submitted once the previous one's blocking jobs are
    cancelled; returns (jobs, blocking jobs, how many were running when cancelled)."""
    jobs: list = []
    running = blockers_total = 0
    for b in range(batches):
        batch_jobs, blockers = _submit_batch(s, counts, b * sum(counts.values()))
        jobs += batch_jobs
        running += _cancel_when_running(blockers)
        blockers_total += len(blockers)
    s.wait(*jobs, timeout=600)
    return jobs, blockers_total, running


def _history(s: nx.Scheduler, jobs: list) -> tuple[int, int]:
    """(rows of this session on disk, rows holding their job's final state)."""
    s.store.flush(timeout=120)
    rows = s.store.load(sessions="current", limit=100_000)
    final = {j.id: j.state for j in jobs}
    return len(rows), sum(1 for r in rows if final.get(r.job_id) == r.state)


def _mixed(n: int, batch: int) -> dict:
    counts, batches = _mix(batch), n // batch
    m: dict = {"n": batches * batch, "batch": batch, "expected": _expected(counts, batches),
               "process": counts["process"] * batches, "cold": _resources()}
    with tempfile.TemporaryDirectory() as tmp:
        _warm(tmp)
        m["before"], rss0 = _resources(), _rss()
        s = nx.Scheduler(slots=2, history=Path(tmp) / "history.sqlite3")
        t0 = time.perf_counter()
        jobs, m["blockers"], m["cancelled_running"] = _soak(s, counts, batches)
        m["wall"] = time.perf_counter() - t0
        m["states"] = Counter(j.state for j in jobs)
        m["busy"], rss1 = _resources(), _rss()
        m["rows"], m["rows_final"] = _history(s, jobs)
        s.shutdown()
        m["after"] = _resources()
        time.sleep(2)
        m["settled"] = _resources()
        del s, jobs
        rss2 = _rss()
    m["rss_kept"], m["rss_left"] = ((r - rss0) / m["n"] / 1024 for r in (rss1, rss2))
    return m


# -- part 2: cards from one cell ------------------------------------------------------
SETUP = """\
%load_ext notebook_ext
import notebook_ext
from notebook_ext.magics._args import has_widget_frontend
assert has_widget_frontend(get_ipython()), "no widget frontend in this kernel: %%bg would make no cards"
"""
WARM = 'get_ipython().run_cell_magic("bg", "-n warm", "x = 1"); notebook_ext.wait()'
MAKE = """\
for i in range({n}):
    get_ipython().run_cell_magic("bg", f"-n soak{{i}}", "x = 1")
"""
WAIT = "notebook_ext.wait();"


class _Arrivals(list):
    """A ``record=`` list for `Kernel` that also keeps the arrival time
    here: (time.monotonic() on arrival, kernel send time, msg_type)."""

    def append(self, item: tuple) -> None:
        super().append((time.monotonic(), *item))


def _cards(n: int) -> dict:
    with Kernel() as k:
        k.run(SETUP)
        k.run(WARM)  # untimed: imports ipywidgets, starts the pump (a card of its own cell)
        k.drain(quiet=1.0)
        record = _Arrivals()
        t0 = time.monotonic()
        k.run(MAKE.format(n=n), timeout=900, record=record)
        made = time.monotonic() - t0
        k.run(WAIT, timeout=900, record=record)
        waited = time.monotonic() - t0 - made
        k.drain(quiet=1.0, limit=120, record=record)  # final states sent after the wait returned
    arrived = [a for a, _, _ in record]
    kinds = Counter(kind for _, _, kind in record)
    span = max(arrived) - min(arrived)
    return {"n": n, "total": len(record), "kinds": kinds, "peak": peak_per_second(arrived),
            "peak_sent": peak_per_second([s for _, s, _ in record]), "mean": len(record) / span if span else 0.0,
            "span": span, "made": made, "waited": waited}


# -- the table -------------------------------------------------------------------------
def _state_row(m: dict) -> Row:
    states, expected = m["states"], m["expected"]
    final = sum(states[s] for s in ("done", "failed", "cancelled", "timed_out"))
    mismatch = {s: (states[s], expected.get(s, 0)) for s in set(states) | set(expected)
                if states[s] != expected.get(s, 0)}
    exact = "exact" if not mismatch else "MISMATCH " + ", ".join(
        f"{s} {got:,} (expected {want:,})" for s, (got, want) in sorted(mismatch.items()))
    spread = " / ".join(f"{s} {states[s]:,}" for s in ("done", "failed", "cancelled")) + f": {exact}"
    return Row("soak", f"{m['n']:,} mixed jobs: jobs in a final state", final, m["n"], "jobs submitted", "jobs",
               spread, "all final, exact counts", "yes" if final == m["n"] and not mismatch else "NO",
               note=f"expected done {expected['done']:,} / failed {expected['failed']:,} / cancelled "
                    f"{expected['cancelled']:,}; of the {m['blockers']:,} jobs cancelled once running (half loop "
                    f"jobs awaiting an asyncio.Event, half thread jobs looping on checkpoint()), "
                    f"{m['cancelled_running']:,} were running when cancelled")


def _resource_rows(m: dict) -> list[Row]:
    names = {"threads": "OS threads (/proc/self/task)", "fds": "open fds (/proc/self/fd)",
             "children": "child processes (psutil, recursive)"}
    rows = []
    for key, name in names.items():
        before, after, settled = m["before"][key], m["after"][key], m["settled"][key]
        met = "yes" if after <= before else ("within 2 s" if settled <= before else "NO")
        rows.append(Row("soak", f"{m['n']:,} mixed jobs: {name} right after shutdown()", after, before,
                        "before the scheduler", "", f"{m['busy'][key]} before shutdown(), {settled} 2 s after it; "
                        f"{m['cold'][key]} cold", "back to before", met))
    rows[0].note = ("'before' is after one small untimed scheduler run (100 jobs of the same mix, shut down): "
                    "multiprocessing's forkserver and resource tracker (2 children) and its shared-memory arena "
                    "stay for the interpreter's life, so the cold numbers (before anything) are lower")
    return rows


def _mixed_rows(m: dict) -> list[Row]:
    n = m["n"]
    return [
        Row("soak", f"{n:,} mixed jobs on Scheduler(slots=2), history on: submit to all final", m["wall"], None, "",
            "s", note=f"batches of {m['batch']:,} (`submit_many` per kind and options, `submit` + `cancel` for "
                      f"the jobs cancelled at once); per batch 1% process jobs ({m['process']:,} in all, not scaled "
                      "down: a slot's worker is reused), 2% raising (loop/thread), 1% cancelled while running, 1% "
                      "cancelled right after submit, the rest no-op loop and thread jobs split evenly (one thread "
                      "per thread job)"),
        _state_row(m),
        *_resource_rows(m),
        Row("soak", f"{n:,} mixed jobs: RSS growth per job, scheduler alive", m["rss_kept"], None, "", "KiB/job",
            f"{m['rss_left']:.3g} KiB/job after shutdown() and dropping the jobs",
            note="psutil RSS after gc.collect(), before the scheduler vs once every job is final (the "
                 "scheduler keeps every finished job's record for %jobs and retry); RSS also holds freed "
                 "memory the allocator keeps, so this is an upper bound"),
        Row("soak", f"{n:,} mixed jobs: history rows on disk (this session)", m["rows"], n, "jobs submitted", "rows",
            f"{m['rows_final']:,} rows with the job's final state", "one row per job",
            "yes" if m["rows"] == n == m["rows_final"] else "NO",
            note="`store.flush(); len(store.load(sessions='current', limit=100000))`, before shutdown()"),
    ]


def _card_rows(c: dict) -> list[Row]:
    n, kinds = c["n"], c["kinds"]
    main = ("comm_open", "display_data", "comm_msg")
    other = {k: v for k, v in kinds.items() if k not in main}
    by_kind = " / ".join(f"{k} {kinds[k]:,}" for k in main) + f" / other {sum(other.values()):,}"
    case = f"{n:,} `%%bg` cards from one cell"
    return [
        Row("soak", f"{case}: peak IOPub messages/s, any 1 s window", c["peak"], 1000, "Jupyter server IOPub limit",
            "msg/s", f"{c['peak_sent']:,} by kernel send time", "<= 500 msg/s", "yes" if c["peak"] <= 500 else "NO",
            note="target <= 500 msg/s. A real kernel (ipykernel loaded, so `has_widget_frontend` is true and "
                 f"cards are made): one cell runs `run_cell_magic('bg', f'-n soak{{i}}', 'x = 1')` {n:,} times, "
                 "a second cell `notebook_ext.wait()`s for them, then IOPub is read until quiet for 1 s; every "
                 "message of both cells, by arrival time here. One untimed `%%bg` cell first (imports, pump)"),
        Row("soak", f"{case}: mean IOPub messages/s", c["mean"], 1000, "Jupyter server IOPub limit", "msg/s",
            f"{c['total']:,} messages over {c['span']:.1f} s",
            note=f"the making cell took {c['made']:.1f} s, the waiting cell {c['waited']:.1f} s"),
        Row("soak", f"{case}: IOPub messages in all", c["total"], n, "cards asked for", "msgs", by_kind,
            note="other: " + ", ".join(f"{k} {v:,}" for k, v in sorted(other.items()))),
    ]


def run(quick: bool) -> list[Row]:
    mixed = _mixed(500 if quick else 20_000, 500 if quick else 1000)
    print(f"#   mixed jobs: {mixed['wall']:.1f} s, {dict(mixed['states'])}", file=sys.stderr, flush=True)
    cards = _cards(200 if quick else 5000)
    return _mixed_rows(mixed) + _card_rows(cards)
