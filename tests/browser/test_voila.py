"""Voila, in Chromium: ``%jobs --live`` stays a live dashboard.

Voila runs every cell before the page exists, so card.js's hello cannot
reach the kernel while the cells run. The kernel knows from Voila's
``SERVER_SOFTWARE=voila/<version>`` (`notebook_ext.ui._frontend`) that a
widget front end will show its outputs; without that, the cell's end would
save the dashboard's static table over it (`UpdatePump._save_static`), and
the page would show a table that never moves.
"""

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser_harness import Lab, _free_port, _stop_server, screenshot

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60  # seconds until voila answers HTTP
PAGE_TIMEOUT = 120_000  # ms: voila sends the page only once every cell has run

# Two jobs that outlast the page's loading: `b` runs ~6 s, so the dashboard
# is seen with it still running, then both read done.
CELLS = [
    "%load_ext notebook_ext\nimport time",
    "%%bg -n a\nfor i in progress(range(25)):\n    time.sleep(0.15)",
    "%%bg -n b\nfor i in progress(range(40)):\n    time.sleep(0.15)",
    "%jobs --live",
]

# The dashboard's rows (card.js, drawDashboard): name -> state.
_ROW_STATES = """() => {
    const out = {};
    for (const tr of document.querySelectorAll('.nbx-dashboard tr.nbx-row'))
        out[tr.dataset.name] = tr.querySelector('.nbx-state').textContent;
    return out;
}"""


@pytest.fixture
def voila(tmp_path):
    """``voila live.ipynb`` on a free loopback port, without a token (Voila
    starts without one unless given ``--token``); stopped with its kernels."""
    root = tmp_path / "root"
    root.mkdir()
    port = _free_port()
    log_path = tmp_path / "voila.log"
    server = Lab(root, port, "", log_path)  # for write_notebook, log and the harness's teardown
    server.write_notebook("live.ipynb", CELLS)
    env = {**os.environ,
           "NOTEBOOK_EXT_HISTORY": str(tmp_path / "history.sqlite3"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),  # no user voila.json (preheating, tokens)
           # The kernel imports this checkout's notebook_ext, whatever is installed.
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for name in ("SERVER_SOFTWARE", "VOILA_PREHEAT", "NOTEBOOK_EXT_FRONTEND", "JUPYTER_TOKEN"):
        env.pop(name, None)  # only Voila itself may declare the front end
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", "live.ipynb", "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
             f"--Voila.connection_dir_root={tmp_path}", "--show_tracebacks=True"],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    server.proc = proc
    try:
        # Any HTTP answer will do; "/" itself would start a kernel and run the notebook.
        def answers():
            if proc.poll() is not None:
                pytest.fail(f"voila exited with code {proc.returncode}:\n{server.log()}", pytrace=False)
            try:
                urllib.request.urlopen(f"{server.url}/voila/static/not-there", timeout=2)
            except urllib.error.HTTPError:
                return True
            except (OSError, urllib.error.URLError):
                return False
            return True

        wait_until(answers, timeout=STARTUP_TIMEOUT, interval=0.2,
                   message=f"voila did not answer within {STARTUP_TIMEOUT} s")
        yield server
    finally:
        _stop_server(server, proc)


def test_live_dashboard_in_voila(voila, page):
    page.goto(voila.url + "/", timeout=PAGE_TIMEOUT)
    # A static table saved at the cell's end is in the page's HTML; the widget
    # is drawn once the page's widget manager reaches the kernel: wait for either.
    page.wait_for_function("() => document.querySelector('.nbx-dashboard, .nbx-static') !== null",
                           timeout=60_000)
    static = page.locator(".nbx-static")
    assert static.count() == 0, (f"Voila's page shows the static table, not the live dashboard: "
                                 f"{static.all_inner_texts()}\nvoila's log:\n{voila.log()}")
    dash = page.locator(".nbx-dashboard")
    dash.wait_for(timeout=10_000)
    page.wait_for_function(f"() => {{ const s = ({_ROW_STATES})(); return 'a' in s && 'b' in s; }}",
                           timeout=30_000)
    first = page.evaluate(_ROW_STATES)
    first_text = dash.inner_text()
    assert first["b"] != "done", f"the jobs ended before the page showed them: {first}"

    # Live: the rows move on until both jobs are done.
    page.wait_for_function(
        f"() => {{ const s = ({_ROW_STATES})(); return s.a === 'done' && s.b === 'done'; }}", timeout=60_000)
    assert dash.inner_text() != first_text
    assert page.evaluate(_ROW_STATES) == {"a": "done", "b": "done"}

    # Still the widget: no static table was saved over it meanwhile.
    assert static.count() == 0, static.all_inner_texts()
    assert "Loading widget" not in page.locator("body").inner_text()
    screenshot(page, "voila-dashboard")
