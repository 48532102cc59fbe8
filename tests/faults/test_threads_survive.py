"""The background threads (notifier, update pump) survive whatever user
objects do: an exception whose ``__str__`` raises, lone surrogates in
output, errors and names, control characters, a detail that cannot be
drawn. What cannot be delivered is said once on the affected job; every
later job's card still moves. Table-driven, on every in-process executor
and the process executor."""

from __future__ import annotations

import json
import threading

import comm
import pytest
from comm.base_comm import BaseComm

from notebook_ext.core import JobDetail, Scheduler
from notebook_ext.core.lowlevel import Notifier
from notebook_ext.testing import wait_until
from notebook_ext.ui import UpdatePump, jobs_table, status_line

EXECUTORS = ["loop", "thread", "process"]


class StrictComm(BaseComm):
    """Encodes every message as the kernel must send it: strict UTF-8 JSON."""

    published: list = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        StrictComm.published.append(msg_type)


@pytest.fixture(autouse=True)
def strict_comms(monkeypatch):
    StrictComm.published = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: StrictComm(*a, **k))


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


def raise_bad_str():
    raise BadStr()


def print_surrogates():
    print("file \udcff and \ud800 here")
    return "printed"


def raise_surrogates():
    raise ValueError("cannot open b'\udcff.csv' \ud800")


async def araise_bad_str():
    raise_bad_str()


async def aprint_surrogates():
    return print_surrogates()


async def araise_surrogates():
    raise_surrogates()


def ok():
    return 1


async def aok():
    return 1


CASES = {
    # name: (sync body, async body, expected state, what the error line says)
    "str-raises": (raise_bad_str, araise_bad_str, "failed", "BadStr: <str() of this exception raised"),
    "surrogate-output": (print_surrogates, aprint_surrogates, "done", None),
    "surrogate-error": (raise_surrogates, araise_surrogates, "failed", "ValueError: cannot open b'\\udcff.csv'"),
}


@pytest.fixture
def world(flat):
    sched = Scheduler(slots=2, history=None)
    pump = UpdatePump(sched)
    yield sched, pump
    pump.close()
    sched.shutdown()


def alive(sched, pump):
    return sched.notifier._thread.is_alive() and pump._thread.is_alive() and sched.loop_thread.running


def later_card_moves(sched, pump, executor):
    job = sched.submit(aok if executor == "loop" else ok, executor=executor, name="later")
    card = pump.card(job)
    job.result(timeout=60)
    wait_until(lambda: card.snap["state"] == "done", timeout=10)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("executor", EXECUTORS)
def test_user_objects_cannot_kill_a_background_thread(case, executor, world):
    sched, pump = world
    sync, coro, state, error = CASES[case]
    job = sched.submit(coro if executor == "loop" else sync, executor=executor)
    card = pump.card(job)
    job.wait(60)
    wait_until(lambda: card.snap["state"] == state, timeout=10)
    if error is not None:
        assert job.error.startswith(error) and card.snap["error"] == job.error
        assert "\n" not in job.error
    if case == "surrogate-output":
        assert "file \\udcff and \\ud800 here" in job.output
    text, html = jobs_table([job.snapshot()])
    text.encode("utf-8")  # strict: raises on a surrogate
    status_line(job.snapshot()).encode("utf-8")
    assert pump.draw_errors == 0 and sched.notifier.errors == 0
    assert alive(sched, pump)
    later_card_moves(sched, pump, executor)


def test_names_and_reasons_with_escapes_are_shown_escaped(world):
    sched, pump = world
    job = sched.submit(ok, name="\x1b[31mred\x00 \udcff")
    card = pump.card(job)
    job.result(timeout=10)
    wait_until(lambda: card.snap["state"] == "done", timeout=10)
    assert job.name == "\x1b[31mred\x00 \\udcff"  # kept as given, minus what cannot be encoded
    text, _ = jobs_table([job.snapshot()])
    assert "\x1b" not in text and "\x00" not in text and "\\x1b[31mred\\x00" in text
    assert "\x1b" not in status_line(job.snapshot())
    release = threading.Event()
    gate = sched.submit(release.wait, 60, name="gate")
    waiting = sched.submit(ok, name="waits", after=[gate])
    waiting.cancel("because \udcff\x1b[0m")
    card2 = pump.card(waiting)
    wait_until(lambda: card2.snap["state"] == "cancelled", timeout=10)
    assert waiting.error == "because \\udcff\x1b[0m"
    assert "\\x1b[0m" in jobs_table([waiting.snapshot()])[0]
    release.set()
    gate.result(timeout=10)
    assert alive(sched, pump)


class Undrawable(JobDetail):
    def __getattribute__(self, name):
        if name == "curve":  # what a card asks of a detail first
            raise RuntimeError("this detail cannot be drawn")
        return super().__getattribute__(name)


def test_a_card_that_cannot_be_drawn_is_said_once_and_the_rest_keep_moving(world):
    sched, pump = world
    bad = sched.submit(ok, detail=Undrawable(), name="bad")
    bad.result(timeout=10)
    with pytest.raises(RuntimeError):
        pump.card(bad)  # making the card draws it: the caller hears at once
    gate = threading.Event()
    job = sched.submit(gate.wait, 10, name="bad2")
    card = pump.card(job)
    job.set_detail(Undrawable())  # from now on its updates cannot be drawn
    gate.set()  # only now may it end: its "done" must be drawn with this detail
    job.result(timeout=10)
    wait_until(lambda: pump.draw_errors >= 1, timeout=10)
    assert job.output.count("this job's card could not be drawn") == 1
    assert "RuntimeError: this detail cannot be drawn" in job.output
    assert card.snap["state"] != "done"  # it could not be drawn; it said so on the job
    assert alive(sched, pump)
    later_card_moves(sched, pump, "thread")


def test_the_notifier_survives_its_own_faults(flat):
    calls = []
    gate = threading.Event()
    with Scheduler(slots=2, history=None) as sched:
        busy = sched.submit(gate.wait, 30)  # a running job: the notifier keeps asking what runs

        def running():
            calls.append(1)
            if len(calls) == 2:
                raise OSError("the running list could not be read")
            return [busy]

        seen = []
        notifier = Notifier(running, interval=0.01)
        try:
            notifier.subscribe(seen.append)
            wait_until(lambda: len(calls) >= 5, timeout=10)
            assert notifier.errors == 1 and notifier._thread.is_alive()
            job = sched.submit(ok)
            job.result(timeout=10)
            notifier.changed(job)
            wait_until(lambda: any(s.id == job.id for s in seen), timeout=10)
        finally:
            gate.set()
            notifier.close()
