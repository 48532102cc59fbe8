"""Serving: batched answers equal model.predict; stats on the card; close
drains; the async text stream learns with live accuracy."""

import asyncio
import random

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier

from notebook_ext.core import Scheduler
from notebook_ext.ml import learn_stream, serve


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
        self.model, self.calls = model, 0

    def predict(self, X):
        self.calls += 1
        return self.model.predict(X)


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
