"""Serving: a fitted model behind an async micro-batching predictor, and
learning from an async stream.

Many coroutines ``await predictor.predict(x)``; the batcher (a job on the
scheduler's loop, so it has a card) gathers requests for up to
``max_wait_ms`` or ``max_batch`` rows and answers them all from one
``model.predict`` call, run in a thread so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from typing import Any, AsyncIterable, Callable

import numpy as np

from ..core import Job, current_job, get_scheduler, report

_CLOSE = object()


class Predictor:
    """Handle returned by `serve`. ``await predict(x)`` from any event loop."""

    def __init__(self, model: Any, max_batch: int, max_wait_ms: float, scheduler: Any) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._sched = scheduler
        self._queue: asyncio.Queue | None = None
        self._ready = concurrent.futures.Future()
        self._closed = False
        self.requests = 0
        self.batches = 0
        self.predict_calls = 0
        self._latencies: collections.deque = collections.deque(maxlen=5000)
        self._window: collections.deque = collections.deque()  # (time, n) for requests/s
        self.job: Job | None = None

    # -- client side (any thread, any loop) ---------------------------------------
    def _enqueue(self, x: Any) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("this predictor is closed")
        self._ready.result(timeout=10)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        item = (np.asarray(x), fut, time.perf_counter())
        self._sched._loop.call_soon_threadsafe(self._queue.put_nowait, item)  # type: ignore[union-attr]
        return fut

    async def predict(self, x: Any) -> Any:
        """Predict one sample (a 1-D feature row); answered from a batch."""
        return await asyncio.wrap_future(self._enqueue(x))

    def predict_sync(self, x: Any, timeout: float | None = 30) -> Any:
        """Blocking `predict`, for plain code."""
        return self._enqueue(x).result(timeout)

    def close(self, timeout: float = 30) -> None:
        """Stop taking requests, answer the pending ones, end the job."""
        if not self._closed:
            self._closed = True
            self._ready.result(timeout=10)
            self._sched._loop.call_soon_threadsafe(self._queue.put_nowait, _CLOSE)  # type: ignore[union-attr]
        if self.job is not None:
            self.job.wait(timeout)

    async def aclose(self) -> None:
        """`close` for coroutines: does not block the calling loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def stats(self) -> dict[str, float]:
        lat = np.array(self._latencies) * 1000 if self._latencies else np.array([0.0])
        now = time.perf_counter()
        while self._window and now - self._window[0][0] > 2.0:
            self._window.popleft()
        span = (now - self._window[0][0]) if self._window else 0.0
        rps = sum(n for _, n in self._window) / span if span > 0.05 else 0.0
        return {"requests": self.requests, "batches": self.batches,
                "mean_batch": self.requests / self.batches if self.batches else 0.0,
                "requests_per_s": rps, "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99))}

    # -- the batcher (scheduler loop) -----------------------------------------------
    async def _run(self) -> dict[str, float]:
        self.job = current_job()
        self._queue = asyncio.Queue()
        self._ready.set_result(True)
        loop = asyncio.get_running_loop()
        last_publish = 0.0
        closing = False
        try:
            while not closing:
                first = await self._queue.get()
                if first is _CLOSE:
                    break
                batch = [first]
                deadline = loop.time() + self.max_wait
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        left = deadline - loop.time()
                        if left <= 0:
                            break
                        try:
                            item = await asyncio.wait_for(self._queue.get(), left)
                        except asyncio.TimeoutError:
                            break
                    if item is _CLOSE:
                        closing = True  # answer this batch, then stop
                        break
                    batch.append(item)
                await self._answer(loop, batch)
                if time.perf_counter() - last_publish > 0.25:
                    last_publish = time.perf_counter()
                    self._publish()
            while not self._queue.empty():  # drain what came before close
                item = self._queue.get_nowait()
                if item is not _CLOSE:
                    await self._answer(loop, [item])
        except asyncio.CancelledError:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not _CLOSE:
                    item[1].set_exception(RuntimeError("the predictor was cancelled"))
            raise
        finally:
            self._closed = True
        self._publish()
        return self.stats()

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        X = np.stack([x for x, _, _ in batch])
        try:
            y = await loop.run_in_executor(None, self.model.predict, X)
            self.predict_calls += 1
        except Exception as exc:  # noqa: BLE001 - every waiter gets the error
            for _, fut, _ in batch:
                fut.set_exception(exc)
            return
        done = time.perf_counter()
        for (_, fut, t0), value in zip(batch, y):
            self._latencies.append(done - t0)
            fut.set_result(value)
        self.requests += len(batch)
        self.batches += 1
        self._window.append((done, len(batch)))

    def _publish(self) -> None:
        stats = self.stats()
        report(self.requests, None, f"{stats['requests_per_s']:.0f} req/s, batch {stats['mean_batch']:.1f}",
               p99_ms=stats["p99_ms"])
        if self.job is not None:
            self.job.set_info(serving=stats)


def serve(model: Any, *, max_batch: int = 64, max_wait_ms: float = 5, name: str | None = None,
          scheduler: Any = None) -> Predictor:
    """Put a fitted model behind an async micro-batching predictor.

    Examples
    --------
    >>> predictor = serve(model, max_batch=64)                          # doctest: +SKIP
    >>> labels = await asyncio.gather(*(predictor.predict(x) for x in X))  # doctest: +SKIP
    >>> predictor.close()                                               # doctest: +SKIP
    """
    if not hasattr(model, "predict"):
        raise TypeError(f"`model` must have a predict method, got {type(model).__name__}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"`max_batch` must be a positive integer, got {max_batch!r}")
    if not max_wait_ms >= 0:
        raise ValueError(f"`max_wait_ms` must be >= 0, got {max_wait_ms!r}")
    sched = scheduler or get_scheduler()
    predictor = Predictor(model, max_batch, max_wait_ms, sched)
    job = sched.submit(predictor._run, name=name, kind="serve",
                       params={"model": model, "max_batch": max_batch, "max_wait_ms": max_wait_ms})
    predictor.job = job
    job.set_info(curve="p99_ms")
    return predictor


def learn_stream(source: AsyncIterable[tuple[Any, Any]], model: Any, *, classes: Any,
                 transform: Callable[[list], Any] | None = None, batch_size: int = 32,
                 name: str | None = None, scheduler: Any = None) -> Job:
    """Learn from an async stream of ``(x, label)`` pairs with ``partial_fit``.

    Each mini-batch is first scored (the live, "prequential" accuracy on
    data the model has not seen), then learned. ``transform`` turns a list of
    raw inputs into features (e.g. ``HashingVectorizer().transform``).
    Fitting runs in a thread; the loop keeps reading the source.

    Examples
    --------
    >>> job = learn_stream(texts(), SGDClassifier(), classes=[0, 1],
    ...                    transform=HashingVectorizer().transform)   # doctest: +SKIP
    """
    if not hasattr(model, "partial_fit"):
        raise TypeError(f"`model` must support partial_fit, got {type(model).__name__}")
    if not hasattr(source, "__aiter__"):
        raise TypeError("`source` must be an async iterable of (x, label) pairs")
    sched = scheduler or get_scheduler()

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        seen = correct = 0
        xs: list = []
        ys: list = []

        async def step() -> None:
            nonlocal seen, correct
            X = transform(xs) if transform else np.asarray(xs)
            y = np.asarray(ys)

            def fit_batch() -> int:
                hits = int((model.predict(X) == y).sum()) if seen else 0
                model.partial_fit(X, y, classes=classes)
                return hits

            hits = await loop.run_in_executor(None, fit_batch)
            if seen:
                correct += hits
            seen += len(ys)
            acc = correct / max(1, seen - len(ys)) if seen > len(ys) else float("nan")
            report(seen, None, f"{seen} examples", accuracy=acc) if seen > len(ys) else report(seen, None)
            xs.clear()
            ys.clear()

        async for x, label in source:
            xs.append(x)
            ys.append(label)
            if len(xs) >= batch_size:
                await step()
        if xs:
            await step()
        return model

    job = sched.submit(run, name=name, kind="stream", params={"model": model, "batch_size": batch_size})
    job.set_info(curve="accuracy")
    return job
