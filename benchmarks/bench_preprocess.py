"""5. Preprocess overlap: I/O-bound + CPU-bound items, concurrent vs sequential."""

from __future__ import annotations

import os
import time

import numpy as np

from notebook_ext.core import Scheduler
from notebook_ext.ml import preprocess

from ._table import Row, median_spread

IO_S = 0.05


def item(seed: int) -> float:
    time.sleep(IO_S)  # reading a file, a request …
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(220, 220))
    return float(np.linalg.eigvalsh(a @ a.T)[-1])  # numpy releases the GIL


def run(quick: bool) -> list[Row]:
    n = 8 if quick else 32
    reps = 1 if quick else 3
    t0 = time.perf_counter()
    for i in range(n):
        rng = np.random.default_rng(i)
        a = rng.normal(size=(220, 220))
        np.linalg.eigvalsh(a @ a.T)
    cpu_total = time.perf_counter() - t0
    io_total = n * IO_S
    sequential = []
    ours = []
    s = Scheduler(history=None)
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            expected = [item(i) for i in range(n)]
            sequential.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = preprocess(item, range(n), workers=4, scheduler=s).result(300).results
            ours.append(time.perf_counter() - t0)
            assert np.allclose(got, expected)
    finally:
        s.shutdown()
    o, os_ = median_spread(ours)
    q, _ = median_spread(sequential)
    bound = max(io_total / 4, cpu_total / (os.cpu_count() or 1))
    return [
        Row("preprocess", f"{n} items, 50 ms I/O + numpy each, 4 workers", o, q, "sequential loop", "s", os_),
        Row("preprocess", "same, relative to perfect overlap max(io/workers, cpu/cores)", o, bound,
            "ideal overlap", "s", note=f"io total {io_total:.2f} s, cpu total {cpu_total:.2f} s"),
    ]
