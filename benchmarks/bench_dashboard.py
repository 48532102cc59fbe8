"""7. Dashboard at scale: open and refresh over 5,000 jobs vs 50."""

from __future__ import annotations

import time

from notebook_ext.core import Scheduler
from notebook_ext.ui import UpdatePump

from ._table import Row, median_spread


def _measure(n: int, reps: int) -> tuple[list[float], list[float], int]:
    s = Scheduler(history=None)
    pump = UpdatePump(s)
    try:
        jobs = [s.submit(int) for _ in range(n)]
        s.wait(*jobs)
        opens, refreshes = [], []
        messages = 0
        for _ in range(reps):
            t0 = time.perf_counter()
            dash = pump.dashboard()
            opens.append((time.perf_counter() - t0) * 1000)
            sent = []
            dash.observe(lambda ch: sent.append(1), names="view")
            t0 = time.perf_counter()
            for _ in range(10):
                dash._on_action(dash, {"action": "sort", "by": "priority"}, [])
            refreshes.append((time.perf_counter() - t0) * 100)
            messages = len(sent)
            dash.close()
        return opens, refreshes, messages
    finally:
        pump.close()
        s.shutdown()


def run(quick: bool) -> list[Row]:
    reps = 2 if quick else 5
    big = 500 if quick else 5000
    o_big, r_big, m_big = _measure(big, reps)
    o_small, r_small, _ = _measure(50, reps)
    ob, obs = median_spread(o_big)
    os_, _ = median_spread(o_small)
    rb, rbs = median_spread(r_big)
    rs, _ = median_spread(r_small)
    return [
        Row("dashboard", f"open over {big:,} jobs (kernel side)", ob, os_, "50 jobs", "ms", obs),
        Row("dashboard", f"refresh over {big:,} jobs (kernel side)", rb, rs, "50 jobs", "ms", rbs,
            note=f"{m_big} comm messages for 10 refreshes; one widget model whatever the job count"),
    ]
