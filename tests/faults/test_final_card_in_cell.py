"""A job that ends with its cell (``predictor.close()``, ``job.wait()``) had
its final card drawing sent after the cell's end when the pump's thread was
slow (a loaded machine): nbclient, which saves widget state only from the
cell it runs, then saved the card as still running (seen once in 26 runs of
tutorial 05). The end of each cell now draws such final states itself."""

import pytest

from .conftest import run_in

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@pytest.fixture
def kc(kernel):
    return kernel()


def test_a_job_ending_with_its_cell_has_its_final_card_in_that_cell(kc):
    run_in(kc, "%load_ext notebook_ext\nimport notebook_ext as nx, threading, time\n"
            "pump, held = nx.ui.get_pump(), threading.Event()\n"
            "pump_flush = pump.flush\n"
            "pump.flush = lambda now=None: held.wait(30) and pump_flush(now)\n")  # the pump's thread is slow
    try:
        msgs = run_in(kc, "job = nx.submit(lambda: time.sleep(0.3) or 7, name='ends')\n"
                       "display(nx.ui.card(job))\n"
                       "job.wait(10)\n")
    finally:
        run_in(kc, "held.set(); pump.flush = pump_flush")
    states = [m["content"]["data"]["state"]["snap"]["state"] for m in msgs
              if m["msg_type"] == "comm_msg" and m["content"]["data"].get("state", {}).get("snap")]
    assert states and states[-1] == "done", states


def test_a_parent_ending_with_its_cell_shows_its_children_as_they_ended(kc):
    # The end-of-cell drawing ran ahead of the children's final snapshots
    # (still on their way from the notifier) and saved the search card of
    # tutorial 04 with its refit child "running" (seen in the Binder test).
    run_in(kc, "%load_ext notebook_ext\nimport notebook_ext as nx, threading\n"
            "held, armed, go = threading.Event(), [False], threading.Event()\n"
            "nx.get_scheduler().subscribe(lambda s: armed[0] and held.wait(30))\n"  # a notifier running late
            "def fan():\n"
            "    go.wait(30)\n"
            "    return nx.submit(lambda: 5, name='kid', parent=nx.current_job()).result()\n")
    try:
        msgs = run_in(kc, "parent = nx.submit(fan, name='parent')\n"
                       "display(nx.ui.card(parent))\n"
                       "armed[0] = True\n"
                       "go.set()\n"
                       "parent.wait(10)\n")
    finally:
        run_in(kc, "armed[0] = False; held.set()")
    snaps = [m["content"]["data"]["state"]["snap"] for m in msgs
             if m["msg_type"] == "comm_msg" and m["content"]["data"].get("state", {}).get("snap")]
    assert snaps and snaps[-1]["state"] == "done", [s["state"] for s in snaps]
    assert snaps[-1]["children"] == {"done": 1, "total": 1}
