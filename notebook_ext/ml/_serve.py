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
import threading
from typing import Any, AsyncIterable, Callable

import numpy as np

from ..core import Job, JobDetail, current_job, get_scheduler, report
from ..core.lowlevel import Throttle, current_context, format_number, job_context
from ._details import ServingDetail, ServingStats

_CLOSE = object()

#: how often the card gets the batcher's numbers while it is busy; after a
#: burst, at once (unless sent in the last SETTLE seconds); while idle with
#: requests in the rate window, every DECAY_EVERY seconds (the rate falls)
PUBLISH_EVERY = 0.25
SETTLE = 0.05
DECAY_EVERY = 1.0


class RequestRate:
    """Requests answered per second over the last ``window`` seconds.

    Counted from the arrival of the oldest request still in the window (or
    the window's start, whichever is later) to now: a burst after a pause
    is measured over the burst, not over the pause before it, and as the
    server idles the rate falls, to 0 once the window holds no request.
    Thread-safe: the batcher adds, anyone reads.
    """

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._batches: collections.deque = collections.deque()  # (first arrival, answered, requests)
        self._count = 0
        self._lock = threading.Lock()

    def add(self, arrived: float, done: float, n: int) -> None:
        """``n`` requests answered at ``done``, the first of them sent at ``arrived``."""
        with self._lock:
            self._batches.append((arrived, done, n))
            self._count += n
            self._forget(done - self.window)

    def per_second(self, now: float) -> float:
        with self._lock:
            cutoff = now - self.window
            self._forget(cutoff)
            if not self._batches:
                return 0.0
            span = now - max(cutoff, self._batches[0][0])
            return self._count / span if span > 0 else 0.0

    def _forget(self, cutoff: float) -> None:
        batches = self._batches
        while batches and batches[0][1] < cutoff:
            self._count -= batches.popleft()[2]


class Predictor:
    """Handle returned by `serve`. ``await predict(x)`` from any event loop.

    Requests go into a thread-safe deque; the batcher is woken once per
    burst, not once per request, and answers go back to each caller's loop
    with one call per batch, so the per-request overhead stays small.
    """

    def __init__(self, model: Any, max_batch: int, max_wait_ms: float, scheduler: Any) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._sched = scheduler
        self._clock = scheduler.clock  # arrivals, waits and latencies
        self._incoming: collections.deque = collections.deque()
        self._signalled = False
        self._wake_t = threading.Event()
        self._stopping = False
        self._ready = concurrent.futures.Future()
        self._running = False
        self._closed = False
        self.requests = 0
        self.batches = 0
        self.predict_calls = 0
        self._latencies: collections.deque = collections.deque(maxlen=5000)
        self.rate = RequestRate()
        self._unpublished = False  # answers the card does not show yet
        self._answered_at = 0.0  # when the latest batch was answered
        self._pace = Throttle(PUBLISH_EVERY, self._clock)  # when the card last got the numbers
        self._published_rate = 0.0
        self.job: Job | None = None

    # -- client side (any thread, any loop) ---------------------------------------
    def _submit(self, item: Any) -> None:
        if self._closed:
            raise RuntimeError("this predictor is closed")
        if not self._running:  # only the first requests wait for the batcher (no lock per call)
            self._ready.result(timeout=10)
        self._incoming.append(item)
        # No lock: the batcher clears the flag *before* it looks at the deque
        # again, so a request is either seen there or signals (twice is harmless).
        if self._signalled:
            return
        self._signalled = True
        self._wake_t.set()

    async def predict(self, x: Any) -> Any:
        """Predict one sample (a 1-D feature row); answered from a batch."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._submit((np.asarray(x), fut, loop, self._clock.monotonic(), 0))
        return await fut

    async def predict_many(self, X: Any) -> Any:
        """Predict a block of rows (2-D) as one request: the answer is the
        array of their predictions, in order. A block joins other requests
        in a batch; one larger than ``max_batch`` is predicted on its own.

        Examples
        --------
        >>> labels = await predictor.predict_many(X_new)   # doctest: +SKIP
        """
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"`X` must be 2-D (rows of features), got shape {X.shape}")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if len(X):
            self._submit((X, fut, loop, self._clock.monotonic(), len(X)))
        else:
            fut.set_result(np.empty(0))  # no rows, no predictions (a model may refuse an empty X)
        return await fut

    def predict_sync(self, x: Any, timeout: float | None = 30) -> Any:
        """Blocking `predict`, for plain code."""
        return self._enqueue(x).result(timeout)

    def _enqueue(self, x: Any) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._submit((np.asarray(x), fut, None, self._clock.monotonic(), 0))
        return fut

    def close(self, timeout: float = 30) -> None:
        """Stop taking requests, answer the pending ones, end the job."""
        if not self._closed:
            self._ready.result(timeout=10)
            self._submit(_CLOSE)
            self._closed = True
        if self.job is not None:
            self.job.wait(timeout)

    async def aclose(self) -> None:
        """`close` for coroutines: does not block the calling loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def stats(self) -> dict[str, float]:
        """Requests answered so far, and the rate now (over the last
        ``rate_window_s`` seconds: 0 when idle that long), batch size and
        latencies."""
        return self._stats(self._clock.monotonic())

    def _stats(self, at: float) -> dict[str, float]:
        lat = np.array(self._latencies) * 1000 if self._latencies else np.array([0.0])
        return {"requests": self.requests, "batches": self.batches,
                "mean_batch": self.requests / self.batches if self.batches else 0.0,
                "requests_per_s": self.rate.per_second(at), "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)), "rate_window_s": self.rate.window}

    def _publish_due(self) -> float | None:
        """When the card should next get the numbers (None: not until a request comes)."""
        if self._unpublished:  # busy: now and then; a burst's end: at once
            return self._pace.next_at(PUBLISH_EVERY if self._incoming else SETTLE)
        if self._published_rate > 0:  # idle: the rate the card shows falls
            return self._pace.next_at(DECAY_EVERY)
        return None

    # -- the batcher (a thread of its own) ---------------------------------------
    # A thread, not a coroutine handing each batch to an executor: that cost
    # two thread hops per batch (loop -> executor -> loop), each waiting for
    # the GIL behind a busy client. The job's coroutine only owns the thread.
    def _take(self) -> tuple[list, bool]:
        """The next batch: what is waiting, topped up for up to max_wait."""
        wake = self._wake_t
        while not self._incoming:
            if self._stopping:
                return [], True
            due = self._publish_due()
            if not wake.wait(None if due is None else max(0.0, due - self._clock.monotonic())):
                return [], False  # no request, but the card is due its numbers
            wake.clear()
            self._signalled = False
        batch: list = []
        rows = 0
        deadline = self._clock.monotonic() + self.max_wait
        while True:
            while self._incoming and rows < self.max_batch:
                item = self._incoming[0]
                if item is _CLOSE:
                    self._incoming.popleft()
                    return batch, True
                n = item[4] or 1
                if batch and rows + n > self.max_batch:
                    return batch, False  # a block that does not fit waits for the next batch
                batch.append(self._incoming.popleft())
                rows += n
            left = deadline - self._clock.monotonic()
            if rows >= self.max_batch or left <= 0 or self._stopping:
                return batch, False
            wake.clear()
            self._signalled = False
            if self._incoming:
                continue
            wake.wait(left)

    def _serve_batches(self) -> None:
        closing = False
        while not closing and not self._stopping:
            batch, closing = self._take()
            if batch:
                self._answer(batch)
            due = self._publish_due()
            if due is not None and self._clock.monotonic() >= due:
                self._publish()
        self._closed = True
        leftover = [i for i in self._incoming if i is not _CLOSE]
        self._incoming.clear()
        if self._stopping:
            _fail(leftover, RuntimeError("the predictor was cancelled"))
        elif leftover:
            self._answer(leftover)
        self._publish()

    async def _run(self) -> dict[str, float]:
        self.job = current_job()
        loop = asyncio.get_running_loop()
        ended: asyncio.Future = loop.create_future()
        ctx = current_context()

        def body() -> None:
            try:
                if ctx is None:
                    self._serve_batches()
                else:
                    with job_context(ctx):  # its rate, batch size and p99 go to the card
                        self._serve_batches()
            except BaseException as exc:  # noqa: BLE001 - the job's error
                loop.call_soon_threadsafe(_settle, ended, exc)
            else:
                loop.call_soon_threadsafe(_settle, ended, None)

        thread = threading.Thread(target=body, name="notebook_ext-serve-batcher", daemon=True)
        thread.start()
        self._running = True
        self._ready.set_result(True)
        try:
            await ended
        except asyncio.CancelledError:
            self._stopping = True
            self._closed = True
            self._wake_t.set()
            raise
        return self.stats()

    def _answer(self, batch: list) -> None:
        blocks = any(item[4] for item in batch)
        try:
            if blocks:
                X = np.concatenate([item[0] if item[4] else item[0][None, :] for item in batch])
            else:
                X = np.stack([item[0] for item in batch])
            y = self.model.predict(X)
            self.predict_calls += 1
        except Exception as exc:  # noqa: BLE001 - every waiter gets the error
            _fail(batch, exc)
            return
        done = self._clock.monotonic()
        by_loop: dict[Any, list] = {}
        latencies = self._latencies
        if blocks:
            answers, start = [], 0
            for item in batch:
                n = item[4] or 1
                answers.append(y[start:start + n] if item[4] else y[start])
                start += n
        else:
            answers = y
        rows = 0
        first = done
        for (_, fut, caller, t0, n), value in zip(batch, answers):
            latencies.append(done - t0)
            first = min(first, t0)
            rows += n or 1
            pairs = by_loop.get(caller)
            if pairs is None:
                pairs = by_loop[caller] = []
            pairs.append((fut, value))
        for caller, pairs in by_loop.items():
            _deliver(caller, pairs)
        self.requests += rows
        self.batches += 1
        self.rate.add(first, done, rows)
        self._answered_at = done
        self._unpublished = True

    def _publish(self) -> None:
        fresh = self._unpublished  # new answers: a point on the p99 curve (not one per idle second)
        # New answers are shown as of the latest (SETTLE later, the rate has not fallen: it was
        # our throttle, not the callers, that waited); an idle tick, as of now.
        stats = self._stats(self._answered_at if fresh else self._clock.monotonic())
        self._pace.mark()
        self._published_rate = stats["requests_per_s"]
        self._unpublished = False
        report(self.requests, None,
               f"{format_number(stats['requests_per_s'])} req/s (last {format_number(stats['rate_window_s'])} s), "
               f"batch {format_number(stats['mean_batch'])}",
               **({"p99_ms": stats["p99_ms"]} if fresh else {}))
        if self.job is not None:
            self.job.set_detail(ServingDetail(curve="p99_ms", stats=ServingStats(**stats)))


def _settle(fut: asyncio.Future, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


def _set_all(pairs: list, error: BaseException | None = None) -> None:
    for fut, value in pairs:
        if not fut.done():
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)


def _deliver(caller: Any, pairs: list, error: BaseException | None = None) -> None:
    if caller is None:  # concurrent futures: thread-safe already
        _set_all(pairs, error)
        return
    try:  # one hop per batch and caller loop, not one per request
        caller.call_soon_threadsafe(_set_all, pairs, error)
    except RuntimeError:
        pass  # that loop is closed: nobody is waiting


def _fail(batch: list, exc: BaseException) -> None:
    by_loop: dict[Any, list] = {}
    for item in batch:
        if item is not _CLOSE:
            by_loop.setdefault(item[2], []).append((item[1], None))
    for caller, pairs in by_loop.items():
        _deliver(caller, pairs, exc)


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
    job = sched.submit(predictor._run, name=name, kind="serve", detail=ServingDetail(curve="p99_ms"),
                       params={"model": model, "max_batch": max_batch, "max_wait_ms": max_wait_ms})
    predictor.job = job
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

    return sched.submit(run, name=name, kind="stream", detail=JobDetail(curve="accuracy"),
                        params={"model": model, "batch_size": batch_size})
