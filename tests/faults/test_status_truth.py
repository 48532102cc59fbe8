"""JupyterLab's status bar read "Idle" while a cell ran once a card was on
screen: the widget manager asks the kernel for a subshell (a control request)
when the first widget appears, and that request's ``idle`` was the last
status the front end saw until the cell ended. With the extension loaded, the
kernel says ``busy`` again for the running cell after any such ``idle``."""

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@pytest.fixture
def kc(kernel):
    return kernel()


def statuses_while(kc, code, control_type):
    """The status messages (state, parent msg_type) a front end sees while
    ``code`` runs and a ``control_type`` request arrives on the control channel."""
    kc.execute_interactive("%load_ext notebook_ext", timeout=60)
    msg_id = kc.execute(code)
    seen, sent = [], False
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["msg_type"] == "status":
            seen.append((msg["content"]["execution_state"], msg["parent_header"].get("msg_type"),
                         msg["parent_header"].get("msg_id") == msg_id))
            if seen[-1] == ("idle", "execute_request", True):
                return seen
        if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id and not sent:
            kc.control_channel.send(kc.session.msg(control_type))  # the cell runs now
            sent = True


@pytest.mark.parametrize("control_type", ["create_subshell_request", "kernel_info_request"])
def test_a_control_request_during_a_cell_leaves_the_kernel_busy(kc, control_type):
    seen = statuses_while(kc, "import time\ntime.sleep(2)", control_type)
    assert ("idle", control_type, False) in seen, seen  # the control request was handled during the cell
    # what a front end shows just before the cell's own idle: busy
    assert seen[-2][0] == "busy", seen
