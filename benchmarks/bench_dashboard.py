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


def _sample(pump: UpdatePump) -> tuple[float, float, int]:
    """One open (ms) and 10 sort clicks (ms per refresh) on a fresh dashboard,
    and the view updates (comm messages) the clicks made."""
    t0 = time.perf_counter()
    dash = pump.dashboard()
    opened = (time.perf_counter() - t0) * 1000
    sent = []
    dash.observe(lambda ch: sent.append(1), names="view")  # a view change is one comm message
    t0 = time.perf_counter()
    for i in range(10):
        _click_sort(dash, SORTS[i % 2])
    refresh = (time.perf_counter() - t0) * 100  # ms per refresh
    dash.close()
    return opened, refresh, len(sent)


def _measure(sizes: tuple[int, int], reps: int) -> dict[int, dict[str, list[float]]]:
    """Opens and refreshes over each size of finished-job list, one
    scheduler each; both warmed by one untimed open and a round of
    refreshes, then one sample each per round, the first size alternating."""
    out: dict[int, dict[str, list[float]]] = {n: {"open": [], "refresh": [], "sent": []} for n in sizes}
    scheds, pumps = [], {}
    try:
        for n in sizes:
            s = nx.Scheduler(history=None)
            scheds.append(s)
            jobs = [s.submit(int) for _ in range(n)]
            s.wait(*jobs)
            pumps[n] = UpdatePump(s)
        for pump in pumps.values():  # warm-up, untimed
            _sample(pump)
        for rep in range(reps):
            for n in (sizes if rep % 2 == 0 else sizes[::-1]):
                for key, value in zip(("open", "refresh", "sent"), _sample(pumps[n])):
                    out[n][key].append(value)
        return out
    finally:
        for pump in pumps.values():
            pump.close()
        for s in scheds:
            s.shutdown()


def run(quick: bool) -> list[Row]:
    reps = 2 if quick else 5
    big = 500 if quick else 5000
    t = _measure((big, 50), reps)
    o_big, r_big, o_small, r_small = t[big]["open"], t[big]["refresh"], t[50]["open"], t[50]["refresh"]
    m_big, n_big = int(sum(t[big]["sent"])), 10 * reps
    ob, obs = median_spread(o_big)
    os_, _ = median_spread(o_small)
    rb, rbs = median_spread(r_big)
    rs, _ = median_spread(r_small)
    return [
        Row("dashboard", f"open: kernel-side time to create the widget and build its first view over {big:,} "
            "finished jobs", ob, os_, "50 jobs", "ms", obs,
            note="one widget model whatever the job count; only the visible page (25 rows) goes to the browser; "
                 f"each size on a scheduler of its own, warmed by one untimed open and 10 refreshes, then {reps} "
                 "rounds, one open and 10 refreshes of each size a round, the first size alternating"),
        Row("dashboard", f"refresh (a sort click): kernel-side time to re-sort and rebuild one view over {big:,} finished jobs; "
            "one comm message per refresh", rb, rs, "50 jobs", "ms", rbs,
            note=f"{m_big} view updates (comm messages) for {n_big} refreshes, sort alternating between priority "
                 "and name; browser rendering not included"),
    ]
