"""6. Serving: micro-batched predict vs one model.predict per request."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import notebook_ext as nx
import notebook_ext.ml

from ._table import Row, median_spread


async def _batched(predictor, rows_) -> tuple[float, list[float]]:
    t0 = time.perf_counter()

    async def one(r):
        await predictor.predict(r)
        return time.perf_counter() - t0

    lat = await asyncio.gather(*(one(r) for r in rows_))
    return time.perf_counter() - t0, lat


async def _blocks(predictor, rows_, size: int = 100) -> float:
    """The same rows as concurrent `predict_many` requests of ``size`` rows each."""
    t0 = time.perf_counter()
    await asyncio.gather(*(predictor.predict_many(rows_[i:i + size]) for i in range(0, len(rows_), size)))
    return time.perf_counter() - t0


async def _unbatched(model, rows_) -> tuple[float, list[float]]:
    """The same burst, each request its own predict call in the loop's default thread pool."""
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()

    async def one(r):
        await loop.run_in_executor(None, model.predict, r[None, :])
        return time.perf_counter() - t0

    lat = await asyncio.gather(*(one(r) for r in rows_))
    return time.perf_counter() - t0, lat


def run(quick: bool) -> list[Row]:
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=3000).fit(X, y)
    n = 500 if quick else 5000
    rows_ = X[np.arange(n) % len(X)]
    reps = 1 if quick else 5
    s = nx.Scheduler(history=None)
    ours_tp, ours_p99, base_tp, base_p99, many_tp = [], [], [], [], []

    async def main(predictor) -> None:
        # One event loop for everything, so the baseline's thread pool stays warm.
        await _batched(predictor, rows_)  # warm-up: each side one untimed burst
        await _blocks(predictor, rows_)
        await _unbatched(model, rows_)
        for rep in range(reps):  # interleaved, alternating which side goes first
            sides = [("ours", _batched(predictor, rows_)), ("base", _unbatched(model, rows_))]
            for side, coro in (sides if rep % 2 == 0 else sides[::-1]):
                took, lat = await coro
                tp, p99 = (ours_tp, ours_p99) if side == "ours" else (base_tp, base_p99)
                tp.append(n / took)
                p99.append(np.percentile(lat, 99) * 1000)
            many_tp.append(n / await _blocks(predictor, rows_))

    try:
        predictor = nx.ml.serve(model, max_batch=64, max_wait_ms=5, scheduler=s)
        try:
            asyncio.run(main(predictor))
        finally:
            predictor.close()
    finally:
        s.shutdown()
    t, ts = median_spread(ours_tp)
    b, bs = median_spread(base_tp)
    mt, mts = median_spread(many_tp)
    p, ps = median_spread(ours_p99)
    bp, bps = median_spread(base_p99)
    return [
        Row("serving", f"burst of {n:,} concurrent requests: throughput", t, b, "one predict per request", "req/s",
            ts, ">= 25x", "yes" if t >= 25 * b else "NO",
            note=f"one predictor and one event loop; each side first runs one untimed burst, then {reps} rounds "
            f"alternating which goes first, the predict_many burst after both; one predict per request: {bs}"
            "; per-request cost is dominated by Python's full garbage collections of the burst's live "
            "futures, tasks and coroutines (see them with a gc callback)"),
        Row("serving", f"same {n:,} rows as {n // 100} concurrent predict_many(100 rows)", mt, b,
            "one predict per request", "req/s", mts, ">= 25x", "yes" if mt >= 25 * b else "NO",
            note="rows per second; a bulk client's path: one request carries many rows"),
        Row("serving", "same burst: p99 latency", p, bp, "one predict per request", "ms", ps,
            "no worse", "yes" if p <= bp else "NO", note=f"one predict per request: {bps}"),
    ]
