"""10. Work items: a preprocessing job's items against the tools people
would otherwise reach for, configured as their users would.

- trivial sync items vs ``ThreadPoolExecutor(4).map``
- 10 ms I/O items at ``workers=64`` vs ``ThreadPoolExecutor(64).map``
- ``async def`` 10 ms items vs ``asyncio.gather`` under a ``Semaphore(64)``
- 1,000,000 items into a sink: peak RSS growth vs ``ThreadPoolExecutor(4).map``
  whose loop hands each result to the same sink and drops it

Ours is always the whole job: ``preprocess(...)`` submitted and its result
awaited, one job record, a card's worth of progress. Sides alternate and
each runs once untimed first; each sink sample runs in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

import notebook_ext as nx
import notebook_ext.ml

from ._table import Row, median_spread


def double(x: int) -> int:
    return 2 * x


def io_10ms(x: int) -> int:
    time.sleep(0.01)
    return x


async def aio_10ms(x: int) -> int:
    await asyncio.sleep(0.01)
    return x


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _pairs(ours, anchor, reps: int) -> tuple[list[float], list[float]]:
    ours(), anchor()  # warm-up, untimed
    a, b = [], []
    for rep in range(reps):
        sides = [(a, ours), (b, anchor)]
        for into, fn in (sides if rep % 2 == 0 else sides[::-1]):
            into.append(_timed(fn))
    return a, b


class PeakRSS:
    """Samples this process's RSS every 10 ms in a thread; ``growth`` is the
    peak over the value when it started."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.base = self.peak = 0

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


SINK_CHILD = "import sys; from benchmarks.bench_items import sink_sample; sink_sample(sys.argv[1], int(sys.argv[2]))"


def sink_sample(side: str, n: int) -> None:
    """One sample of the sink case, in a fresh interpreter (a peak RSS is a
    high-water mark: a second run in one process reuses what the first freed).
    ``n`` items of ``double`` each handed to a sink that drops it, after an
    untimed run of 1,000; prints the peak RSS growth in MB and the seconds."""
    count = [0]

    def sink(_value):
        count[0] += 1

    s = nx.Scheduler(slots=2, history=None) if side == "ours" else None

    def ours(k: int) -> None:
        nx.ml.preprocess(double, range(k), workers=4, into=sink, scheduler=s).result(3600)

    def pool(k: int) -> None:
        with ThreadPoolExecutor(4) as p:
            for value in p.map(double, range(k)):
                sink(value)

    fn = ours if side == "ours" else pool
    try:
        fn(1000)  # warm-up
        count[0] = 0
        with PeakRSS() as mem:
            took = _timed(lambda: fn(n))
    finally:
        if s is not None:
            s.shutdown()
    assert count[0] == n, (side, count[0])
    print(mem.growth_mb, took)


def _sink_in_child(side: str, n: int) -> tuple[float, float]:
    proc = subprocess.run([sys.executable, "-c", SINK_CHILD, side, str(n)], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} sink sample failed: {proc.stderr[-2000:]}")
    mb, took = proc.stdout.split()[-2:]  # its last line
    return float(mb), float(took)


def run(quick: bool) -> list[Row]:
    reps = 1 if quick else 5
    n_trivial = 2_000 if quick else 20_000
    n_io = 128 if quick else 640
    n_sink = 20_000 if quick else 1_000_000
    s = nx.Scheduler(slots=2, history=None)
    prep = nx.ml.preprocess
    rows: list[Row] = []
    try:
        def ours_trivial():
            assert prep(double, range(n_trivial), workers=4, scheduler=s).result(600).results[-1] == 2 * (n_trivial - 1)

        def pool_trivial():
            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(double, range(n_trivial)))[-1] == 2 * (n_trivial - 1)

        a, b = _pairs(ours_trivial, pool_trivial, reps)
        m, ms = median_spread([x / n_trivial * 1e6 for x in a])
        g, _ = median_spread([x / n_trivial * 1e6 for x in b])
        rows.append(Row("items", f"{n_trivial:,} trivial sync items, workers=4 (one preprocess job)", m, g,
                        "ThreadPoolExecutor(4).map", "µs/item", ms, "<= 1.5x", "yes" if m <= 1.5 * g else "NO",
                        note="was 842 µs vs 25 µs (33x) with one child job per item"))

        def ours_io():
            assert len(prep(io_10ms, range(n_io), workers=64, scheduler=s).result(600)) == n_io

        def pool_io():
            with ThreadPoolExecutor(64) as pool:
                assert len(list(pool.map(io_10ms, range(n_io)))) == n_io

        a, b = _pairs(ours_io, pool_io, reps)
        m, ms = median_spread(a)
        g, _ = median_spread(b)
        rows.append(Row("items", f"{n_io} items of 10 ms I/O, workers=64", m, g, "ThreadPoolExecutor(64).map",
                        "s", ms, "<= 1.5x", "yes" if m <= 1.5 * g else "NO",
                        note="was 17x: thread items were capped at the 2 CPU slots"))

        def ours_async():
            assert len(prep(aio_10ms, range(n_io), workers=64, scheduler=s).result(600)) == n_io

        def gather_async():
            async def main():
                gate = asyncio.Semaphore(64)

                async def one(x):
                    async with gate:
                        return await aio_10ms(x)

                return await asyncio.gather(*(one(x) for x in range(n_io)))

            assert len(asyncio.run(main())) == n_io

        a, b = _pairs(ours_async, gather_async, reps)
        m, ms = median_spread(a)
        g, _ = median_spread(b)
        rows.append(Row("items", f"{n_io} async def items of 10 ms, workers=64", m, g,
                        "asyncio.gather + Semaphore(64)", "s", ms, "<= 2x", "yes" if m <= 2 * g else "NO"))

        mem: dict[str, list[float]] = {"ours": [], "pool": []}
        took: dict[str, list[float]] = {"ours": [], "pool": []}
        for rep in range(reps):  # alternating which side goes first
            for side in (("ours", "pool") if rep % 2 == 0 else ("pool", "ours")):
                mb, seconds = _sink_in_child(side, n_sink)
                mem[side].append(mb)
                took[side].append(seconds)
        m, ms = median_spread(mem["ours"])
        g, gs = median_spread(mem["pool"])
        rate, pool_rate = n_sink / median_spread(took["ours"])[0], n_sink / median_spread(took["pool"])[0]
        rows.append(Row("items", f"{n_sink:,} items into a sink (into=): peak RSS growth", m, g,
                        "ThreadPoolExecutor(4).map, each result to the sink and dropped", "MB", ms, "< 100 MB",
                        "yes" if m < 100 else "NO",
                        note=f"both sides hand every result of `double` to the same sink (a counter) and keep none: "
                             f"ours `preprocess(double, range(N), workers=4, into=sink)`, the anchor `for v in "
                             f"pool.map(double, range(N)): sink(v)` (map submits every item before the first "
                             f"result: a future per item); anchor {gs}. Each sample in a fresh interpreter, after "
                             f"an untimed run of 1,000 items; psutil RSS every 10 ms. {rate:,.0f} items/s through "
                             f"our sink, {pool_rate:,.0f} through the anchor's"))
    finally:
        s.shutdown()
    return rows
