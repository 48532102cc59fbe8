"""A card shown as a cell's value (``nx.ui.card(job)``, ``nx.dashboard()``)
was an ``execute_result`` with no display id: nothing could update it, and
the notebook saved it as it was when shown (``mlp [pending]`` in tutorial
02, though the job ended a few cells later in the same run). Shown now with
a display id the pump keeps, like the cards the magics display."""

import queue
import time

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import run_in

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

CARD_MIME = "application/vnd.notebook-ext.card+json"


def _run(cells, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_EXT_HISTORY", str(tmp_path / "h.sqlite3"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb


def test_a_card_and_a_dashboard_shown_as_values_are_saved_final_by_nbclient(tmp_path, monkeypatch):
    nb = _run([
        "%load_ext notebook_ext\nimport notebook_ext as nx, threading\ngate = threading.Event()",
        "job = nx.submit(gate.wait, 60, name='slow')",
        "nx.ui.card(job)",
        "nx.dashboard()",
        "gate.set()\njob.wait(60)",
        "1 + 1",
    ], tmp_path, monkeypatch)
    card, dash = nb.cells[2].outputs, nb.cells[3].outputs
    assert len(card) == 1 and len(dash) == 1
    assert card[0]["data"]["text/plain"].startswith("slow [done]"), card[0]["data"]["text/plain"]
    table = dash[0]["data"]["text/plain"]
    assert "1 done" in table and "running" not in table, table
    widgets = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    snaps = [m["state"]["snap"] for m in widgets.values() if m["state"].get("snap")]
    assert [s["state"] for s in snaps] == ["done"]


def test_with_a_front_end_a_value_card_is_updated_to_its_final_state(kernel):
    kc = kernel(NOTEBOOK_EXT_FRONTEND="test")
    run_in(kc, "%load_ext notebook_ext\nimport notebook_ext as nx, threading\ngate = threading.Event()\n"
               "job = nx.submit(gate.wait, 60, name='slow')")
    shown = [m for m in run_in(kc, "nx.ui.card(job)") if m["msg_type"] in ("display_data", "execute_result")]
    assert len(shown) == 1 and shown[0]["msg_type"] == "display_data"
    assert shown[0]["content"]["data"][CARD_MIME]["snap"]["state"] in ("pending", "queued", "running")
    display_id = shown[0]["content"]["transient"]["display_id"]
    kc.execute("gate.set()\njob.wait(60)")
    # A front end takes an update by its display id, whichever cell its
    # message names as parent: read them all (run_in keeps only its cell's).
    deadline = time.monotonic() + 30
    states: list = []
    while "done" not in states and time.monotonic() < deadline:
        try:
            m = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id:
            states.append(m["content"]["data"][CARD_MIME]["snap"]["state"])
    assert states and states[-1] == "done", states
