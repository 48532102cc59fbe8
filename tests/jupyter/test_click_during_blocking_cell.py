"""A card's Cancel click sent over a kernel subshell (as JupyterLab >= 4.4
does) acts while another cell blocks the main shell."""

import json
import time

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def _subshell(kernel):
    msg = kernel.kc.session.msg("create_subshell_request", {})
    kernel.kc.control_channel.send(msg)
    reply = kernel.kc.control_channel.get_msg(timeout=10)
    return reply["content"]["subshell_id"]


def _wait_until_running(kernel, msg_id, timeout=30):
    """Until the kernel announces it started executing ``msg_id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=0.2)
        except Exception:
            continue
        kernel.stray.append(msg)
        if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id:
            return
    raise AssertionError(f"the blocking cell did not start within {timeout} s")


def _click_and_time(kernel, comm_id, subshell_id, block=5.0):
    blocking = kernel.kc.execute(f"time.sleep({block})")
    _wait_until_running(kernel, blocking)
    click = kernel.kc.session.msg("comm_msg", {
        "comm_id": comm_id, "data": {"method": "custom", "content": {"action": "cancel"}}})
    click["header"]["subshell_id"] = subshell_id
    t0 = time.monotonic()
    kernel.kc.shell_channel.send(click)
    cancelled_at = None
    deadline = t0 + block + 10
    while cancelled_at is None and time.monotonic() < deadline:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=0.2)
        except Exception:
            continue
        kernel.stray.append(msg)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            snap = msg["content"]["data"].get("state", {}).get("snap")
            if snap and snap["state"] == "cancelled":
                cancelled_at = time.monotonic() - t0
    reply = kernel.kc.get_shell_msg(timeout=block + 10)
    while reply["parent_header"].get("msg_id") != blocking:
        reply = kernel.kc.get_shell_msg(timeout=block + 10)
    return cancelled_at


def _card(kernel, name):
    kernel.execute(f"%%bg -n {name}\nfor i in progress(range(10_000)):\n    time.sleep(0.01)")
    kernel.execute(f"card = nx.ui.card(nx.jobs['{name}'])")
    return json.loads(kernel.value("import json; json.dumps(card.comm.comm_id)").strip("'"))


def test_click_over_a_subshell_cancels_before_the_blocking_cell_ends(kernel):
    comm_id = _card(kernel, "long")
    assert kernel.value("nx.ui._subshell.route_by_message_subshell(card)") == "True"
    took = _click_and_time(kernel, comm_id, _subshell(kernel))
    assert took is not None and took < 3.0, took  # the cell blocks for 4.5 s more
    assert kernel.value("nx.jobs['long'].state") == "'cancelled'"


def test_without_the_hook_the_click_waits_for_the_cell(kernel):
    comm_id = _card(kernel, "other")
    kernel.execute("nx.ui._subshell.restore_default_routing(card)")
    took = _click_and_time(kernel, comm_id, _subshell(kernel))
    assert took is not None and took > 4.0, took  # queued behind time.sleep(5)
