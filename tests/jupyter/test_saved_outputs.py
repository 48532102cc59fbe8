"""What a notebook saves under a card, in a real kernel.

Without a front end that draws widgets (nbclient, papermill: nobody says
hello from card.js), a finished card's display is replaced, from the cell,
by its static card: text/plain and text/html, no widget view that renderers
without a widget manager would draw empty. With a front end, the card stays
a live widget (its Retry button works)."""

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

WIDGET = "application/vnd.jupyter.widget-view+json"


def _shown(msgs, name):
    """The display_data of ``name``'s card: (its display id, its comm id)."""
    for m in msgs:
        data = m["content"].get("data", {})
        if m["msg_type"] == "display_data" and data.get("text/plain", "").startswith(f"{name} ["):
            return m["content"]["transient"]["display_id"], data[WIDGET]["model_id"]
    raise AssertionError(f"no card for {name!r} among {[m['msg_type'] for m in msgs]}")


def _updates(msgs, display_id):
    return [m["content"]["data"] for m in msgs if m["msg_type"] == "update_display_data"
            and m["content"].get("transient", {}).get("display_id") == display_id]


def _hello(kernel, comm_id):
    # What card.js's initialize() sends when a front end creates the model.
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", {
        "comm_id": comm_id, "data": {"method": "custom", "content": {"action": "hello"}}}))


def test_without_a_widget_front_end_finished_cards_are_saved_static(kernel):
    _, first = kernel.execute("%%bg -n quick\nreport(acc=0.5)\n1 + 1")
    _, second = kernel.execute("%%bg -n boom\nraise ValueError('bad thing')")
    _, third = kernel.execute("%wait quick boom")
    msgs = first + second + third
    quick, _ = _shown(first, "quick")
    boom, _ = _shown(second, "boom")

    last = _updates(msgs, quick)[-1]
    assert WIDGET not in last
    assert last["text/plain"].startswith("quick [done]") and "acc=0.5" in last["text/plain"]
    assert "nbx-card-static" in last["text/html"] and ">done<" in last["text/html"]

    last = _updates(msgs, boom)[-1]
    assert WIDGET not in last
    assert last["text/plain"].startswith("boom [failed]") and "ValueError: bad thing" in last["text/plain"]
    assert "ValueError: bad thing" in last["text/html"] and "traceback" in last["text/html"]
    assert kernel.value("nx.ui.get_pump().frontend_seen") == "False"

    # A live dashboard is saved as its table.
    _, live = kernel.execute("%jobs --live")
    shown = next(m["content"] for m in live if m["msg_type"] == "display_data")
    assert WIDGET in shown["data"]
    last = _updates(live, shown["transient"]["display_id"])[-1]
    assert WIDGET not in last
    assert last["text/plain"].startswith("notebook_ext jobs: 2 jobs (1 done, 1 failed)"), last["text/plain"]
    assert "quick" in last["text/plain"] and "nbx-state-failed" in last["text/html"]

    # %retry makes the card live again; the rerun fails and is saved static again.
    _, retried = kernel.execute("%retry boom\n%wait boom")
    ups = _updates(retried, boom)
    assert any(WIDGET in u for u in ups), "the retried card did not come back as a widget"
    assert WIDGET not in ups[-1] and ups[-1]["text/plain"].startswith("boom [failed]")


def test_with_a_widget_front_end_finished_cards_stay_live(kernel):
    _, first = kernel.execute("%%bg -n live\nfor i in progress(range(40)):\n    time.sleep(0.02)")
    display_id, comm_id = _shown(first, "live")
    _hello(kernel, comm_id)
    assert kernel.value("nx.ui.get_pump().frontend_seen") == "True"
    _, waited = kernel.execute("%wait live")
    _, later = kernel.execute("%%bg -n quick\n1 + 1")
    _, waited2 = kernel.execute("%wait quick")
    ups = _updates(first + waited + later + waited2 + kernel.stray, display_id)
    assert ups, "the finished card's saved text/html was never refreshed"
    assert all(WIDGET in u for u in ups), "a card was replaced by its static copy under a live front end"
    assert ups[-1]["text/plain"].startswith("live [done]")
    quick, _ = _shown(later, "quick")
    assert all(WIDGET in u for u in _updates(later + waited2 + kernel.stray, quick))
