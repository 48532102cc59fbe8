"""The JupyterLab / Notebook 7 extension in Chromium: the jobs panel (every
kernel's jobs, grouped by notebook; Cancel; go to cell), cards that stay true
when their kernel restarts and when a notebook is reopened with a new kernel,
a status bar that reads "Busy" while a cell runs beside a live card, and a
notification when a long job ends. Screenshots: screenshots/<front end>-ext-*.png.
"""

import re

import nbformat
import pytest
from browser_harness import NotebookKernel, open_notebook_and_run_all, screenshot, wait_for_kernel

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CARD_MIME = "application/vnd.notebook-ext.card+json"
LONG_LOOP = "%%bg -n {name}\nimport time\nfor i in progress(range(10**6)):\n    time.sleep(0.01)"


def panel_job(page, notebook, name):
    return page.locator(f'#notebook-ext-jobs .nbx-panel-group[data-notebook="{notebook}"] '
                        f'.nbx-panel-job[data-name="{name}"]')


def show_panel(page):
    page.evaluate("() => window.jupyterapp.commands.execute('notebook-ext:show-jobs')")
    page.locator("#notebook-ext-jobs").wait_for(state="visible", timeout=10_000)


def live_card(page, name):
    return page.locator(".nbx-card", has=page.locator(".nbx-name", has_text=re.compile(f"^{name}$")))


def saved_card(page, name):
    return page.locator(".nbx-saved-card", has=page.locator(".nbx-name", has_text=re.compile(f"^{name}$")))


def test_panel_lists_two_notebooks_cancels_and_goes_to_cell(frontend_server, page):
    server = frontend_server
    server.write_notebook("one.ipynb", ["%load_ext notebook_ext", LONG_LOOP.format(name="fit")])
    (server.root_dir / "sub").mkdir(exist_ok=True)
    server.write_notebook("sub/two.ipynb", ["# started from a kernel client"])
    other = NotebookKernel(server, "sub/two.ipynb")
    try:
        other.run("%load_ext notebook_ext")
        other.run(LONG_LOOP.format(name="prep"))
        open_notebook_and_run_all(page, server, "one.ipynb")
        live_card(page, "fit").wait_for(timeout=60_000)
        show_panel(page)
        fit, prep = panel_job(page, "one.ipynb", "fit"), panel_job(page, "sub/two.ipynb", "prep")
        for row in (fit, prep):
            row.and_(page.locator('[data-state="running"]')).wait_for(timeout=15_000)
        # its live snapshot (written by its kernel once a second) reaches the panel
        wait_until(lambda: re.search(r"\d+/1000000 \(\d+%\).*elapsed .*ETA", fit.inner_text().replace("\n", " ")),
                   timeout=10, interval=0.1, message="the panel shows no progress, elapsed time and ETA for fit")
        screenshot(page, f"{server.label}-ext-panel")

        # Cancel in the panel stops fit (through the server and the ledger's mailbox)
        fit.locator(".nbx-panel-cancel").click()
        fit.and_(page.locator('[data-state="cancelled"]')).wait_for(timeout=10_000)
        live_card(page, "fit").and_(page.locator('[data-state="cancelled"]')).wait_for(timeout=10_000)
        assert prep.get_attribute("data-state") == "running"

        # go to cell: the notebook's cell 2 (index 1), the one showing fit's card
        page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                      " nb.activeCellIndex = 0; }")
        fit.locator(".nbx-panel-goto").click()
        wait_until(lambda: page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 1,
                   timeout=10, interval=0.1, message="go to cell did not select the cell of fit's card")

        prep.locator(".nbx-panel-cancel").click()
        prep.and_(page.locator('[data-state="cancelled"]')).wait_for(timeout=10_000)
    finally:
        other.close()


def test_restarted_kernel_cards_say_interrupted_within_2s(frontend_server, page):
    server = frontend_server
    server.write_notebook("restart.ipynb", [
        "%load_ext notebook_ext", LONG_LOOP.format(name="long"), "%%bg -n quick\n1 + 1"])
    open_notebook_and_run_all(page, server, "restart.ipynb")
    live_card(page, "long").and_(page.locator('[data-state="running"]')).wait_for(timeout=60_000)
    live_card(page, "quick").and_(page.locator('[data-state="done"]')).wait_for(timeout=30_000)

    page.evaluate("() => { window.__restartAt = Date.now();"
                  " window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart(); }")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.nbx-saved-card')].some(c =>
               c.querySelector('.nbx-name').textContent === 'long' &&
               c.querySelector('.nbx-state').textContent === 'interrupted (kernel restarted)')""",
        timeout=2_000)
    took = page.evaluate("() => Date.now() - window.__restartAt")
    long = saved_card(page, "long")
    assert long.locator("button.nbx-cancel, button.nbx-stop").count() == 0  # nothing left to cancel
    assert long.locator(".nbx-eta").count() == 0  # no ETA for a job that no longer runs
    quick = saved_card(page, "quick")
    assert quick.locator(".nbx-state").inner_text() == "done"  # it had ended: it says so still
    assert live_card(page, "long").count() == 0
    screenshot(page, f"{server.label}-ext-restarted")
    print(f"card said interrupted {took} ms after the restart")


def test_reopened_notebook_shows_final_states_not_model_not_found(frontend_server, page):
    server = frontend_server
    path = server.write_notebook("reopen.ipynb", [
        "%load_ext notebook_ext\nimport time",
        "%%bg -n ok\nfor i in progress(range(20)):\n    time.sleep(0.05)\n'fine'",
        "%%bg -n bad\nraise ValueError('bad input')",
        "%jobs --live",
    ])
    open_notebook_and_run_all(page, server, "reopen.ipynb")
    live_card(page, "ok").and_(page.locator('[data-state="done"]')).wait_for(timeout=60_000)
    live_card(page, "bad").and_(page.locator('[data-state="failed"]')).wait_for(timeout=30_000)
    # the kernel saves each card's final state with it when the job ends
    saved_state = """(name) => { const nb = window.jupyterapp.shell.currentWidget.content;
        for (const cell of nb.widgets) { const outs = cell.model.outputs; if (!outs) continue;
          for (let i = 0; i < outs.length; i++) { const d = outs.get(i).data['%s'];
            if (d && d.name === name) return d.snap.state; } } return null; }""" % CARD_MIME
    wait_until(lambda: page.evaluate(saved_state, "ok") == "done" and page.evaluate(saved_state, "bad") == "failed",
               timeout=10, interval=0.1, message="the final states did not reach the notebook's outputs")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(lambda: not page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty"),
               timeout=10, interval=0.1)
    saved = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get(CARD_MIME)
            if data and data.get("kind") == "card":
                saved[data["name"]] = data["snap"]["state"]
    assert saved == {"ok": "done", "bad": "failed"}, saved

    # close it and shut its kernel down; reopen it: a new kernel, no such widget models
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    wait_until(lambda: not [s for s in server.api("/api/sessions") if s["path"] == "reopen.ipynb"],
               timeout=20, interval=0.2, message="the notebook's session did not end")
    page.goto(server.notebook_url("reopen.ipynb"))
    wait_for_kernel(page, path="reopen.ipynb")
    saved_card(page, "ok").wait_for(timeout=30_000)
    saved_card(page, "bad").wait_for(timeout=30_000)
    page.locator(".nbx-saved-dashboard").wait_for(timeout=30_000)
    wait_until(lambda: "Loading widget" not in page.locator("body").inner_text(), timeout=15, interval=0.2,
               message="a card still says 'Loading widget'")
    body = page.locator("body").inner_text()
    assert "model not found" not in body and "Error displaying widget" not in body
    assert saved_card(page, "ok").locator(".nbx-state").inner_text() == "done"
    assert saved_card(page, "bad").locator(".nbx-state").inner_text() == "failed"
    assert "bad input" in saved_card(page, "bad").inner_text()
    # once the new kernel's widget manager has no such model, the card says where it is from
    wait_until(lambda: "from an earlier session" in saved_card(page, "ok").inner_text(), timeout=15, interval=0.1,
               message="the reopened card does not say it is from an earlier session")
    screenshot(page, f"{server.label}-ext-reopened")


def kernel_status_text(page):
    return page.locator("#jp-main-statusbar").inner_text()


def test_status_bar_busy_beside_a_live_card_and_a_long_job_notifies(jupyter_lab, page):
    lab = jupyter_lab
    lab.write_notebook("status.ipynb", [
        "%load_ext notebook_ext\nimport time",
        "%%bg -n long30\nfor i in progress(range(310)):\n    time.sleep(0.1)",
        "time.sleep(5)\nprint('slept')",
    ])
    open_notebook_and_run_all(page, lab, "status.ipynb")
    live_card(page, "long30").wait_for(timeout=60_000)
    sleeper = page.locator(".jp-CodeCell").nth(2)
    wait_until(lambda: "[*]" in sleeper.locator(".jp-InputPrompt").inner_text(), timeout=30, interval=0.05)
    samples = []
    while "slept" not in sleeper.locator(".jp-OutputArea").inner_text():
        samples.append(kernel_status_text(page))
        page.wait_for_timeout(100)  # a sampling period, not a wait for a state
    during = [s for s in samples[:-3]]  # the last samples may see the cell's own end
    assert len(during) >= 20, samples
    idle = [s for s in during if "Idle" in s]
    assert not idle and all("Busy" in s for s in during), (len(idle), len(during), idle[:1])
    screenshot(page, "lab-ext-status-busy")

    # The user switches to another tab. Headless Chromium shows no desktop
    # notifications: the page's Notification is a recorder that says
    # permission was granted, and the page says it is hidden.
    page.evaluate("""() => {
        window.__shown = [];
        window.Notification = class { constructor(title, options) { window.__shown.push([title, options.body]); } };
        window.Notification.permission = 'granted';
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    }""")
    # the 31 s job's end: a notification with "Go to cell", and a browser notification
    toast = page.locator(".Toastify__toast", has_text="long30 done")
    toast.wait_for(timeout=60_000)
    assert "Go to cell" in toast.inner_text()
    shown = page.evaluate("() => window.__shown")
    assert [t for t, _ in shown] == ["notebook_ext: long30 done"], shown
    assert "status.ipynb" in shown[0][1]
    screenshot(page, "lab-ext-notification")
