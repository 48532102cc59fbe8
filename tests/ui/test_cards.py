"""Cards, group cards, dashboard and the pump, without a kernel (widgets
work without a frontend; their comm is inert)."""

import threading
import time

import pytest

from notebook_ext.core import Scheduler, progress, report
from notebook_ext.ui import UpdatePump, jobs_table, snapshot_state, status_line, summary_html


@pytest.fixture
def setup():
    s = Scheduler(slots=4, history=None)
    pump = UpdatePump(s)
    yield s, pump
    pump.close()
    s.shutdown()


def _spin(n, delay):
    for i in progress(range(n)):
        time.sleep(delay)
        report(loss=1.0 / (i + 1))
    return n


def test_card_follows_its_job_to_the_final_state(setup):
    s, pump = setup
    job = s.submit(_spin, 30, 0.01, name="fit")
    card = pump.card(job)
    seen = []
    card.observe(lambda ch: seen.append(ch["new"]["done"]), names="snap")
    job.result(10)
    deadline = time.monotonic() + 3
    while card.snap["state"] != "done" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert card.snap["state"] == "done" and card.snap["done"] == 30
    assert card.snap["curve"]["name"] == "loss" and len(card.snap["curve"]["points"]) == 30
    assert any(0 < d < 30 for d in seen)  # it moved in between
    assert "nbx-job-card" in card._dom_classes


def test_card_buttons_cancel_and_retry(setup):
    s, pump = setup
    job = s.submit(_spin, 10_000, 0.01, name="long")
    card = pump.card(job)
    card._on_action(card, {"action": "cancel"}, [])
    assert job.wait(3) and job.state == "cancelled"
    card._on_action(card, {"action": "retry"}, [])
    assert card.job is not job and card.job.name == "long"
    card._on_action(card, {"action": "cancel"}, [])
    assert card.job.wait(3)


def test_fifty_cards_stay_within_the_global_budget(setup):
    s, _ = setup
    pump = UpdatePump(s, budget=100.0)
    jobs = [s.submit(_spin, 300, 0.002, executor="loop" if False else "thread") for _ in range(4)]
    for j in jobs:
        for _ in range(12):
            pump.card(j)  # 48 cards on 4 busy jobs
    pump.card(jobs[0])
    pump.sent = 0
    t0 = time.monotonic()
    time.sleep(1.5)
    span = time.monotonic() - t0
    sent = pump.sent
    pump.close()
    assert sent <= 100 * span + 100 + 49  # rate + one burst + final states
    assert sent >= 20  # and it did send


def test_group_card_summarises_children(setup):
    s, pump = setup
    parent_holder = {}

    async def fan_out():
        import asyncio
        parent = parent_holder["job"]
        kids = [s.submit(time.sleep, 0.05 * i, parent=parent, name=f"kid-{i}") for i in range(4)]
        await asyncio.gather(*(k._wait_async() for k in kids))
        return len(kids)

    gate = threading.Event()

    async def starter():
        gate.wait(2)
        return await fan_out()

    parent = s.submit(starter, name="group", kind="search")
    parent_holder["job"] = parent
    card = pump.card(parent)
    gate.set()
    assert parent.result(10) == 4
    deadline = time.monotonic() + 3
    while (card.snap.get("children") or {}).get("done") != 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert card.snap["children"] == {"done": 4, "total": 4}


def test_dashboard_pages_sorts_and_acts(setup):
    s, pump = setup
    jobs = [s.submit(int, name=f"j{i}", priority=i % 3) for i in range(60)]
    s.wait(*jobs)
    dash = pump.dashboard()
    dash.refresh()
    v = dash.view
    assert v["total"] == 60 and len(v["rows"]) == 25 and v["counts"] == {"done": 60}
    dash._on_action(dash, {"action": "sort", "by": "priority"}, [])
    assert dash.view["rows"][0]["priority"] == 2
    dash._on_action(dash, {"action": "page", "page": 2}, [])
    assert dash.view["first"] == 51 and dash.view["last"] == 60
    long = s.submit(_spin, 10_000, 0.01, name="long")
    time.sleep(0.1)
    dash._on_action(dash, {"action": "cancel", "name": "long"}, [])
    assert long.wait(3) and long.state == "cancelled"
    dash._on_action(dash, {"action": "retry", "name": "long"}, [])
    dash._on_action(dash, {"action": "cancel_all"}, [])
    assert s.jobs["long"].wait(3)
    dash._on_action(dash, {"action": "cancel", "name": "ghost"}, [])  # gone: ignored


def test_text_and_html_fallbacks(setup):
    s, _ = setup
    job = s.submit(lambda: 1 / 0, name="boom")
    job.exception(5)
    snap = job.snapshot()
    assert status_line(snap).startswith("boom [failed]") and "ZeroDivisionError" in status_line(snap)
    html = summary_html(snap)
    assert "boom" in html and "traceback" in html and "<script" not in html
    text, table = jobs_table([snap])
    assert "boom" in text and "failed" in text and "<table" in table
    state = snapshot_state(snap)
    assert state["state"] == "failed" and state["traceback"]


def test_card_bundle_carries_text_and_html_for_viewers_without_widgets(setup):
    s, pump = setup
    job = s.submit(_spin, 5, 0.001, name="saved")
    job.result(5)
    card = pump.card(job)
    data = card._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    assert data["text/plain"].startswith("saved [done]")
    assert "saved" in data["text/html"] and "done" in data["text/html"]
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == card.model_id
