"""In JupyterLab, in Chromium: the card renders, moves while another cell
blocks the kernel, Cancel acts during that cell, the dashboard lists the
jobs, and a reloaded page shows the running job's card again."""

import re

import pytest
from browser_harness import SCREENSHOTS, run_all, wait_for_kernel

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    "%load_ext notebook_ext\nimport time",
    "%%bg -n live\nfor i in progress(range(1200)):\n    time.sleep(0.05)\n    report(loss=1 / (i + 1))",
    "%%bg -n victim\nfor i in progress(range(100_000)):\n    time.sleep(0.01)",
    "time.sleep(8)\nprint('blocking cell done')",
    "%jobs --live",
]


def card(page, name):
    return page.locator(".nbx-card", has=page.locator(".nbx-name", has_text=re.compile(f"^{name}$")))


def progress_of(page, name):
    text = card(page, name).locator(".nbx-progress-text").inner_text()
    return int(text.split("/")[0])


def test_cards_in_jupyterlab(lab, page):
    lab.write_notebook("e2e.ipynb", CELLS)
    page.goto(lab.tree_url("e2e.ipynb"))
    wait_for_kernel(page)
    run_all(page)

    # (a) the card renders, no widget error text anywhere
    card(page, "live").wait_for(timeout=60_000)
    card(page, "victim").wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    assert "Loading widget" not in body and "model not found" not in body.lower()
    page.screenshot(path=str(SCREENSHOTS / "card.png"))

    # (b) progress moves while cell 4 blocks the kernel
    blocking = page.locator(".jp-CodeCell").nth(3)
    wait_until(lambda: "[*]" in blocking.locator(".jp-InputPrompt").inner_text(), timeout=30)
    assert "[*]" in blocking.locator(".jp-InputPrompt").inner_text()
    first = progress_of(page, "live")
    wait_until(lambda: progress_of(page, "live") > first, timeout=5, message="the card did not move")
    done = lambda: "blocking cell done" in blocking.locator(".jp-OutputArea").inner_text()  # noqa: E731
    assert not done()

    # (c) Cancel during the blocking cell takes effect before it ends
    card(page, "victim").locator("button.nbx-cancel").click()
    state = card(page, "victim").locator(".nbx-state")
    wait_until(lambda: state.inner_text() == "cancelled", timeout=5)
    assert state.inner_text() == "cancelled"
    assert not done(), "the click acted only after the blocking cell ended"
    page.screenshot(path=str(SCREENSHOTS / "cancelled-during-blocking-cell.png"))

    # (d) the dashboard renders and lists the jobs
    dash = page.locator(".nbx-dashboard")
    dash.wait_for(timeout=30_000)
    wait_until(lambda: {"live", "victim"} <= set(dash.locator(".nbx-row-name").all_inner_texts()), timeout=10)
    assert done()
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))

    # (e) after a reload, the running job's card shows again and keeps moving
    # The user saves (or autosave does), then reloads the tab.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(lambda: not page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty"), timeout=10)
    page.reload()
    wait_for_kernel(page)
    try:
        card(page, "live").wait_for(timeout=60_000)
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / "after-reload-failed.png"))
        raise
    a = progress_of(page, "live")
    wait_until(lambda: progress_of(page, "live") > a, timeout=5, message="the card did not move after a reload")
    assert "Loading widget" not in page.locator("body").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "after-reload.png"))
