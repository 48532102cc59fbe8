"""With a front end that draws widgets, a card's display is updated with the
job's final state when it ends, so the notebook saves that state (the
extension draws it on reopening). A job that ended between its card's making
and its display (an instant failure: ``%%bg`` of ``raise``) had its final
drawing go out before the display handle existed, and its saved card said
"running" for ever. Made deterministic here: the display waits until the
pump has drawn the final state."""

import pytest

from .conftest import run_in

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

CARD_MIME = "application/vnd.notebook-ext.card+json"


@pytest.fixture
def kc(kernel):
    return kernel(NOTEBOOK_EXT_FRONTEND="test")


def test_a_job_ended_before_its_card_was_displayed_has_its_final_state_saved(kc):
    run_in(kc, "%load_ext notebook_ext\nimport notebook_ext as nx\nfrom notebook_ext.testing import wait_until\n"
            "import threading\ngate = threading.Event()\n"
            "pump = nx.ui.get_pump()\nassert pump.frontend_seen\n"
            "real = pump.set_display_handle\n"
            "def late(widget, handle):\n"  # called just after the card was displayed, its job still running
            "    gate.set()\n"
            "    wait_until(lambda: widget.snap.get('state') == 'failed', timeout=10)\n"
            "    return real(widget, handle)\n"
            "pump.set_display_handle = late\n")
    msgs = run_in(kc, "%%bg -n bad\ngate.wait(10)\nraise ValueError('bad input')")
    msgs += run_in(kc, "pump.set_display_handle = real\nnx.jobs['bad'].wait(10)\nnx.ui.get_pump().flush()")
    shown = [m for m in msgs if m["msg_type"] == "display_data" and CARD_MIME in m["content"]["data"]]
    assert len(shown) == 1
    assert shown[0]["content"]["data"][CARD_MIME]["snap"]["state"] in ("pending", "queued", "running")
    display_id = shown[0]["content"]["transient"]["display_id"]
    states = [m["content"]["data"][CARD_MIME]["snap"]["state"] for m in msgs
              if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id]
    assert states and states[-1] == "failed", states
