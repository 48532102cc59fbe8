"""Every tutorial runs in a fresh kernel and does what its prose promises."""

import pytest

from conftest import card_states, outputs_text  # noqa: F401 - tests/tutorials/conftest.py

pytestmark = [pytest.mark.slow, pytest.mark.kernel]


def _cell(nb, needle):
    for cell in nb.cells:
        if cell.cell_type == "code" and needle in cell.source:
            return cell
    raise AssertionError(f"no cell with {needle!r}")


def test_01_quickstart(run):
    check_quickstart(run("01-quickstart.ipynb"))


def check_quickstart(nb):
    assert outputs_text(_cell(nb, "1 + 1")) == "2"
    fg = outputs_text(_cell(nb, "time.sleep(2)"))
    assert "the foreground cell is done" in fg and "reached" not in fg
    waited = outputs_text(_cell(nb, "%wait count"))
    assert "count [done]" in waited and "forever [cancelled]" in waited and "boom [failed]" in waited
    assert outputs_text(_cell(nb, "%result count")) == str(sum(range(40)))
    assert "FileNotFoundError: data/missing.csv" in outputs_text(_cell(nb, "%result boom"))
    assert outputs_text(_cell(nb, "prep.result()")) == "(9, 16, 'done')"
    cards = card_states(nb)
    assert cards["count"]["state"] == "done" and cards["count"]["done"] == 40
    assert cards["count"]["curve"]["name"] == "running_mean"
    assert "reached 30" in cards["count"]["output"]
    assert cards["forever"]["state"] == "cancelled" and cards["boom"]["state"] == "failed"
    assert "FileNotFoundError" in cards["boom"]["traceback"]
