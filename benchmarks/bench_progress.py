"""4. Progress path: cost per call with an observer attached, and the comm
messages cards really send from a real kernel."""

from __future__ import annotations

import subprocess
import sys
import time

import notebook_ext as nx

from ._kernel import Kernel, peak_per_second
from ._table import Row, median_spread

report = nx.report
progress = nx.progress


def _bare(n: int) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t0


def _report(n: int) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
        report(i)
    return time.perf_counter() - t0


def _progress(n: int) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in progress(range(n)):
        x += i
    return time.perf_counter() - t0


#: The anchor: plain tqdm in the main thread of an interpreter that never
#: imports notebook_ext (whose import-time hook patches ``tqdm.__new__``
#: once a job has run). It runs the same bare loop, then the tqdm loop, for
#: each ``n`` it reads, and prints both in seconds.
PLAIN_TQDM = """\
import os, sys, time
from tqdm import tqdm


def bare(n):
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t0


def bar(n):
    with open(os.devnull, "w") as null:
        t0 = time.perf_counter()
        x = 0
        for i in tqdm(range(n), file=null):
            x += i
        return time.perf_counter() - t0


for line in sys.stdin:
    n = int(line)
    out = bare(n), bar(n)
    assert "notebook_ext" not in sys.modules
    print(*out, flush=True)
"""


class PlainTqdm:
    """`PLAIN_TQDM` in a child process, kept for every sample."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PLAIN_TQDM], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def __call__(self, n: int) -> tuple[float, float]:
        """(bare loop, tqdm loop) seconds for ``n`` items."""
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the plain tqdm process ended (code {self.proc.wait()})")
        bare, bar = line.split()
        return float(bare), float(bar)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def _per_call(n: int, reps: int) -> dict[str, list[float]]:
    """ns per iteration of each loop: ours run as jobs on a scheduler with an
    observer attached (so the notifier really makes snapshots), the anchor
    (bare loop and tqdm) in `PlainTqdm`'s process, outside any job."""
    s = nx.Scheduler(slots=1, history=None)
    snaps = []
    unsubscribe = s.subscribe(lambda snap: snaps.append(None))
    plain = PlainTqdm()
    fns = {"bare": _bare, "report": _report, "progress": _progress}
    out: dict[str, list[float]] = {k: [] for k in (*fns, "plain_bare", "tqdm")}
    try:
        for fn in fns.values():  # warm-up: every side once, untimed
            s.submit(fn, n).result(120)
        plain(n)
        for rep in range(reps):  # interleaved, so noise hits every side alike; the order reverses every other round
            sides = [*fns, "plain"]
            for key in (sides if rep % 2 == 0 else sides[::-1]):
                if key == "plain":
                    bare, bar = plain(n)
                    out["plain_bare"].append(bare / n * 1e9)
                    out["tqdm"].append(bar / n * 1e9)
                else:
                    out[key].append(s.submit(fns[key], n).result(120) / n * 1e9)
    finally:
        plain.close()
        unsubscribe()
        s.shutdown()
    print(f"#   observer received {len(snaps)} snapshots", file=sys.stderr, flush=True)
    return out


CARD_CODE = """\
%load_ext notebook_ext
import asyncio, time
import notebook_ext as nx
from IPython.display import display
from notebook_ext.ui import card

async def busy50(k):
    for i in progress(range(10**12)):
        await asyncio.sleep(0.01)
        if i % 10 == 0:
            report(loss=1 / (i + 1))

def _stop(jobs):
    for j in jobs:
        j.cancel()
    nx.wait(*jobs, timeout=60)
    assert all(j.done() for j in jobs), [j.state for j in jobs]
"""

ONE_CARD = """\
%%bg -n busy1
x = 0
for i in progress(range(10**12)):
    x += i
    if i % 10_000 == 0:
        report(loss=1 / (i + 1))
"""

FIFTY_CARDS = """\
jobs50 = [nx.submit(busy50, k) for k in range(50)]
for j in jobs50:
    display(card(j))
"""


def _kernel_rates(k: Kernel, start: str, stop: str, settle: float, seconds: float) -> tuple[float, int, int]:
    """(comm_msg per second in a steady window, peak IOPub messages of all kinds
    in any 1 s window from the start cell to the end of the stop cell, total)."""
    k.drain()
    record: list = []
    k.run(start, record=record)
    k.read_iopub(settle, record)
    t0 = time.time()
    k.read_iopub(seconds, record)
    t1 = time.time()
    k.run(stop, record=record)
    k.drain(quiet=0.5, record=record)
    comm = sum(1 for t, kind in record if kind == "comm_msg" and t0 <= t < t1)
    return comm / (t1 - t0), peak_per_second([t for t, _ in record]), len(record)


_WINDOW = {True: (0.5, 1.0), False: (1.0, 5.0)}  # quick: (settle, measured window) in seconds


def _comm_rates(quick: bool) -> dict[str, tuple[float, int, int]]:
    settle, seconds = _WINDOW[quick]
    with Kernel() as k:
        k.run(CARD_CODE)
        # warm-up: a card on a short job, untimed (widget and pump paths imported and running)
        k.run("%%bg -n warm\nfor i in progress(range(20)):\n    time.sleep(0.01)\n")
        k.run("nx.wait('warm', timeout=30)")
        k.drain()
        one = _kernel_rates(k, ONE_CARD, "_stop([nx.get_scheduler().get('busy1')])", settle, seconds)
        fifty = _kernel_rates(k, FIFTY_CARDS, "_stop(jobs50)", settle, seconds)
    return {"one": one, "fifty": fifty}


def run(quick: bool) -> list[Row]:
    n = 100_000 if quick else 2_000_000
    reps = 2 if quick else 5
    t = _per_call(n, reps)
    bare = t["bare"]
    r, rs = median_spread([x - y for x, y in zip(t["report"], bare)])
    p, ps = median_spread([x - y for x, y in zip(t["progress"], bare)])
    q, qs = median_spread([x - y for x, y in zip(t["tqdm"], t["plain_bare"])])
    rates = _comm_rates(quick)
    one, one_peak, one_total = rates["one"]
    fifty, fifty_peak, fifty_total = rates["fifty"]
    settle, seconds = _WINDOW[quick]
    how = (f"comm_msg messages counted on the IOPub channel of a real kernel over a {seconds:g} s window, "
           f"after {settle:g} s of settling")
    return [
        Row("progress", "report() per call, observer attached, minus a bare loop", r, q,
            "plain tqdm per item, no job (minus bare)", "ns", rs, "<= tqdm", "yes" if r <= q else "NO",
            note="ours: each loop runs as a job on a scheduler with a subscriber (`sched.subscribe(lambda snap: "
                 "None)`), so snapshots are really made, minus a bare loop run as a job there. The anchor: "
                 "`for i in tqdm(range(N), file=devnull)` in the main thread of a child interpreter that never "
                 "imports notebook_ext (no job, no hook), minus the same bare loop there; tqdm per item: "
                 f"{qs}. Ours (bare / report / progress) and the child interleaved, the order reversed every "
                 "other round; every side run once untimed first"),
        Row("progress", "progress() per item, observer attached, minus a bare loop", p, q,
            "plain tqdm per item, no job (minus bare)", "ns", ps, "<= tqdm", "yes" if p <= q else "NO"),
        Row("progress", "comm messages/s, 1 card on a busy job", one, None, "", "msg/s", "",
            "<= 10", "yes" if one <= 10.5 else "NO",
            note=f"a `%%bg` cell spinning in `progress()` (report(loss=...) every 10,000 items); {how}"),
        Row("progress", "peak IOPub messages/s, all kinds, any 1 s window: 1 card", one_peak, 1000,
            "Jupyter server IOPub limit", "msg/s", f"{one_total} messages in all", "< 1,000",
            "yes" if one_peak < 1000 else "NO", note="from the `%%bg` cell's execute request to its cancel and the final state, all message kinds"),
        Row("progress", "comm messages/s, 50 cards together", fifty, 1000, "Jupyter server IOPub limit", "msg/s",
            "", "far below 1,000", "yes" if fifty <= 150 else "NO",
            note="50 coroutine jobs (`nx.submit`), each `display(card(job))`, each advancing `progress()` "
                 f"100 times a second; one global budget (100 msg/s) is shared by all cards; {how}"),
        Row("progress", "peak IOPub messages/s, all kinds, any 1 s window: 50 cards", fifty_peak, 1000,
            "Jupyter server IOPub limit", "msg/s", f"{fifty_total} messages in all", "< 1,000",
            "yes" if fifty_peak < 1000 else "NO",
            note="from the cell that makes the 50 cards (display_data, comm_open …) to the 50 final states "
                 "after cancel"),
    ]
