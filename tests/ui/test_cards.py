"""Cards, group cards, dashboard and the pump, without a kernel. Widgets
talk through `comm.create_comm`, which the `comm` package lets us replace:
here with a comm that counts the messages it would publish."""

import asyncio
import threading
import time

import comm
import pytest
from comm.base_comm import BaseComm

from notebook_ext.core import CANCELLED, DONE, RUNNING, Scheduler, progress, report
from notebook_ext.testing import FakeClock, wait_until
from notebook_ext.ui import (
    UpdatePump,
    jobs_table,
    snapshot_state,
    status_line,
    summary_html,
)


class CountingComm(BaseComm):
    published: list = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        CountingComm.published.append((msg_type, self.comm_id, data))


@pytest.fixture(autouse=True)
def counting_comms(monkeypatch):
    CountingComm.published = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: CountingComm(*a, **k))
    return CountingComm


def updates(widget):
    """comm_msg updates that widget's comm published."""
    return [d for t, cid, d in CountingComm.published if t == "comm_msg" and cid == widget.comm.comm_id]


def click(widget, **content):
    # What the comm does with a front end's custom message.
    widget._handle_custom_msg(content, [])


@pytest.fixture
def setup():
    s = Scheduler(slots=4, history=None)
    pump = UpdatePump(s)
    yield s, pump
    pump.close()
    s.shutdown()


def _spin(n, delay):
    for i in progress(range(n)):
        time.sleep(delay)  # the work of one step
        report(loss=1.0 / (i + 1))
    return n


def test_card_follows_its_job_to_the_final_state(setup):
    s, pump = setup
    job = s.submit(_spin, 30, 0.01, name="fit")
    card = pump.card(job)
    seen = []
    card.observe(lambda ch: seen.append(ch["new"]["done"]), names="snap")
    job.result(10)
    wait_until(lambda: card.snap["state"] == "done")
    assert card.snap["done"] == 30
    assert card.snap["curve"]["name"] == "loss" and len(card.snap["curve"]["points"]) == 30
    assert any(0 < d < 30 for d in seen)  # it moved in between
    assert "nbx-job-card" in card._dom_classes
    assert updates(card)  # drawing means comm messages


def test_card_buttons_cancel_stop_and_retry(setup):
    s, pump = setup
    job = s.submit(_spin, 10_000, 0.01, name="long")
    card = pump.card(job)
    wait_until(lambda: job.state == RUNNING)
    click(card, action="stop")
    assert job.stop_requested
    click(card, action="cancel")
    assert job.wait(5) and job.state == CANCELLED and job.cancel_reason == "cancelled from its card"
    click(card, action="retry")
    new = pump.job_of(card)
    assert new is not job and new.name == "long" and s.jobs["long"] is new
    wait_until(lambda: card.snap["id"] == new.id)  # the card now draws the new job
    click(card, action="cancel")
    assert new.wait(5) and new.state == CANCELLED
    click(card, action="bogus")  # ignored


_flaky_items = {"bad": True}


def _fragile(x):
    if x == 3 and _flaky_items["bad"]:
        raise ValueError("item 3 is bad")
    return x * 2


def test_a_retry_moves_a_plain_card_to_the_new_run_and_an_items_retry_has_its_own(setup):
    # A plain job re-run through the scheduler (the dashboard's Retry, %retry)
    # makes a new job: the card follows it in place instead of staying stale
    # beside a second card. A preprocessing job's %retry / retry_failed() runs
    # only its failed items, counted against the original run on the retry's
    # own card: the original card keeps its run's final numbers.
    from notebook_ext.ml import preprocess, retry_failed

    s, pump = setup
    _flaky_items["bad"] = True
    job = preprocess(_fragile, range(6), name="feats", scheduler=s)
    card = pump.card(job)
    job.result(30)
    wait_until(lambda: card.snap["state"] == "done" and card.snap["failed_count"] == 1)
    _flaky_items["bad"] = False
    again = retry_failed(job)
    assert again is not job
    new_card = pump.card(again)
    again.result(30)
    wait_until(lambda: new_card.snap["state"] == "done")
    assert (new_card.snap["done"], new_card.snap["total"], new_card.snap["failed_count"]) == (6, 6, 0)
    assert new_card.snap["message"].startswith("retry of 1 failed item: 1 ok, 0 failed")
    pump.flush()
    assert pump.job_of(card) is job
    assert (card.snap["id"], card.snap["failed_count"], card.snap["done"]) == (job.id, 1, 6)
    assert again.result().results == [0, 2, 4, 6, 8, 10]
    plain = s.submit(_spin, 3, 0.0, name="plain")
    plain_card = pump.card(plain)
    plain.result(10)
    rerun = s.retry("plain")
    wait_until(lambda: pump.job_of(plain_card) is rerun)
    rerun.result(10)
    wait_until(lambda: plain_card.snap["id"] == rerun.id and plain_card.snap["state"] == "done")


def test_fifty_cards_stay_within_the_global_budget_in_real_comm_messages():
    clock = FakeClock()
    s = Scheduler(slots=4, history=None, clock=clock)
    pump = UpdatePump(s, budget=100.0)
    pump.close()  # drive flush() by hand on the fake clock
    try:
        gate = threading.Event()
        jobs = [s.submit(gate.wait, 30) for _ in range(4)]
        wait_until(lambda: all(j.state == RUNNING for j in jobs))
        cards = [pump.card(j) for j in jobs for _ in range(12)] + [pump.card(jobs[0])]  # 49 cards
        CountingComm.published = []
        for step in range(150):  # 1.5 s of fake time; every job moves every 10 ms
            for j in jobs:
                j.ctx.done = step
                pump._on_snapshot(j.snapshot())  # what the notifier delivers
            clock.advance(0.01)
            pump.flush()
        sent = [m for m in CountingComm.published if m[0] == "comm_msg"]
        # 100 msg/s for 1.5 s, plus the initial burst of the token bucket (100).
        assert len(sent) <= 100 * 1.5 + 100
        assert len(sent) >= 100  # and the budget was used
        assert {cid for _, cid, _ in sent} <= {c.comm.comm_id for c in cards}
        gate.set()
        s.wait(*jobs, timeout=10)
        for j in jobs:
            pump._on_snapshot(j.snapshot())
        CountingComm.published = []
        pump._tokens = 0  # even with the budget spent, final states go out
        pump.flush()
        assert all(c.snap["state"] == DONE for c in cards)
    finally:
        s.shutdown()


def test_group_card_summarises_children(setup):
    s, pump = setup
    release = threading.Event()

    async def fan_out():
        from notebook_ext.core import current_job

        me = current_job()
        kids = [s.submit(time.sleep, 0.01 * i, parent=me, name=f"kid-{i}") for i in range(4)]
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        await asyncio.gather(*(k.wait_async() for k in kids))
        return len(kids)

    parent = s.submit(fan_out, name="group", kind="search")
    wait_until(lambda: len(parent.children) == 4)
    card = pump.card(parent)
    release.set()
    assert parent.result(10) == 4
    wait_until(lambda: (card.snap.get("children") or {}).get("done") == 4)
    assert card.snap["children"] == {"done": 4, "total": 4}


def test_dashboard_pages_sorts_and_acts(setup):
    s, pump = setup
    jobs = [s.submit(int, name=f"j{i}", priority=i % 3) for i in range(60)]
    s.wait(*jobs)
    dash = pump.dashboard()
    wait_until(lambda: dash.view["counts"] == {"done": 60})
    v = dash.view
    assert v["total"] == 60 and len(v["rows"]) == 25
    click(dash, action="sort", by="priority")
    assert dash.view["rows"][0]["priority"] == 2
    click(dash, action="page", page=2)
    assert dash.view["first"] == 51 and dash.view["last"] == 60
    long = s.submit(_spin, 10_000, 0.01, name="long")
    wait_until(lambda: long.state == RUNNING)
    click(dash, action="cancel", name="long")
    assert long.wait(5) and long.state == CANCELLED
    click(dash, action="retry", name="long")
    again = s.jobs["long"]
    assert again is not long and again.kind == long.kind
    wait_until(lambda: again.state == RUNNING)
    other = s.submit(_spin, 10_000, 0.01, name="other")
    click(dash, action="cancel_all")
    assert again.wait(5) and other.wait(5)
    assert (again.state, other.state) == (CANCELLED, CANCELLED)
    assert all(j.state == DONE for j in jobs)  # finished jobs are left alone
    wait_until(lambda: dash.view["counts"].get("cancelled") == 3)
    click(dash, action="cancel", name="ghost")  # gone: ignored
    assert dash.view["counts"] == {"done": 60, "cancelled": 3}


def test_closed_dashboards_are_dropped(setup):
    s, pump = setup
    dash = pump.dashboard()
    dash.close()
    s.submit(int).result(5)
    wait_until(lambda: pump.flush() == 0 and not pump._dashboards)


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
