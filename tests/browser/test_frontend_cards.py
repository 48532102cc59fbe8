"""In JupyterLab and in Notebook 7, in Chromium: the card renders, moves while
another cell blocks the kernel, Cancel acts during that cell, the cancelled
card stays cancelled while the other one moves on after it, the dashboard
lists the jobs, and a reloaded page shows the running job's card again.

Notebook 7 runs all of it: its page has the same ``window.jupyterapp``
(``--JupyterNotebookApp.expose_app_in_browser=True``), the notebook panel is
``shell.currentWidget``, and cells carry JupyterLab's classes. Screenshots go to
``screenshots/<lab|notebook7>-<step>.png``."""

import re

import pytest
from browser_harness import run_all, screenshot, wait_for_kernel

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    "%load_ext notebook_ext\nimport time",
    "%%bg -n live\nfor i in progress(range(1200)):\n    time.sleep(0.05)\n    report(loss=1 / (i + 1))",
    "%%bg -n victim\nfor i in progress(range(100_000)):\n    time.sleep(0.01)",
    "time.sleep(8)\nprint('blocking cell done')",
    "%jobs --live",
]
LIVE_STEPS = 1200


def card(page, name):
    return page.locator(".nbx-card", has=page.locator(".nbx-name", has_text=re.compile(f"^{name}$")))


def progress_of(page, name):
    text = card(page, name).locator(".nbx-progress-text").inner_text()
    return int(text.split("/")[0])


def state_of(page, name):
    return card(page, name).locator(".nbx-state").inner_text()


def test_cards(frontend_server, page):
    server = frontend_server

    def shot(step):  # screenshots/lab-card.png, screenshots/notebook7-card.png, ...
        return screenshot(page, f"{server.label}-{step}")

    server.write_notebook("e2e.ipynb", CELLS)
    page.goto(server.notebook_url("e2e.ipynb"))
    wait_for_kernel(page, path="e2e.ipynb")
    run_all(page)

    # (a) the card renders, no widget error text anywhere
    card(page, "live").wait_for(timeout=60_000)
    card(page, "victim").wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    assert "Loading widget" not in body and "model not found" not in body.lower()
    shot("card")

    # (b) progress moves while cell 4 blocks the kernel
    blocking = page.locator(".jp-CodeCell").nth(3)
    wait_until(lambda: "[*]" in blocking.locator(".jp-InputPrompt").inner_text(), timeout=30)
    assert "[*]" in blocking.locator(".jp-InputPrompt").inner_text()
    first = progress_of(page, "live")
    wait_until(lambda: progress_of(page, "live") > first, timeout=5, message="the card did not move")

    def done():
        return "blocking cell done" in blocking.locator(".jp-OutputArea").inner_text()

    assert not done()

    # (c) Cancel during the blocking cell takes effect before it ends
    card(page, "victim").locator("button.nbx-cancel").click()
    wait_until(lambda: state_of(page, "victim") == "cancelled", timeout=5,
               message="the victim card did not say cancelled")
    assert state_of(page, "victim") == "cancelled"
    assert not done(), "the click acted only after the blocking cell ended"
    shot("cancelled-during-blocking-cell")

    # (d) after the blocking cell: the victim stays cancelled and stopped, `live`
    # keeps moving (or has ended done, all steps counted). `live` counts 20
    # steps a second, so 20 more steps span more than one card refresh, in
    # which the victim (100 steps a second) would have moved had it run on.
    wait_until(done, timeout=30, message="the blocking cell did not end")
    stopped_at = progress_of(page, "victim")
    moved_from = progress_of(page, "live")
    wait_until(lambda: progress_of(page, "live") >= moved_from + 20 or state_of(page, "live") == "done",
               timeout=10, message="the live card did not move after the blocking cell")
    assert state_of(page, "live") in ("running", "done"), state_of(page, "live")
    if state_of(page, "live") == "done":
        assert progress_of(page, "live") == LIVE_STEPS
    assert state_of(page, "victim") == "cancelled"
    assert progress_of(page, "victim") == stopped_at, "the cancelled job kept counting"

    # (e) the dashboard renders and lists the jobs
    dash = page.locator(".nbx-dashboard")
    dash.wait_for(timeout=30_000)
    wait_until(lambda: {"live", "victim"} <= set(dash.locator(".nbx-row-name").all_inner_texts()), timeout=10)
    assert {"live", "victim"} <= set(dash.locator(".nbx-row-name").all_inner_texts())
    shot("dashboard")

    # (f) after a reload, the running job's card shows again and keeps moving
    # The user saves (or autosave does), then reloads the tab.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(lambda: not page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty"), timeout=10)
    page.reload()
    wait_for_kernel(page, path="e2e.ipynb")
    try:
        card(page, "live").wait_for(timeout=60_000)
    except Exception:
        shot("after-reload-failed")
        raise
    a = progress_of(page, "live")
    wait_until(lambda: progress_of(page, "live") > a, timeout=5, message="the card did not move after a reload")
    assert "Loading widget" not in page.locator("body").inner_text()
    assert state_of(page, "victim") == "cancelled"
    shot("after-reload")
