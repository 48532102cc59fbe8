"""5. Preprocess overlap: I/O-bound + CPU-bound items, concurrent vs sequential."""

from __future__ import annotations

import os
import time

import numpy as np

import notebook_ext as nx
import notebook_ext.ml

from ._table import Row, median_spread

IO_S = 0.05


def item(seed: int) -> float:
    time.sleep(IO_S)  # reading a file, a request …
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(220, 220))
    return float(np.linalg.eigvalsh(a @ a.T)[-1])  # numpy releases the GIL


def _cpu(i: int) -> None:
    rng = np.random.default_rng(i)
    a = rng.normal(size=(220, 220))
    np.linalg.eigvalsh(a @ a.T)


def run(quick: bool) -> list[Row]:
    n = 8 if quick else 32
    reps = 1 if quick else 5
    s = nx.Scheduler(history=None)
    times: dict[str, list[float]] = {"seq": [], "ours": [], "cpu": []}
    try:
        # Warm-up, untimed: numpy/LAPACK, the sequential loop and our preprocess on this scheduler.
        expected = [item(i) for i in range(n)]
        got = nx.ml.preprocess(item, range(n), workers=4, scheduler=s).result(300).results
        assert np.allclose(got, expected)
        for rep in range(reps):  # interleaved, the order reversed every other round
            for side in (("seq", "ours", "cpu") if rep % 2 == 0 else ("cpu", "ours", "seq")):
                t0 = time.perf_counter()
                if side == "seq":
                    got = [item(i) for i in range(n)]
                elif side == "ours":
                    got = nx.ml.preprocess(item, range(n), workers=4, scheduler=s).result(300).results
                else:
                    for i in range(n):
                        _cpu(i)
                times[side].append(time.perf_counter() - t0)
                if side != "cpu":
                    assert np.allclose(got, expected)
    finally:
        s.shutdown()
    io_total = n * IO_S
    o, os_ = median_spread(times["ours"])
    q, qs = median_spread(times["seq"])
    cpu_total, cs = median_spread(times["cpu"])
    bound = max(io_total / 4, cpu_total / (os.cpu_count() or 1))
    return [
        Row("preprocess", f"{n} items, 50 ms I/O + numpy each, 4 workers", o, q, "sequential loop", "s", os_,
            note=f"sequential loop {qs}; both sides run once untimed first, then {reps} rounds interleaved, the "
                 "order reversed every other round"),
        Row("preprocess", "same, relative to perfect overlap max(io/workers, cpu/cores)", o, bound,
            "ideal overlap", "s", note=f"io total {io_total:.2f} s, cpu total {cpu_total:.2f} s (the numpy part "
                                       f"alone, timed in the same rounds: {cs})"),
    ]
