"""A serving card's rate is the rate now (the last few seconds), not an
average over the job's life with its idle time; its progress counts requests."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from faults.conftest import kernel, run_in  # noqa: F401 - the real-kernel fixture, shared
from notebook_ext.core import Scheduler
from notebook_ext.ml import serve
from notebook_ext.ui import snapshot_state, status_line

BURST = r"""
rows = X[np.arange(30_000) % len(X)]

async def client(chunk):  # 64 callers, each awaiting its answers one by one
    for r in chunk:
        await predictor.predict(r)

t0 = time.perf_counter()
await asyncio.gather(*(client(rows[i::64]) for i in range(64)))
measured = len(rows) / (time.perf_counter() - t0)
wait_until(lambda: (card.snap.get("serving") or {}).get("requests") == len(rows), timeout=10)
print(json.dumps({"measured": measured, "card": card.snap}))
"""


@pytest.mark.kernel
@pytest.mark.slow
def test_the_serve_card_shows_the_rate_of_the_burst_and_counts_requests(kernel):
    kc = kernel()
    run_in(kc, "%load_ext notebook_ext\nimport asyncio, json, time\nimport numpy as np, notebook_ext as nx\n"
               "from sklearn.datasets import load_digits\nfrom sklearn.linear_model import LogisticRegression\n"
               "from notebook_ext.testing import wait_until\n"
               "X, y = load_digits(return_X_y=True)\nmodel = LogisticRegression(max_iter=2000).fit(X, y)\n"
               "predictor = nx.ml.serve(model, max_batch=64, max_wait_ms=5, name='api')\n"
               "card = nx.ui.card(predictor.job)\ndisplay(card)\n"
               "wait_until(lambda: predictor.job.state == 'running')\n"
               "time.sleep(2)  # the scenario, not a wait: the server idles before the burst\n")
    msgs = run_in(kc, BURST)
    out = json.loads("".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream"))
    measured, card = out["measured"], out["card"]
    shown = card["serving"]["requests_per_s"]
    assert abs(shown - measured) <= 0.2 * measured, (shown, measured)  # the burst's rate, not the life's average
    assert card["unit"] == "requests" and card["done"] == 30_000  # "30000 requests", not "30000 steps"
    run_in(kc, "predictor.close()")


def test_the_rate_falls_to_zero_when_idle():
    from notebook_ext.ml._serve import RequestRate

    rate = RequestRate(window=5.0)
    assert rate.per_second(now=100.0) == 0.0
    rate.add(arrived=100.0, done=100.5, n=1000)  # a burst of half a second after an idle spell
    assert rate.per_second(now=100.5) == pytest.approx(2000)
    assert rate.per_second(now=101.0) == pytest.approx(1000)  # idle: the rate falls ...
    assert rate.per_second(now=105.6) == 0.0  # ... to 0 once the burst is out of the window
    for i in range(20):  # steady traffic (100/s) for longer than the window
        rate.add(arrived=200.0 + i * 0.5, done=200.0 + i * 0.5 + 0.01, n=50)
    assert rate.per_second(now=209.75) == pytest.approx(100, rel=0.1)  # within one batch's share


def test_the_text_renderers_count_requests():
    X, y = load_digits(return_X_y=True)
    s = Scheduler(slots=2, history=None)
    try:
        predictor = serve(LogisticRegression(max_iter=200).fit(X[:300], y[:300]), name="api", scheduler=s)
        for x in X[:20]:
            predictor.predict_sync(x)
        predictor.close()
        snap = predictor.job.snapshot()
    finally:
        s.shutdown()
    assert "20 requests" in status_line(snap) and "steps" not in status_line(snap)
    assert snapshot_state(snap)["unit"] == "requests"
    assert snap.detail.stats.requests == 20 and np.isfinite(snap.detail.stats.requests_per_s)
