"""A cell that makes hundreds of jobs cannot flood IOPub (the Jupyter
server drops output past 1,000 messages a second): past
`notebook_ext.ui.CARDS_PER_CELL` cards, the cell's jobs share one group
card. In a real kernel, counting the messages it really sends."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def by_type(msgs):
    counts = {}
    for m in msgs:
        counts[m["msg_type"]] = counts.get(m["msg_type"], 0) + 1
    return counts


def test_300_bg_cells_from_one_cell_make_at_most_21_widgets(kernel):
    reply, msgs = kernel.execute(
        "for i in range(300):\n"
        "    get_ipython().run_cell_magic('bg', f'-n many{i}', 'x = 1')\n",
        timeout=120)
    counts = by_type(msgs)
    # 20 cards, one group card, and the one layout every card shares.
    assert counts.get("comm_open", 0) == 22, counts
    assert counts.get("display_data", 0) == 21, counts
    _, wait_msgs = kernel.execute("nx.wait(timeout=60); import notebook_ext.ui as ui, time", timeout=90)
    group = "[ui._cells[k].group for k in ui._cells][0]"
    assert kernel.value(f"len({group}.only)") == "280"
    # The group card reaches the final picture: 280 done.
    kernel.execute(f"t0 = time.monotonic()\n"
                   f"while {group}.view['counts'].get('done') != 280 and time.monotonic() - t0 < 20:\n"
                   f"    time.sleep(0.05)")
    assert kernel.value(f"{group}.view['counts']") == "{'done': 280}"
    assert kernel.value(f"{group}.view['title']") == "'more jobs of this cell'"
    # A new cell starts counting again: its first job gets a card of its own.
    _, more = kernel.execute("%%bg -n next_cell\nx = 2")
    assert by_type(more).get("comm_open", 0) == 1
    assert kernel.value("len(nx.jobs)") == "301"


def test_cancel_all_on_a_group_card_cancels_only_its_jobs(kernel):
    kernel.execute("import threading, notebook_ext.ui as ui; gate = threading.Event()\n"
                   "ui.CARDS_PER_CELL = 2")
    kernel.execute("%%bg -n outside\ngate.wait(30)")
    kernel.execute("for i in range(5):\n"
                   "    get_ipython().run_cell_magic('bg', f'-n g{i}', 'gate.wait(30)')\n")
    kernel.execute("group = [ui._cells[k].group for k in ui._cells][0]\n"
                   "group._handle_custom_msg({'action': 'cancel_all'}, [])\n"
                   "nx.wait(*[f'g{i}' for i in range(2, 5)], timeout=10)")
    states = kernel.value("[nx.jobs[n].state != 'cancelled' for n in ['outside', 'g0', 'g1', 'g2', 'g3', 'g4']]")
    assert states == "[True, True, True, False, False, False]"  # only the group's three were cancelled
    kernel.execute("gate.set(); nx.wait(timeout=10)")
