"""7. Dashboard at scale: kernel-side cost of building the dashboard's view
over 5,000 finished jobs vs 50 (the browser's drawing is not included)."""

from __future__ import annotations

import time

import notebook_ext as nx
from notebook_ext.ui import UpdatePump

from ._table import Row, median_spread

SORTS = ("priority", "name")  # alternated, so every refresh makes a new view (and one comm message)


def _click_sort(dash, by: str) -> None:
    """What a click on a column header does: the browser's custom widget
    message, handled kernel-side (re-sort, rebuild the view, send it)."""
    dash._handle_msg({"content": {"data": {"method": "custom", "content": {"action": "sort", "by": by}}},
                      "buffers": []})


def _measure(n: int, reps: int) -> tuple[list[float], list[float], int, int]:
    s = nx.Scheduler(history=None)
    pump = UpdatePump(s)
    try:
        jobs = [s.submit(int) for _ in range(n)]
        s.wait(*jobs)
        dash = pump.dashboard()  # warm-up, untimed: one open and a round of refreshes
        for by in SORTS:
            _click_sort(dash, by)
        dash.close()
        opens, refreshes = [], []
        messages = refreshed = 0
        for _ in range(reps):
            t0 = time.perf_counter()
            dash = pump.dashboard()
            opens.append((time.perf_counter() - t0) * 1000)
            sent = []
            dash.observe(lambda ch: sent.append(1), names="view")  # a view change is one comm message
            t0 = time.perf_counter()
            for i in range(10):
                _click_sort(dash, SORTS[i % 2])
            refreshes.append((time.perf_counter() - t0) * 100)  # ms per refresh
            messages, refreshed = len(sent), 10
            dash.close()
        return opens, refreshes, messages, refreshed
    finally:
        pump.close()
        s.shutdown()


def run(quick: bool) -> list[Row]:
    reps = 2 if quick else 5
    big = 500 if quick else 5000
    o_big, r_big, m_big, n_big = _measure(big, reps)
    o_small, r_small, _, _ = _measure(50, reps)
    ob, obs = median_spread(o_big)
    os_, _ = median_spread(o_small)
    rb, rbs = median_spread(r_big)
    rs, _ = median_spread(r_small)
    return [
        Row("dashboard", f"open: kernel-side time to create the widget and build its first view over {big:,} "
            "finished jobs", ob, os_, "50 jobs", "ms", obs,
            note="one widget model whatever the job count; only the visible page (25 rows) goes to the browser; "
                 "each size warmed by one untimed open first"),
        Row("dashboard", f"refresh (a sort click): kernel-side time to re-sort and rebuild one view over {big:,} finished jobs; "
            "one comm message per refresh", rb, rs, "50 jobs", "ms", rbs,
            note=f"{m_big} view updates (comm messages) for {n_big} refreshes, sort alternating between priority "
                 "and name; browser rendering not included"),
    ]
