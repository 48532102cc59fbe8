"""card.js in Chromium draws what the kernel says a search and a serving
card mean: what the leaderboard leaves out, the sub-jobs in words, the
executor that ran the folds, requests (not steps) and the rate now."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from notebook_ext.core import Scheduler
from notebook_ext.ml import search, serve
from notebook_ext.ui import snapshot_state
from notebook_ext.ui._render import children_summary

pytestmark = [pytest.mark.browser]


def draw(page, state):
    page.evaluate("""(snap) => {
        const el = document.createElement("div");
        document.body.replaceChildren(el);
        const values = { kind: "card", snap, displays: [] };
        const model = { get: (k) => values[k], on() {}, off() {}, send() {} };
        window.card.default.render({ model, el });
    }""", state)
    return page.locator("body").inner_text()


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


def test_a_search_card_in_words(card_js, sched):
    X, y = load_iris(return_X_y=True)
    job = search(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4], "min_samples_leaf": [1, 2, 4, 8]},
                 X, y, cv=3, executor="thread", scheduler=sched)
    job.result(timeout=120)
    text = draw(card_js, snapshot_state(job.snapshot(), children_summary(c.state for c in job.children)))
    assert "showing the best 15 of 16 candidates" in text
    assert "1 sub-job done" in text and "jobs:" not in text
    assert card_js.locator(".nbx-executor").inner_text() == "thread"


def test_a_card_saved_before_children_text_says_its_sub_jobs_in_the_same_words(card_js, sched):
    X, y = load_iris(return_X_y=True)
    job = search(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, X, y, cv=2, executor="thread",
                 scheduler=sched)
    job.result(timeout=120)
    state = snapshot_state(job.snapshot(), {"total": 3, "running": 1, "done": 2})
    new = draw(card_js, state)
    assert "3 sub-jobs: 1 running, 2 done" in new
    old = {k: v for k, v in state.items() if k != "children_text"}  # as the extension finds it in a notebook
    assert "3 sub-jobs: 1 running, 2 done" in draw(card_js, old)
    state = snapshot_state(job.snapshot(), {"total": 1, "timed_out": 1})
    old = {k: v for k, v in state.items() if k != "children_text"}
    assert draw(card_js, old).count("1 sub-job timed out") == 1 == draw(card_js, state).count("1 sub-job timed out")


def test_a_serving_card_counts_requests_and_says_its_window(card_js, sched):
    X, y = load_iris(return_X_y=True)
    predictor = serve(LogisticRegression(max_iter=500).fit(X, y), name="api", scheduler=sched)
    for x in X[:30]:
        predictor.predict_sync(x)
    predictor.close()
    state = snapshot_state(predictor.job.snapshot())
    text = draw(card_js, state)
    assert card_js.locator(".nbx-progress-text").inner_text() == "30 requests"
    assert "req/s (last 5 s)" in card_js.locator(".nbx-serving").inner_text()
    assert np.isfinite(state["serving"]["requests_per_s"]) and "steps" not in text
