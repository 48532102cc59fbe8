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

#: A request is FIELDS entries in a row of the batcher's deque: the row (or rows), its
#: future, the caller's loop (None: a concurrent future), its arrival, its rows (0: one,
#: n: a block, _CLOSE: the end). Not a tuple each: in a burst, every object alive until
#: the answer is more for the garbage collector to scan, and more collections.
FIELDS = 5
_CLOSE = -1

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
        self._now = self._clock.monotonic
        self._incoming: collections.deque = collections.deque()
        self._signalled = False
        self._wake_t = threading.Event()
        self._stopping = False
        self._ready: concurrent.futures.Future = concurrent.futures.Future()
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
    def _submit(self, request: tuple) -> None:
        if self._closed:
            raise RuntimeError("this predictor is closed")
        if not self._running:  # only the first requests wait for the batcher (no lock per call)
            self._ready.result(timeout=10)
        # One `extend` of a tuple is one step for other threads (it runs no
        # Python code and frees no object), so a request's fields stay together.
        self._incoming.extend(request)
        # No lock: the batcher clears the flag *before* it looks at the deque
        # again, so a request is either seen there or signals (twice is harmless).
        if self._signalled:
            return
        self._signalled = True
        self._wake_t.set()

    async def predict(self, x: Any) -> Any:
        """Predict one sample (a 1-D feature row); answered from a batch."""
        if self._closed:  # `_submit` inlined: the per-request path of a burst
            raise RuntimeError("this predictor is closed")
        if not self._running:
            self._ready.result(timeout=10)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._incoming.extend((np.asarray(x), fut, loop, self._now(), 0))  # as in `_submit`
        if not self._signalled:
            self._signalled = True
            self._wake_t.set()
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
            self._submit((X, fut, loop, self._now(), len(X)))
        else:
            fut.set_result(np.empty(0))  # no rows, no predictions (a model may refuse an empty X)
        return await fut

    def predict_sync(self, x: Any, timeout: float | None = 30) -> Any:
        """Blocking `predict`, for plain code."""
        return self._enqueue(x).result(timeout)

    def _enqueue(self, x: Any) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._submit((np.asarray(x), fut, None, self._now(), 0))
        return fut

    def close(self, timeout: float = 30) -> None:
        """Stop taking requests, answer the pending ones, end the job."""
        if not self._closed:
            self._ready.result(timeout=10)
            self._submit((None, None, None, self._now(), _CLOSE))
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
        # the batcher publishes these while busy: one pass over the latencies, one percentile call
        lat = np.fromiter(self._latencies, float, len(self._latencies)) if self._latencies else np.zeros(1)
        p50, p99 = np.percentile(lat, [50, 99]) * 1000
        return {"requests": self.requests, "batches": self.batches,
                "mean_batch": self.requests / self.batches if self.batches else 0.0,
                "requests_per_s": self.rate.per_second(at), "p50_ms": float(p50),
                "p99_ms": float(p99), "rate_window_s": self.rate.window}

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
        """The next batch (its requests' fields, flat): what is waiting, topped
        up until ``max_wait`` after the arrival of its oldest request (a
        request that already waited behind a busy batcher is not held longer)."""
        wake = self._wake_t
        incoming = self._incoming
        now = self._now
        while not incoming:
            if self._stopping:
                return [], True
            due = self._publish_due()
            if not wake.wait(None if due is None else max(0.0, due - now())):
                return [], False  # no request, but the card is due its numbers
            wake.clear()
            self._signalled = False
        popleft = incoming.popleft
        batch: list = []
        rows = 0
        max_batch = self.max_batch
        while True:
            k = min(len(incoming) // FIELDS, max_batch - rows)
            if k > 0:
                taken = [popleft() for _ in range(k * FIELDS)]
                if any(taken[4::FIELDS]):  # a block or the end: one request at a time
                    rows, closing, full = self._take_one_by_one(batch, rows, taken)
                    if closing or full:
                        return batch, closing
                else:
                    batch += taken
                    rows += k
            left = batch[3] + self.max_wait - now()
            if rows >= max_batch or left <= 0 or self._stopping:
                return batch, False
            wake.clear()
            self._signalled = False
            if incoming:
                continue
            wake.wait(left)

    def _take_one_by_one(self, batch: list, rows: int, taken: list) -> tuple[int, bool, bool]:
        """Add the requests in ``taken`` to ``batch`` up to a block that does
        not fit or the end; what is left goes back to the front of the deque.
        Returns the batch's rows, whether the end came, whether it is full."""
        for i in range(0, len(taken), FIELDS):
            n = taken[i + 4]
            if n == _CLOSE:  # the requests after it, if any raced in, are answered on the way out
                self._incoming.extendleft(reversed(taken[i + FIELDS:]))
                return rows, True, True
            n = n or 1
            if batch and rows + n > self.max_batch:  # it waits for the next batch
                self._incoming.extendleft(reversed(taken[i:]))
                return rows, False, True
            batch += taken[i:i + FIELDS]
            rows += n
        return rows, False, rows >= self.max_batch

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
        incoming = self._incoming
        queued = [incoming.popleft() for _ in range(len(incoming))]
        leftover = [f for i in range(0, len(queued), FIELDS) if queued[i + 4] != _CLOSE
                    for f in queued[i:i + FIELDS]]
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
        xs, futs, callers, arrivals, ns = (batch[i::FIELDS] for i in range(FIELDS))
        blocks = any(ns)
        try:
            if blocks:
                X = np.concatenate([x if n else x[None, :] for x, n in zip(xs, ns)])
            else:
                # np.array, not np.stack: the same array (and the same error for
                # rows of unequal shapes) at a third of the cost
                X = np.array(xs)
            y = self.model.predict(X)
            self.predict_calls += 1
        except Exception as exc:  # noqa: BLE001 - every waiter gets the error
            _fail(batch, exc)
            return
        done = self._now()
        if blocks:
            answers: Any = []
            start = 0
            for n in ns:
                answers.append(y[start:start + n] if n else y[start])
                start += n or 1
            rows = start
        else:
            answers, rows = y, len(xs)
        self._latencies.extend([done - t0 for t0 in arrivals])
        if callers.count(callers[0]) == len(callers):  # the usual case: one caller loop
            _deliver(callers[0], futs, answers)
        else:
            for caller, (futs_, values) in _by_caller(callers, futs, answers).items():
                _deliver(caller, futs_, values)
        self.requests += rows
        self.batches += 1
        self.rate.add(min(arrivals), done, rows)
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


def _set_all(futs: list, values: Any, error: BaseException | None = None) -> None:
    """Answer ``futs`` (asyncio futures on their loop's thread): ``values`` in
    order, or ``error`` to all (``values`` is then any list as long)."""
    for fut, value in zip(futs, values):
        if fut.done():  # cancelled by its caller: nobody waits for the answer
            continue
        try:
            if error is None:
                fut.set_result(value)
            else:
                fut.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass  # a concurrent future its caller cancelled (from its thread) since `done()`


def _deliver(caller: Any, futs: list, values: Any, error: BaseException | None = None) -> None:
    if caller is None:  # concurrent futures: thread-safe already
        _set_all(futs, values, error)
        return
    try:  # one hop per batch and caller loop, not one per request
        caller.call_soon_threadsafe(_set_all, futs, values, error)
    except RuntimeError:
        pass  # that loop is closed: nobody is waiting


def _by_caller(callers: list, futs: list, values: Any) -> dict[Any, tuple[list, list]]:
    groups: dict[Any, tuple[list, list]] = {}
    for caller, fut, value in zip(callers, futs, values):
        group = groups.get(caller)
        if group is None:
            group = groups[caller] = ([], [])
        group[0].append(fut)
        group[1].append(value)
    return groups


def _fail(batch: list, exc: BaseException) -> None:
    futs = batch[1::FIELDS]
    for caller, (futs_, _) in _by_caller(batch[2::FIELDS], futs, futs).items():
        _deliver(caller, futs_, futs_, exc)


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
