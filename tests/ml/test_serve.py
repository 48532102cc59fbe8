"""Serving: batched answers equal model.predict; stats on the card; close
drains; the async text stream learns with live accuracy."""

import asyncio
import contextlib
import random
import threading

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier

from notebook_ext.core import Scheduler
from notebook_ext.ml import learn_stream, serve
from notebook_ext.ml._serve import FIELDS
from notebook_ext.testing import FakeClock, wait_until


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, LogisticRegression(max_iter=2000).fit(X, y)


class CountingModel:
    def __init__(self, model):
        self.model, self.calls, self.sizes = model, 0, []

    def predict(self, X):
        self.calls += 1
        self.sizes.append(len(X))
        return self.model.predict(X)


class GatedModel(CountingModel):
    """Its first predict call waits for ``gate``: requests queue up behind it."""

    def __init__(self, model):
        super().__init__(model)
        self.entered, self.gate = threading.Event(), threading.Event()

    def predict(self, X):
        if self.calls == 0:
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        return super().predict(X)


@contextlib.contextmanager
def held_batcher(model, X, sched):
    """A predictor whose batcher is held at the gate by the batch of its first
    request (``X[0]``), so what comes next queues; closed on the way out."""
    gated = GatedModel(model)
    predictor = serve(gated, max_batch=64, max_wait_ms=0, scheduler=sched)
    try:
        first = predictor._enqueue(X[0])
        assert gated.entered.wait(10)
        yield gated, predictor, first
    finally:
        predictor.close()


def test_thousand_concurrent_requests_are_batched_and_exact(sched, digits):
    X, model = digits
    counting = CountingModel(model)
    predictor = serve(counting, max_batch=64, max_wait_ms=5, scheduler=sched)
    rows = X[np.arange(1000) % len(X)]

    async def main():  # the caller's own loop, as in a notebook cell
        return await asyncio.gather(*(predictor.predict(x) for x in rows))

    answers = asyncio.run(main())
    assert np.array_equal(np.array(answers), model.predict(rows))
    assert counting.calls <= 2 * 1000 / 64, counting.calls
    predictor.close()
    job = predictor.job
    assert job.state == "done"
    stats = job.detail.stats
    assert stats.requests == 1000 and stats.mean_batch > 10
    assert stats.p50_ms > 0 and stats.p99_ms >= stats.p50_ms


def test_close_drains_pending_requests(sched, digits):
    X, model = digits
    predictor = serve(model, max_batch=8, max_wait_ms=50, scheduler=sched)
    futs = [predictor._enqueue(x) for x in X[:20]]
    predictor.close()
    assert [f.result(5) for f in futs] == list(model.predict(X[:20]))
    with pytest.raises(RuntimeError, match="closed"):
        predictor.predict_sync(X[0])


def test_predict_errors_reach_every_waiter(sched):
    class Broken:
        def predict(self, X):
            raise ValueError("model exploded")

    predictor = serve(Broken(), scheduler=sched)
    with pytest.raises(ValueError, match="model exploded"):
        predictor.predict_sync([1.0, 2.0])
    predictor.close()
    with pytest.raises(TypeError, match="predict"):
        serve(object(), scheduler=sched)


WORDS = {1: ["great", "love", "excellent", "happy", "wonderful"], 0: ["awful", "hate", "terrible", "sad", "boring"]}


async def reviews(n, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(WORDS[label], k=4) + rng.choices(["the", "movie", "was", "a", "plot"], k=4)
        rng.shuffle(words)
        await asyncio.sleep(0)
        yield " ".join(words), label


def test_async_text_stream_learns_with_live_accuracy(sched):
    seen = []
    sched.subscribe(lambda s: seen.append(s) if s.kind == "stream" else None)
    job = learn_stream(reviews(2000), SGDClassifier(random_state=0), classes=[0, 1],
                       transform=HashingVectorizer(n_features=2**12).transform, batch_size=50, scheduler=sched)
    model = job.result(timeout=60)
    acc = job.metrics["accuracy"]
    assert len(acc) >= 30 and acc[-1][1] > 0.9
    assert model.predict(HashingVectorizer(n_features=2**12).transform(["love great wonderful"]))[0] == 1


def test_predict_many_answers_blocks_in_order_alongside_single_requests(sched, digits):
    X, model = digits
    counting = CountingModel(model)
    predictor = serve(counting, max_batch=64, max_wait_ms=20, scheduler=sched)
    try:
        async def burst():
            blocks = [predictor.predict_many(X[i:i + 10]) for i in range(0, 200, 10)]
            singles = [predictor.predict(x) for x in X[200:260]]
            big = predictor.predict_many(X[:500])  # bigger than max_batch: its own predict call
            empty = predictor.predict_many(X[:0])
            return await asyncio.gather(asyncio.gather(*blocks), asyncio.gather(*singles), big, empty)

        blocks, singles, big, empty = asyncio.run(burst())
        expected = model.predict(X[:500])
        np.testing.assert_array_equal(np.concatenate(blocks), expected[:200])
        assert list(singles) == list(model.predict(X[200:260]))
        np.testing.assert_array_equal(big, expected)
        assert len(empty) == 0
        assert counting.calls < 20 + 60  # blocks and singles were batched together
        with pytest.raises(ValueError, match="must be 2-D"):
            asyncio.run(predictor.predict_many(X[0]))
    finally:
        predictor.close()
    assert predictor.requests == 200 + 60 + 500  # rows, not calls


def test_a_request_that_waited_behind_a_busy_batcher_is_not_held_max_wait_again(digits):
    X, model = digits
    clock = FakeClock()
    s = Scheduler(slots=2, history=None, clock=clock)
    gated = GatedModel(model)
    predictor = serve(gated, max_batch=2, max_wait_ms=60_000, scheduler=s)
    try:
        first = [predictor._enqueue(x) for x in X[:2]]  # a full batch: predicted at once, then held at the gate
        assert gated.entered.wait(10)
        late = predictor._enqueue(X[2])
        clock.advance(120)  # it waited longer than max_wait behind the busy batcher
        gated.gate.set()
        assert [f.result(10) for f in first] == list(model.predict(X[:2]))
        # its batch goes at once, not after another max_wait (a minute of the fake
        # clock: the batcher would wait for it in real time, and fail this timeout)
        assert late.result(timeout=5) == model.predict(X[2:3])[0]
    finally:
        predictor.close()
        s.shutdown()
    assert gated.calls == 2


def test_callers_on_two_loops_and_plain_code_share_a_batch_and_get_their_own_answers(sched, digits):
    X, model = digits
    with held_batcher(model, X, sched) as (gated, predictor, first):
        answers = {}

        def caller(name, rows):
            async def main():
                return await asyncio.gather(*(predictor.predict(x) for x in rows))
            answers[name] = asyncio.run(main())

        threads = [threading.Thread(target=caller, args=(name, X[i:i + 20]))
                   for name, i in (("a", 1), ("b", 21))]
        for t in threads:
            t.start()
        plain = [predictor._enqueue(x) for x in X[41:61]]
        wait_until(lambda: len(predictor._incoming) == 60 * FIELDS, timeout=10)
        gated.gate.set()
        for t in threads:
            t.join(10)
        expected = list(model.predict(X[:61]))
        assert first.result(10) == expected[0]
        assert list(answers["a"]) == expected[1:21] and list(answers["b"]) == expected[21:41]
        assert [f.result(10) for f in plain] == expected[41:61]
        assert gated.calls == 2  # the 60 waiting requests, from three callers, in one batch


def test_a_cancelled_request_leaves_its_batch_answered_and_the_batcher_serving(sched, digits):
    X, model = digits
    with held_batcher(model, X, sched) as (gated, predictor, first):
        dropped = predictor._enqueue(X[1])  # a concurrent future, cancelled while it waits
        kept = predictor._enqueue(X[2])

        async def main():
            tasks = [asyncio.ensure_future(predictor.predict(x)) for x in X[3:6]]
            await asyncio.sleep(0)  # each request is in the queue
            tasks[1].cancel()
            await asyncio.get_running_loop().run_in_executor(None, gated.gate.set)
            return await asyncio.gather(*tasks, return_exceptions=True)

        assert dropped.cancel()
        results = asyncio.run(main())
        expected = list(model.predict(X[:6]))
        assert first.result(10) == expected[0] and kept.result(10) == expected[2]
        assert results[0] == expected[3] and results[2] == expected[5]
        assert isinstance(results[1], asyncio.CancelledError)
        assert predictor.predict_sync(X[6]) == model.predict(X[6:7])[0]  # still serving
        assert predictor.job.state == "running"
    assert predictor.job.state == "done"


def test_blocks_and_rows_queued_together_never_make_a_batch_over_max_batch(sched, digits):
    X, model = digits
    with held_batcher(model, X, sched) as (gated, predictor, first):
        async def main():  # two blocks of 10 rows, then 62 single rows: 82 rows in all
            blocks = [predictor.predict_many(X[i:i + 10]) for i in (1, 11)]
            singles = [predictor.predict(x) for x in X[21:83]]
            tasks = [asyncio.ensure_future(c) for c in blocks + singles]
            await asyncio.sleep(0)  # every request is in the queue before the gate opens
            await asyncio.get_running_loop().run_in_executor(None, gated.gate.set)
            return await asyncio.gather(*tasks)

        answers = asyncio.run(main())
        expected = model.predict(X[:83])
        assert first.result(10) == expected[0]
        np.testing.assert_array_equal(np.concatenate(answers[:2]), expected[1:21])
        assert list(answers[2:]) == list(expected[21:83])
        assert max(gated.sizes) <= 64 and sum(gated.sizes) == 83, gated.sizes
