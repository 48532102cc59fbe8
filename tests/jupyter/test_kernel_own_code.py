"""The user's own code, unchanged, in a real kernel: tqdm bars drive the
job's card and show nothing elsewhere, display() and plots land on the
card, and a failure's traceback shows the cell's own lines."""

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def last_card_states(kernel, *batches):
    """name -> the last snap / displays the kernel sent for each card."""
    snaps, displays = {}, {}
    msgs = [m for batch in batches for m in batch] + kernel.stray
    kernel.stray.clear()
    ids = {}
    for m in sorted(msgs, key=lambda m: m["header"]["date"]):
        if m["msg_type"] not in ("comm_open", "comm_msg"):
            continue
        data = m["content"]["data"]
        state = data.get("state", {})
        comm = m["content"]["comm_id"]
        if state.get("snap"):
            ids[comm] = state["snap"]["name"]
            snaps[state["snap"]["name"]] = state["snap"]
        if "displays" in state and comm in ids:
            displays[ids[comm]] = state["displays"]
    return snaps, displays


def foreign_outputs(msgs):
    """What a cell shows besides its own stdout: displays and stderr."""
    # (update_display_data adds nothing to a cell: it redraws a display made earlier, e.g. a card)
    return [m for m in msgs if m["msg_type"] in ("display_data", "clear_output")
            or (m["msg_type"] == "stream" and m["content"]["name"] == "stderr")]


@pytest.mark.parametrize("executor", ["thread", "process"])
@pytest.mark.parametrize("module", ["tqdm.auto", "tqdm"])
def test_a_tqdm_loop_drives_its_card_and_shows_nothing_elsewhere(kernel, module, executor):
    _, bg = kernel.execute(
        f"%%bg -n tq --executor {executor}\n"
        "import time\n"
        f"from {module} import tqdm\n"
        "for i in tqdm(range(40), desc='epochs'):\n"
        "    time.sleep(0.05)\n"
    )
    _, fg = kernel.execute("time.sleep(1.5)\nprint('foreground done')")
    _, waited = kernel.execute("%wait tq")
    _, after = kernel.execute("print('next cell')")
    assert kernel.stdout(fg) == "foreground done\n" and kernel.stdout(after) == "next cell\n"
    assert foreign_outputs(fg) == [] and foreign_outputs(waited) == [] and foreign_outputs(after) == []
    assert [m for m in bg if m["msg_type"] == "display_data"][1:] == []  # the card, nothing else
    snaps, _ = last_card_states(kernel, bg, fg, waited, after)
    card = snaps["tq"]
    assert card["state"] == "done" and (card["done"], card["total"]) == (40, 40)
    assert card["message"] == "epochs" and card["output"] == ""


def test_display_and_a_figure_from_a_job_land_on_its_card(kernel):
    kernel.execute("%matplotlib inline")
    _, bg = kernel.execute(
        "%%bg -n shows\n"
        "import time\n"
        "from IPython.display import HTML, display\n"
        "import matplotlib.pyplot as plt\n"
        "time.sleep(0.5)\n"
        "display(HTML('<b>hello from the job</b>'))\n"
        "plt.plot([1, 3, 2])\n"
        "plt.show()\n"
        "time.sleep(0.5)\n"
    )
    _, fg = kernel.execute("time.sleep(2)\nprint('foreground done')")
    _, waited = kernel.execute("%wait shows")
    _, after = kernel.execute("print('next cell')")
    assert foreign_outputs(fg) == [] and foreign_outputs(waited) == [] and foreign_outputs(after) == []
    snaps, displays = last_card_states(kernel, bg, fg, waited, after)
    assert snaps["shows"]["state"] == "done"
    mimes = [d["mime"] for d in displays["shows"]]
    assert mimes == ["text/html", "image/png"]
    assert displays["shows"][0]["data"] == "<b>hello from the job</b>"
    # The card's saved HTML (for viewers without widgets) has them too.
    assert kernel.value("'hello from the job' in nx.ui.summary_html(nx.jobs['shows'].snapshot())") == "True"


def test_a_failing_cell_shows_its_own_line_and_no_library_frames(kernel):
    _, bg = kernel.execute("%%bg -n boom\nx = 1\nopen('data/missing.csv')")
    kernel.execute("%wait boom")
    reply, msgs = kernel.execute("%result boom", allow_error=True)
    assert reply["status"] == "error" and reply["ename"] == "FileNotFoundError"
    (error,) = kernel.errors(msgs)
    tb = error["traceback"]
    frames = [i for i, line in enumerate(tb) if line.startswith("  File ")]
    assert tb[frames[0]].startswith('  File "<bg cell boom>", line 3')  # the editor's line: %%bg is line 1
    assert tb[frames[0] + 1].strip() == "open('data/missing.csv')"
    text = "\n".join(tb)
    assert "notebook_ext/" not in text and "asyncio" not in text.replace("asyncio hidden", "")
    assert len(tb) <= 15 and "%result boom --full" in tb[-1]
    snaps, _ = last_card_states(kernel, bg)
    full = kernel.execute("%result boom --full")[1]
    assert "notebook_ext/" in "".join(m["content"].get("text", "") for m in full if m["msg_type"] == "stream")
