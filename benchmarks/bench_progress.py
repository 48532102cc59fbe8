"""4. Progress path: cost per call, and comm messages actually sent by cards."""

from __future__ import annotations

import os
import time

from notebook_ext.core import Scheduler, progress, report

from ._table import Row, median_spread


def _timed_in_job(s: Scheduler, fn, n: int) -> float:
    return s.submit(fn, n).result(120) / n * 1e9


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


def _tqdm(n: int) -> float:
    from tqdm import tqdm

    with open(os.devnull, "w") as null:
        t0 = time.perf_counter()
        x = 0
        for i in tqdm(range(n), file=null):
            x += i
        return time.perf_counter() - t0


def _messages(cards: int, seconds: float) -> float:
    from notebook_ext.ui import UpdatePump

    s = Scheduler(slots=2, history=None)
    pump = UpdatePump(s)
    try:
        def busy(n):
            for i in progress(range(n)):
                time.sleep(0.0005)
                if i % 50 == 0:
                    report(loss=1 / (i + 1))

        jobs = [s.submit(busy, 10**7, executor="loop" if False else "thread") for _ in range(min(cards, 2))]
        for k in range(cards):
            pump.card(jobs[k % len(jobs)])
        time.sleep(0.5)
        pump.sent = 0
        t0 = time.perf_counter()
        time.sleep(seconds)
        rate = pump.sent / (time.perf_counter() - t0)
        for j in jobs:
            j.cancel()
        s.wait(*jobs, timeout=10)
        return rate
    finally:
        pump.close()
        s.shutdown()


def run(quick: bool) -> list[Row]:
    n = 100_000 if quick else 2_000_000
    reps = 2 if quick else 5
    s = Scheduler(slots=1, history=None)
    try:
        bare = [_timed_in_job(s, _bare, n) for _ in range(reps)]
        rep = [_timed_in_job(s, _report, n) for _ in range(reps)]
        prog = [_timed_in_job(s, _progress, n) for _ in range(reps)]
        tq = [_timed_in_job(s, _tqdm, n) for _ in range(reps)]
    finally:
        s.shutdown()
    b, _ = median_spread(bare)
    r, rs = median_spread([x - y for x, y in zip(rep, bare)])
    p, ps = median_spread([x - y for x, y in zip(prog, bare)])
    t, _ = median_spread([x - y for x, y in zip(tq, bare)])
    secs = 1.0 if quick else 4.0
    one = _messages(1, secs)
    fifty = _messages(50, secs)
    return [
        Row("progress", "report() per call, minus a bare loop", r, t, "tqdm per item (minus bare)", "ns",
            rs, "<= tqdm", "yes" if r <= t else "NO"),
        Row("progress", "progress() per item, minus a bare loop", p, t, "tqdm per item (minus bare)", "ns",
            ps, "<= tqdm", "yes" if p <= t else "NO"),
        Row("progress", "comm messages/s, 1 card on a busy job", one, None, "", "msg/s", "",
            "<= 10", "yes" if one <= 10.5 else "NO"),
        Row("progress", "comm messages/s, 50 cards together", fifty, 1000, "Jupyter server IOPub limit", "msg/s",
            "", "far below 1,000", "yes" if fifty <= 150 else "NO",
            note="one global budget (100 msg/s) is shared by all cards; final states always go out"),
    ]
