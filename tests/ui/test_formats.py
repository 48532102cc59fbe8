"""One number format on every card: the text renderers, the job messages and
the leaderboard write numbers the way card.js draws them (the browser test
tests/browser/test_card_js.py checks card.js against the same rule)."""

import asyncio

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from notebook_ext.core import Scheduler
from notebook_ext.core.lowlevel import format_number, format_value
from notebook_ext.ml import search, serve
from notebook_ext.ui import snapshot_state, status_line

# (value, text): the rule card.js implements too
CASES = [
    (4064.2, "4064"), (4064, "4064"), (1.0, "1"), (0.95333, "0.9533"), (28.765041432546976, "28.77"),
    (np.float64(28.765041432546976), "28.77"), (np.int64(5), "5"), (0.0001234, "0.0001234"),
    (0.00001234, "1.234e-05"), (0, "0"), (1e20, "1.000e+20"), (float("nan"), "–"), (None, "–"),
    (-3.5, "-3.5"), (12.0, "12"), (2_000_000, "2000000"), (0.5, "0.5"), (1e-5, "1e-05"),
]


@pytest.mark.parametrize("value, text", CASES)
def test_format_number(value, text):
    assert format_number(value) == text


def test_parameter_values_read_as_numbers_not_numpy_reprs():
    assert format_value(np.float64(28.765041432546976)) == "28.77"
    assert format_value("rbf") == "rbf" and format_value(None) == "None" and format_value((1, 2)) == "(1, 2)"


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


def test_leaderboard_of_a_random_search_shows_plain_numbers(sched):
    X, y = make_classification(300, 8, random_state=0)
    job = search(LogisticRegression(max_iter=200), {"C": loguniform(1e-2, 1e2)}, X, y, cv=2, n_iter=4,
                 random_state=0, refit=False, scheduler=sched)
    job.result(timeout=120)
    rows = snapshot_state(job.snapshot())["leaderboard"]
    assert len(rows) == 4
    for row in rows:
        assert "np." not in row["params"] and "float64" not in row["params"]
        value = row["params"].removeprefix("C=")
        assert value == format_number(float(value)), row["params"]


def test_serving_card_says_the_rate_one_way(sched):
    model = LogisticRegression().fit(*make_classification(200, 4, random_state=0))
    predictor = serve(model, name="api", scheduler=sched)

    async def main():
        return await asyncio.gather(*(predictor.predict_many(np.zeros((50, 4))) for _ in range(20)))

    asyncio.run(main())
    predictor.close()
    snap = predictor.job.snapshot()
    assert snap.detail.stats.requests == 1000
    state = snapshot_state(snap)
    rate = format_number(snap.detail.stats.requests_per_s)
    # the message (text renderers) and the serving line (card.js: num(requests_per_s)) say the same
    assert f"{rate} req/s" in state["message"] and f"{rate} req/s" in status_line(snap)
    assert state["serving"]["requests_per_s"] == snap.detail.stats.requests_per_s
