"""JupyterLab in Debian's Chromium, driven by Playwright.

The server runs on a free loopback port with a token and throwaway
settings/workspace folders; the browser is the system's /usr/bin/chromium
(test tools cannot download browsers here).
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent / "screenshots"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root, port, token):
        self.root, self.port, self.token = root, port, token
        self.url = f"http://127.0.0.1:{port}"

    def write_notebook(self, name, sources):
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(s) for s in sources],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, self.root / name)

    def tree_url(self, name):
        return f"{self.url}/lab/tree/{name}?token={self.token}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: scripts/run-tests.sh installs it (apt-get install chromium)")
    base = tmp_path_factory.mktemp("lab")
    root, settings, workspaces = base / "root", base / "settings", base / "workspaces"
    for d in (root, settings, workspaces):
        d.mkdir()
    for rel, value in [
        ("@jupyterlab/apputils-extension/notification.jupyterlab-settings", {"fetchNews": "false"}),
        ("@jupyterlab/notebook-extension/tracker.jupyterlab-settings", {"autoStartDefaultKernel": True}),
    ]:
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(base / "server.log", "w")
    env = {**os.environ, "NOTEBOOK_EXT_HISTORY": str(base / "history.sqlite3")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--port-retries=0", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={workspaces}", "--LabApp.expose_app_in_browser=True"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    lab = Lab(root, port, token)
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("JupyterLab did not start:\n" + (base / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    try:
        yield lab
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        pg = context.new_page()
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def wait_for_kernel(page, timeout=90):
    """Wait until the open notebook's kernel is connected and idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog button.jp-mod-accept")
        if accept.count():
            accept.first.click()
        ready = page.evaluate("""() => {
            const app = window.jupyterapp; if (!app) return false;
            const w = app.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
        }""")
        if ready:
            return
        time.sleep(0.3)
    raise AssertionError("the notebook's kernel never became idle")


def run_all(page):
    # Not awaited: the promise resolves only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
