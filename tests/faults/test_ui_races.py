"""Races between jobs ending and cards being made, forced deterministically."""

from __future__ import annotations

import threading

import comm
import pytest
from comm.base_comm import BaseComm

from notebook_ext.core import Scheduler, current_job
from notebook_ext.testing import wait_until
from notebook_ext.ui import JobCard, UpdatePump


class QuietComm(BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        pass


@pytest.fixture(autouse=True)
def quiet_comms(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: QuietComm(*a, **k))


def after_first_drawing(monkeypatch, then):
    """Forces the race: ``then()`` runs right after a new card's first
    drawing, before the pump has registered the card."""
    first_show = JobCard.show

    def show_then(card, snap, children=None):
        first_show(card, snap, children)
        monkeypatch.setattr(JobCard, "show", first_show)
        then()

    monkeypatch.setattr(JobCard, "show", show_then)


def states_of(sched, job):
    """The states the scheduler delivers for ``job`` from now on."""
    delivered = []
    sched.subscribe(lambda s: delivered.append(s.state) if s.id == job.id else None)
    return delivered


def test_a_card_made_while_its_job_ends_still_shows_the_end(monkeypatch, flat):
    release = threading.Event()
    with Scheduler(slots=1, history=None) as sched:
        pump = UpdatePump(sched)
        try:
            job = sched.submit(release.wait, 30)
            wait_until(lambda: job.state == "running")
            delivered = states_of(sched, job)

            def let_the_job_end():
                # The card has drawn "running"; before the pump knows the card,
                # the job ends and its final snapshot goes by.
                release.set()
                wait_until(lambda: "done" in delivered, timeout=10)

            after_first_drawing(monkeypatch, let_the_job_end)
            card = pump.card(job)
            wait_until(lambda: card.snap["state"] == "done", timeout=10,
                       message=f"the card stays {card.snap['state']!r}")
        finally:
            pump.close()


def test_a_card_made_while_its_job_starts_shows_it_running(monkeypatch, flat):
    # Seen in the browser: a card drawn "pending" whose job started before
    # the pump knew the card stayed "pending" for good (the job reported no
    # progress, so no later snapshot came to correct it).
    release = threading.Event()
    with Scheduler(slots=1, history=None) as sched:
        pump = UpdatePump(sched)
        hold = threading.Event()
        try:
            blocker = sched.submit(release.wait, 30)
            wait_until(lambda: blocker.state == "running")
            job = sched.submit(hold.wait, 30)
            assert job.state in ("pending", "queued")
            delivered = states_of(sched, job)

            def let_the_job_start():
                # The card has drawn "queued"; before the pump knows the card,
                # the slot frees, the job starts and its snapshot goes by.
                release.set()
                wait_until(lambda: "running" in delivered, timeout=10)

            after_first_drawing(monkeypatch, let_the_job_start)
            card = pump.card(job)
            assert card.last_snapshot.state in ("pending", "queued")
            wait_until(lambda: card.snap["state"] == "running", timeout=5,
                       message=f"the card stays {card.snap['state']!r}")
            hold.set()
            wait_until(lambda: card.snap["state"] == "done", timeout=10)
        finally:
            release.set()
            hold.set()
            pump.close()


def test_a_second_card_made_during_a_drawing_of_the_first_gets_the_sub_jobs(monkeypatch):
    # Seen in CI: a card made (nx.ui.card) for a finished search while the
    # pump drew the card %search had shown never got its "1 sub-job done".
    # The pump read the cards to draw, drew the first, then marked the job's
    # sub-jobs drawn for every card, the one registered meanwhile too.
    from notebook_ext.testing import FakeClock

    clock = FakeClock()
    with Scheduler(slots=2, history=None, clock=clock) as sched:
        pump = UpdatePump(sched)
        pump.close()  # flush() by hand
        parent = sched.submit(lambda: sched.submit(lambda: 5, name="kid", parent=current_job()).result(10),
                              name="parent")
        parent.result(10)
        wait_until(lambda: all(c.done() for c in parent.children) and parent.children, timeout=10)
        first = pump.card(parent)
        second = []
        real_show = JobCard.show

        def show(card, snap, children=None):
            real_show(card, snap, children)
            if card is first and not second:
                second.append(pump.card(parent))  # made while the pump draws the first

        monkeypatch.setattr(JobCard, "show", show)
        for _ in range(5):
            clock.advance(1.0)
            pump.flush()
        assert first.snap["children"] == {"done": 1, "total": 1}
        assert second and second[0].snap["children"] == {"done": 1, "total": 1}, second[0].snap["children"]
