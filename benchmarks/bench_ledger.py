"""The job ledger (the shared SQLite history): what it costs a job's tight
loop, how fast a big ledger is listed, and how often it is written.

1. µs per `progress()` item and per `report()` call inside a thread job, on
   a scheduler with a history file vs one with the history off.
2. Listing a ledger of 100,000 records: `Ledger.jobs()` (what the CLI and a
   jobs panel show), ``python -m notebook_ext jobs`` as a subprocess, and
   `HistoryStore.load` decoding every record.
3. Live snapshot writes per running job per second, and SQLite write
   transactions per second, while 4 jobs spin in `progress()`.
"""

from __future__ import annotations

import gc
import json
import random
import socket
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import notebook_ext as nx
from notebook_ext.core._ledger import INSERT_JOB, JOB_COLUMNS, Ledger, connect
from notebook_ext.core._store import HistoryStore

from ._table import Row, median_spread

progress = nx.progress
report = nx.report


# -- 1. cost per call, ledger on vs off -----------------------------------------
def _progress_job(n: int) -> float:
    """µs per item of a `progress()` loop, timed inside the job."""
    t0 = time.perf_counter()
    for _ in progress(range(n)):
        pass
    return (time.perf_counter() - t0) / n * 1e6


def _report_job(n: int) -> float:
    """µs per `report(done, loss=...)` call, timed inside the job. (`report`
    has no ``step`` argument: ``done`` is the step of each metric point.)"""
    t0 = time.perf_counter()
    for i in range(n):
        report(i, loss=1.0 / (i + 1))
    return (time.perf_counter() - t0) / n * 1e6


def _one(s: nx.Scheduler, fn, n: int) -> float:
    job = s.submit(fn, n)
    us = job.result(600)
    s.store.flush()  # the ledger has written this job's end (no-op with the history off)
    job.ctx.metrics.clear()  # a finished job keeps its series; free the N points between reps
    return us


def _per_call(path: Path, n_progress: int, n_report: int, reps: int) -> dict[str, dict[str, list[float]]]:
    on = nx.Scheduler(slots=1, history=path)
    off = nx.Scheduler(slots=1, history=None)
    fns = {"progress": (_progress_job, n_progress), "report": (_report_job, n_report)}
    out = {key: {"on": [], "off": []} for key in fns}
    try:
        for fn, n in fns.values():  # warm-up, untimed: both sides, both loops
            _one(on, fn, n)
            _one(off, fn, n)
        for rep in range(reps):  # interleaved; the side that goes first alternates
            order = (("on", on), ("off", off)) if rep % 2 == 0 else (("off", off), ("on", on))
            for key, (fn, n) in fns.items():
                for side, s in order:
                    gc.collect()
                    out[key][side].append(_one(s, fn, n))
        writes = on.store.live_writes
    finally:
        on.shutdown()
        off.shutdown()
    print(f"#   ledger on: {writes} live snapshot writes", file=sys.stderr, flush=True)
    return out


def _ratio_row(case: str, on: list[float], off: list[float], n: int, note: str) -> Row:
    o, spread = median_spread(on)
    a, aspread = median_spread(off)
    met = "yes" if o <= 1.10 * a else "NO"
    ratios = sorted(x / y for x, y in zip(on, off))
    return Row("ledger", case, o, a, "history off", "µs/call", spread, "<= 1.10x", met,
               note=f"{note}; N={n:,} per job; history off: {aspread}; paired on/off ratios "
                    f"{ratios[0]:.2f}–{ratios[-1]:.2f}x")


# -- 2. listing a big ledger ----------------------------------------------------
_MODELS = ("'resnet18'", "'resnet50'", "'vit_b16'", "'gbm'", "'logreg'")
_TRACEBACK = ("Traceback (most recent call last):\n  File \"<cell 12>\", line 8, in fit\n    "
              "loss = step(model, batch)\n  File \"<cell 9>\", line 31, in step\n    out = model(x)\n"
              "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total "
              "capacity; 12.10 GiB already allocated)\n")
_CODE = ("def fit(lr, batch_size, epochs):\n    model = make_model()\n    for epoch in progress(range(epochs)):\n"
         "        loss = train_one_epoch(model, lr, batch_size)\n        report(epoch + 1, epochs, loss=loss)\n"
         "    return model\n")


def _build(path: Path, n: int, seed: int = 0) -> dict[str, int]:
    """A ledger of ``n`` job records in 100 ended sessions: ~5% ``running``
    (their owner ended: they read ``interrupted``), the rest done or failed."""
    rng = random.Random(seed)
    con = connect(str(path))  # makes the schema
    host = socket.gethostname()
    t_start = time.time() - 365 * 86400
    span = 365 * 86400 - 3600
    n_sessions = 100
    sessions = []
    for k in range(n_sessions):
        started = t_start + span * k / n_sessions
        sessions.append((f"{k:04x}{rng.getrandbits(32):08x}", 10_000 + k, host, started,
                         started + span / n_sessions, str(rng.randrange(10 ** 6)), f"{rng.getrandbits(128):032x}",
                         f"work/project-{k % 7}/train.ipynb", started + span / n_sessions + 10))
    jobs, live = [], []
    counts = {"running": 0, "done": 0, "failed": 0}
    for i in range(n):
        sid = sessions[i * n_sessions // n][0]
        created = t_start + span * i / n
        started = created + rng.random()
        roll = rng.random()
        state = "running" if roll < 0.05 else "failed" if roll < 0.15 else "done"
        counts[state] += 1
        ended = None if state == "running" else started + rng.expovariate(1 / 120)
        params = {"lr": repr(round(10 ** rng.uniform(-5, -1), 6)), "batch_size": repr(rng.choice((32, 64, 128))),
                  "epochs": repr(rng.randrange(5, 100)), "model": rng.choice(_MODELS),
                  "seed": repr(rng.randrange(1000))}
        metrics = {"loss": rng.random(), "val_loss": rng.random(), "accuracy": rng.random()}
        uid = f"{sid}:{i + 1}"
        jobs.append((uid, sid, i + 1, f"fit-{i % 5000}", "train", "thread", 0, json.dumps(params), _CODE, state,
                     1, created, started, ended,
                     "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" if state == "failed" else None,
                     _TRACEBACK if state == "failed" else None, json.dumps(metrics),
                     json.dumps([f"/home/user/runs/{uid.replace(':', '-')}/model.pt"]) if state == "done" else "[]",
                     None, "[]"))
        if state == "running":
            done = rng.randrange(1, 1000)
            live.append((uid, started + 60, done, 1000, rng.random() * 10, (1000 - done) / 5,
                         json.dumps(metrics)))
    assert len(jobs[0]) == len(JOB_COLUMNS)
    with con:
        con.executemany("INSERT INTO sessions (id, pid, host, started, ended, proc_start, kernel, notebook, lease) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", sessions)
        con.executemany(INSERT_JOB, jobs)
        con.executemany("INSERT OR REPLACE INTO live VALUES (?, ?, ?, ?, ?, ?, ?)", live)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return counts


def _time_jobs(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = Ledger(path).jobs()
    return time.perf_counter() - t0, len(rows)


def _time_cli(path: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "notebook_ext", "--history", str(path), "jobs"],
                          capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`python -m notebook_ext jobs` failed: {proc.stderr[-2000:]}")
    return took


def _time_load(path: Path, n: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    store = HistoryStore(path)
    try:
        records = store.load(limit=n)
        took = time.perf_counter() - t0
    finally:
        store.close()
    return took, len(records)


def _listing(tmp: Path, n: int, reps: int) -> list[Row]:
    path = tmp / "big.sqlite3"
    t0 = time.perf_counter()
    counts = _build(path, n)
    built = time.perf_counter() - t0
    orphans = tmp / "orphans.sqlite3"  # as a crash left it: no writer has opened it since
    shutil.copyfile(path, orphans)
    empty = tmp / "empty.sqlite3"
    connect(str(empty)).close()
    size_mb = path.stat().st_size / 1e6
    # warm (page cache, imports); the store opened on `path` records its orphans interrupted
    _time_jobs(orphans), _time_jobs(path), _time_cli(path), _time_cli(empty), _time_load(path, n)
    jobs_t, orphans_t, cli_t, cli_empty, load_t = [], [], [], [], []
    listed = listed_orphans = loaded = 0
    for _ in range(reps):  # interleaved
        took, listed_orphans = _time_jobs(orphans)
        orphans_t.append(took)
        took, listed = _time_jobs(path)
        jobs_t.append(took)
        cli_t.append(_time_cli(path))
        cli_empty.append(_time_cli(empty))
        took, loaded = _time_load(path, n)
        load_t.append(took)
    j, jspread = median_spread(jobs_t)
    o, ospread = median_spread(orphans_t)
    c, cspread = median_spread(cli_t)
    e, _ = median_spread(cli_empty)
    lo, lspread = median_spread(load_t)
    what = (f"a ledger file of {n:,} job records ({size_mb:.0f} MB, built in {built:.1f} s with executemany) in 100 "
            f"ended sessions: {counts['running']:,} left `running` by an owner that is gone (they read "
            f"interrupted), {counts['done']:,} done, {counts['failed']:,} failed (with a traceback); params, "
            f"metrics, code and artifacts as JSON/text like real rows")
    return [
        Row("ledger", f"`Ledger(path).jobs()` on {n:,} records", j, None, "", "s", jspread, "< 0.2 s",
            "yes" if j < 0.2 else "NO",
            note=f"{what}. `jobs()` returns every active job plus the 50 most recent ended ones: here {listed:,} "
                 f"rows, once a writer has opened the ledger (it records the orphans `interrupted`, as any kernel "
                 f"starting does); includes opening the connection; median of {reps}, after one untimed run"),
        Row("ledger", f"same, right after a crash left {counts['running']:,} jobs `running`", o, None, "", "s",
            ospread, "< 0.2 s", "yes" if o < 0.2 else "NO",
            note=f"a copy of the same file no writer has opened since: all {counts['running']:,} orphaned "
                 f"`running` jobs are listed (as interrupted, judged by their owner's ended session): "
                 f"{listed_orphans:,} rows"),
        Row("ledger", f"`python -m notebook_ext --history PATH jobs` on {n:,} records", c, e,
            "same command, empty ledger", "s", cspread, "", "",
            note="wall time of the subprocess, stdout captured: includes interpreter start and imports (the anchor "
                 "is the same command on an empty ledger, interleaved) and printing the table of "
                 f"{listed:,} rows"),
        Row("ledger", f"`HistoryStore(path).load(limit={n:,})`", lo, None, "", "s", lspread, "", "",
            note=f"opens a store on the file (a session row, its writer thread) and decodes every one of the "
                 f"{loaded:,} records (every column checked, JSON parsed, owner judged): the full-history path "
                 "of `nx.history()`, not what a listing does; no target"),
    ]


# -- 3. writes per job per second -----------------------------------------------
def _spin(stop: threading.Event) -> int:
    n = 0
    for n in progress(range(10 ** 12)):
        if not n & 4095 and stop.is_set():
            break
    return n


def _writes(tmp: Path, k: int, seconds: float) -> list[Row]:
    s = nx.Scheduler(slots=k, history=tmp / "writes.sqlite3")
    store = s.store
    stop = threading.Event()
    try:
        w_start = store.live_writes
        jobs = [s.submit(_spin, stop) for _ in range(k)]
        deadline = time.monotonic() + 30
        while not all(j.state == "running" for j in jobs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs did not start: {[j.state for j in jobs]}")
            time.sleep(0.01)
        time.sleep(0.2)  # past the start's own writes
        w0, c0, m0, t0 = store.live_writes, store.commits, store.mailbox_looks, time.monotonic()
        time.sleep(seconds)
        w1, c1, m1, t1 = store.live_writes, store.commits, store.mailbox_looks, time.monotonic()
        stop.set()
        items = [j.result(60) for j in jobs]
        store.flush()
        w_end = store.live_writes
    finally:
        stop.set()
        s.shutdown()
    window = t1 - t0
    per_job = (w1 - w0) / (k * window)
    commits, polls = c1 - c0, m1 - m0
    rate = sum(items) / (k * window) / 1e3
    return [
        Row("ledger", f"live snapshot writes per job per second, {k} jobs spinning in progress()", per_job, None,
            "", "writes/job/s", f"{w1 - w0} writes in {window:.2f} s", "<= 1", "yes" if per_job <= 1 else "NO",
            note=f"{k} thread jobs on one scheduler with a history file, each iterating `progress()` as fast as it "
                 f"can (~{rate:,.0f} k items/s per job); `store.live_writes` counted over a {window:.2f} s window "
                 f"once all were running. Over the jobs' whole life (start to end, final numbers included): "
                 f"{w_end - w_start} writes."),
        Row("ledger", f"SQLite write transactions per second, {k} jobs running", commits / window, None, "",
            "commits/s", f"{commits} in {window:.2f} s", "", "",
            note="transactions the history writer committed in the same window (`store.commits`): live "
                 "snapshots (1/s) and lease renewals (every lease/5 = 2 s) share "
                 f"transactions when they fall due together; the mailbox was polled {polls} times "
                 f"({polls / window:.1f}/s, `store.mailbox_looks`: a `PRAGMA data_version` read, no transaction unless another process "
                 "wrote)"),
    ]


def run(quick: bool) -> list[Row]:
    reps = 2 if quick else 5
    n_progress = 1_000_000 if quick else 30_000_000
    n_report = 100_000 if quick else 2_000_000
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t = _per_call(tmp_path / "percall.sqlite3", n_progress, n_report, reps)
        rows = [
            _ratio_row("progress() µs/call, ledger on", t["progress"]["on"], t["progress"]["off"], n_progress,
                       "a thread job looping `for _ in progress(range(N)): pass`, timed inside the job with "
                       "perf_counter; `Scheduler(slots=1, history=file)` vs `history=None`, no observer; on/off "
                       "interleaved (the first side alternates), each warmed by one untimed job"),
            _ratio_row("report() µs/call, ledger on", t["report"]["on"], t["report"]["off"], n_report,
                       "a thread job calling `report(i, loss=...)` N times (`report(done, total, message, "
                       "**metrics)`: `done` is the step), timed inside the job; same setup"),
        ]
        rows += _listing(tmp_path, 10_000 if quick else 100_000, reps)
        rows += _writes(tmp_path, 4, 1.0 if quick else 5.0)
    return rows
