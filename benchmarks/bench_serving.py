"""6. Serving: micro-batched predict vs one model.predict per request."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from notebook_ext.core import Scheduler
from notebook_ext.ml import serve

from ._table import Row, median_spread


def run(quick: bool) -> list[Row]:
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=3000).fit(X, y)
    n = 500 if quick else 5000
    rows_ = X[np.arange(n) % len(X)]
    reps = 1 if quick else 3
    s = Scheduler(history=None)
    ours_tp, ours_p99, base_tp, base_p99 = [], [], [], []
    try:
        for _ in range(reps):
            predictor = serve(model, max_batch=64, max_wait_ms=5, scheduler=s)

            async def burst():
                t0 = time.perf_counter()

                async def one(r):
                    await predictor.predict(r)
                    return time.perf_counter() - t0

                lat = await asyncio.gather(*(one(r) for r in rows_))
                return time.perf_counter() - t0, lat

            took, lat = asyncio.run(burst())
            predictor.close()
            ours_tp.append(n / took)
            ours_p99.append(np.percentile(lat, 99) * 1000)

            async def unbatched():  # the same burst, each request its own predict call
                t0 = time.perf_counter()
                loop = asyncio.get_running_loop()

                async def one(r):
                    await loop.run_in_executor(None, model.predict, r[None, :])
                    return time.perf_counter() - t0

                lat = await asyncio.gather(*(one(r) for r in rows_))
                return time.perf_counter() - t0, lat

            took, lat = asyncio.run(unbatched())
            base_tp.append(n / took)
            base_p99.append(np.percentile(lat, 99) * 1000)
    finally:
        s.shutdown()
    t, ts = median_spread(ours_tp)
    b, _ = median_spread(base_tp)
    p, ps = median_spread(ours_p99)
    bp, _ = median_spread(base_p99)
    return [
        Row("serving", f"burst of {n:,} concurrent requests: throughput", t, b, "one predict per request", "req/s",
            ts, ">= 20x", "yes" if t >= 20 * b else "NO"),
        Row("serving", "same burst: p99 latency", p, bp, "one predict per request", "ms", ps,
            "no worse", "yes" if p <= bp else "NO"),
    ]
