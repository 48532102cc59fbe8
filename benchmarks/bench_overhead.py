"""3. Scheduler overhead: 10,000 no-op coroutine jobs vs raw asyncio.gather."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc

from notebook_ext.core import Scheduler

from ._table import Row, median_spread


async def _noop() -> None:
    return None


def _ours(n: int) -> tuple[float, float]:
    s = Scheduler(history=None)
    try:
        s.submit(_noop).result(10)
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        jobs = [s.submit(_noop) for _ in range(n)]
        s.wait(*jobs)
        took = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert all(j.state == "done" for j in jobs)
        return took / n * 1e6, peak / n
    finally:
        s.shutdown()


def _gather(n: int) -> float:
    async def main() -> None:
        await asyncio.gather(*(_noop() for _ in range(n)))

    t0 = time.perf_counter()
    asyncio.run(main())
    return (time.perf_counter() - t0) / n * 1e6


def run(quick: bool) -> list[Row]:
    n = 1000 if quick else 10_000
    reps = 2 if quick else 5
    ours, mem = [], []
    for _ in range(reps):
        us, b = _ours(n)
        ours.append(us)
        mem.append(b)
    raw = [_gather(n) for _ in range(reps)]
    o, spread = median_spread(ours)
    r, _ = median_spread(raw)
    m, mspread = median_spread(mem)
    return [
        Row("overhead", f"{n:,} no-op coroutine jobs, submit to all done", o, r, "asyncio.gather", "µs/job",
            spread, "<= 30 µs/job", "yes" if o <= 30 else "NO",
            note="ours includes a Job object, state machine, priority queue, snapshots to observers and a "
                 "thread hop per job; gather is the floor"),
        Row("overhead", "memory per job (tracemalloc peak / jobs)", m / 1024, None, "", "KiB/job", mspread),
    ]
