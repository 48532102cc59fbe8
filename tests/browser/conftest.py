"""JupyterLab and Notebook 7 in Debian's Chromium, driven by Playwright (sync API).

Fixtures
--------
chromium_path     (session)  "/usr/bin/chromium"; fails clearly when it is missing.
jupyter_lab       (module)   a running ``jupyter lab`` (a :class:`Lab`, ``frontend`` "lab"):
                             loopback, free port, random token, throwaway root/settings/
                             workspaces folders.
lab               (module)   the same object as ``jupyter_lab`` (older name).
jupyter_notebook7 (module)   the same for Notebook 7 (``python -m notebook``; ``frontend``
                             "notebook", ``label`` "notebook7").
frontend_server   (module)   parametrised ["lab", "notebook7"]: a test using it runs in
                             JupyterLab, then in Notebook 7 (one server at a time).
browser           (module)   a Playwright ``Browser`` on the system chromium.
page              (function) a ``Page`` in a fresh browser context; on failure a
                             screenshot goes to ``screenshots/<test>-failed.png``.

A :class:`Lab` has ``url``, ``token``, ``root_dir``, ``frontend``, ``label`` ("lab" /
"notebook7", for ids and screenshot names), ``title``, ``write_notebook(name, cells)``,
``notebook_url(name)`` (``/lab/tree/NAME`` or ``/notebooks/NAME``; ``tree_url`` is the
older name), ``api(path)`` and ``log()``.

Helpers: ``from browser_harness import ...`` (this module under a name of its own;
``from conftest import ...`` breaks when pytest is given other test folders that
have a conftest.py too, e.g. ``pytest tests/browser/x.py tests/tutorials``).
They work in both front ends: Notebook 7 started with
``--JupyterNotebookApp.expose_app_in_browser=True`` sets ``window.jupyterapp`` too,
its ``shell.currentWidget`` is the notebook panel (``sessionContext``, ``context.path``),
``notebook:run-all-cells`` runs every cell, and cells have the same classes
(``.jp-CodeCell``, ``.jp-InputPrompt``, ``.jp-OutputArea``).
----------------------------------------------------------------------------------
open_notebook_and_run_all(page, lab, name)   open, wait for an idle kernel, run all
wait_for_kernel(page, path=None)             wait for a connected, idle kernel
run_all(page)                                start ``notebook:run-all-cells`` (not awaited)
texts_by_class(page, cls) / text_by_class(page, cls)
screenshot(page, name)                       save ``screenshots/<name>.png`` (name it
                                             ``f"{lab.label}-..."`` in a test of both front ends)
start_server(frontend, folder) / stop_server(lab)   a server outside the fixtures
screenshots_written()                        the screenshot files this run wrote (the
                                             fixture's pages note theirs); the terminal
                                             summary lists them (CI keeps the folder)

The server is started the way /work/shared/DESIGN.md ("Browser testing notes") says;
test tools cannot download browsers here, so the browser is the system's chromium.
"""

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from notebook_ext.testing import stop_process_tree

# Every folder's conftest.py is imported as the module "conftest", the last one
# replacing the others in sys.modules; this alias does not move.
sys.modules["browser_harness"] = sys.modules[__name__]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
SERVER_START_TIMEOUT = 60  # seconds until /api/status answers
KERNEL_TIMEOUT = 90  # seconds until the notebook's kernel is connected and idle

# frontend -> how its server starts and where it opens a notebook.
# Notebook 7's server loads JupyterLab's server extension too (the package
# `notebook` requires `jupyterlab`), and JupyterLab's handler is the one that
# answers /lab/api/settings and /lab/api/workspaces, on LabApp's folders: with
# only --JupyterNotebookApp.user_settings_dir the page gets none of
# USER_SETTINGS (seen in a run: a notebook without a kernelspec then opens a
# "Select Kernel" dialog), so those two folders are given to both apps.
FRONTENDS = {
    "lab": {"label": "lab", "title": "JupyterLab", "module": "jupyterlab", "app": "LabApp",
            "settings_apps": ("LabApp",), "notebook_path": "/lab/tree/"},
    "notebook": {"label": "notebook7", "title": "Notebook 7", "module": "notebook", "app": "JupyterNotebookApp",
                 "settings_apps": ("LabApp", "JupyterNotebookApp"), "notebook_path": "/notebooks/"},
}

USER_SETTINGS = {
    # The news toast otherwise covers part of the page.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    # Opening a notebook starts its kernel without a "Select Kernel" dialog.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running Jupyter server with its front end: ``url``, ``token``, ``root_dir``,
    ``frontend`` ("lab" for JupyterLab, "notebook" for Notebook 7) and helpers."""

    def __init__(self, root_dir, port, token, log_path, proc=None, frontend="lab"):
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {sorted(FRONTENDS)}, not {frontend!r}")
        self.root_dir = Path(root_dir)
        self.port, self.token, self.log_path, self.proc = port, token, Path(log_path), proc
        self.frontend = frontend
        self.url = f"http://127.0.0.1:{port}"

    @property
    def label(self):
        """``"lab"`` or ``"notebook7"``: for test ids and screenshot names."""
        return FRONTENDS[self.frontend]["label"]

    @property
    def title(self):
        """``"JupyterLab"`` or ``"Notebook 7"``: for messages."""
        return FRONTENDS[self.frontend]["title"]

    @property
    def root(self):  # older name
        return self.root_dir

    def write_notebook(self, name, cells, metadata=None):
        """Write ``root_dir/name`` with one code cell per source (a str is one cell).

        The kernelspec is ``python3``, so the kernel starts without asking.
        Returns the notebook's path."""
        if isinstance(cells, str):
            cells = [cells]
        nb = nbformat.v4.new_notebook(
            cells=[c if isinstance(c, nbformat.NotebookNode) else nbformat.v4.new_code_cell(c) for c in cells],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                      **(metadata or {})})
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def notebook_url(self, name):
        """The page that opens ``root_dir/name``: ``/lab/tree/NAME`` (JupyterLab), ``/notebooks/NAME`` (Notebook 7)."""
        return f"{self.url}{FRONTENDS[self.frontend]['notebook_path']}{name}?token={self.token}"

    tree_url = notebook_url  # older name

    def api(self, path, method="GET", timeout=5):
        """Call the server's REST API (``path`` like ``/api/kernels``); returns decoded JSON or None."""
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log(self, tail=4000):
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="session")
def chromium_path():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium. "
                    "`bash scripts/run-tests.sh` installs it (apt-get install -y chromium).",
                    pytrace=False)
    return CHROMIUM


def _stop_server(lab, proc):
    # Kernels run in their own sessions (jupyter_client starts them with
    # start_new_session), so shut them down through the API first, then stop
    # the server, then kill whatever it left behind.
    try:
        for k in lab.api("/api/kernels") or []:
            try:
                lab.api(f"/api/kernels/{k['id']}", method="DELETE", timeout=15)
            except (OSError, urllib.error.URLError):
                pass
    except Exception:
        pass
    stop_process_tree(proc)  # SIGTERM: the server shuts down its remaining kernels


def start_server(frontend, base):
    """Start ``frontend``'s server ("lab": ``jupyter lab``, "notebook": Notebook 7)
    in the empty folder ``base`` and wait until it answers; returns a :class:`Lab`.
    Stop it with :func:`stop_server`."""
    spec = FRONTENDS[frontend]
    base = Path(base)
    root, settings, workspaces, runtime = (base / d for d in ("root", "settings", "workspaces", "runtime"))
    for d in (root, settings, workspaces, runtime):
        d.mkdir()
    for rel, value in USER_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    log_path = base / "server.log"
    env = {**os.environ,
           "NOTEBOOK_EXT_HISTORY": str(base / "history.sqlite3"),
           "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("JUPYTER_TOKEN", None)
    folders = [arg for app in spec["settings_apps"]
               for arg in (f"--{app}.user_settings_dir={settings}", f"--{app}.workspaces_dir={workspaces}")]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", spec["module"], "--no-browser", "--port-retries=0", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", *folders, f"--{spec['app']}.expose_app_in_browser=True"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)  # a Ctrl-C in the terminal reaches pytest only; teardown stops the server
    lab = Lab(root, port, token, log_path, proc, frontend=frontend)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    try:
        while True:
            try:
                lab.api("/api/status", timeout=2)
                return lab
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if proc.poll() is not None:
                pytest.fail(f"{lab.title} exited with code {proc.returncode} before answering:\n{lab.log()}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"{lab.title} did not answer /api/status within {SERVER_START_TIMEOUT} s:\n"
                            f"{lab.log()}", pytrace=False)
            time.sleep(0.3)
    except BaseException:
        stop_server(lab)
        raise


def stop_server(lab):
    _stop_server(lab, lab.proc)


def _serve(tmp_path_factory, frontend):
    lab = start_server(frontend, tmp_path_factory.mktemp(FRONTENDS[frontend]["label"]))
    try:
        yield lab
    finally:
        stop_server(lab)


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    yield from _serve(tmp_path_factory, "lab")


@pytest.fixture(scope="module")
def lab(jupyter_lab):
    return jupyter_lab


@pytest.fixture(scope="module")
def jupyter_notebook7(tmp_path_factory):
    yield from _serve(tmp_path_factory, "notebook")


@pytest.fixture(scope="module", params=["lab", "notebook7"])
def frontend_server(request, tmp_path_factory):
    """JupyterLab, then Notebook 7: a test using it runs once in each. It starts
    a server of its own (the one of ``jupyter_lab`` is not shared), so only one
    of the two runs at a time."""
    yield from _serve(tmp_path_factory, {"lab": "lab", "notebook7": "notebook"}[request.param])


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    except Exception:
        pw.stop()
        raise
    try:
        yield b
    finally:
        b.close()
        pw.stop()


# Screenshot files this pytest process wrote, in order. Written down as they
# are taken (not found by date afterwards: another run in the same checkout
# writes to the same folder).
_SCREENSHOTS_TAKEN = []


def _taken(path):
    path = Path(path).resolve()
    if path not in _SCREENSHOTS_TAKEN:
        _SCREENSHOTS_TAKEN.append(path)


def _noting_screenshots(pg):
    """Make ``pg.screenshot(path=...)`` note its file, so screenshots a test
    takes with Playwright's own call are listed too."""
    take = pg.screenshot

    def screenshot(*args, **kwargs):
        data = take(*args, **kwargs)
        if kwargs.get("path") is not None:
            _taken(kwargs["path"])
        return data

    pg.screenshot = screenshot
    return pg


def screenshots_written():
    """The screenshot files this run wrote (absolute paths, in the order taken)."""
    return [p for p in _SCREENSHOTS_TAKEN if p.exists()]


def pytest_terminal_summary(terminalreporter):
    shots = screenshots_written()
    if shots:
        terminalreporter.write_sep("-", f"browser screenshots written in this run ({len(shots)})")
        for path in shots:
            terminalreporter.write_line(str(path))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def page(browser, request):
    SCREENSHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    pg = _noting_screenshots(context.new_page())
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            try:
                pg.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-failed.png"))
            except Exception:
                pass
        context.close()


# ---------------------------------------------------------------- helpers

_KERNEL_READY_JS = """(path) => {
    const app = window.jupyterapp; if (!app) return false;
    const w = app.shell.currentWidget;
    if (!w || !w.sessionContext) return false;
    if (path && !(w.context && w.context.path === path)) return false;
    const k = w.sessionContext.session && w.sessionContext.session.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


CARD_JS = Path(__import__("notebook_ext.ui", fromlist=["x"]).__file__).parent / "card.js"


@pytest.fixture
def card_js(page):
    """A blank page with ``window.card``: the card's own card.js module."""
    url = "data:text/javascript;base64," + base64.b64encode(CARD_JS.read_bytes()).decode()
    page.set_content("<html><body></body></html>")
    page.evaluate("async (url) => { window.card = await import(url); }", url)
    return page


def wait_for_kernel(page, path=None, timeout=KERNEL_TIMEOUT):
    """Wait until the current notebook (``path``, when given) has a connected, idle kernel.

    The toolbar says "idle" before a kernel is attached, so this asks the
    session itself. A "Select Kernel" dialog, if one still appears, is accepted."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if page.evaluate(_KERNEL_READY_JS, path):
                return
            accept = page.locator(".jp-Dialog button.jp-mod-accept")
            if accept.count():
                accept.first.click(timeout=2000)
        except PlaywrightError:  # the page is still navigating, or the dialog went away
            pass
        time.sleep(0.25)
    raise AssertionError(f"the notebook's kernel was not connected and idle within {timeout} s")


def run_all(page):
    """Start ``notebook:run-all-cells``; its promise resolves only when every cell has run, so it is not awaited."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def open_notebook_and_run_all(page, lab, name, timeout=KERNEL_TIMEOUT):
    """Open ``root_dir/name`` in ``lab``'s front end, wait for its kernel, start running all cells."""
    page.goto(lab.notebook_url(name))
    wait_for_kernel(page, path=name, timeout=timeout)
    run_all(page)


def texts_by_class(page, cls):
    """Inner text of every element with CSS class ``cls`` (no leading dot needed)."""
    return page.locator("." + cls.lstrip(".")).all_inner_texts()


def text_by_class(page, cls):
    """Inner text of all elements with class ``cls``, joined by newlines ("" if none)."""
    return "\n".join(texts_by_class(page, cls))


def screenshot(page, name):
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    _taken(path)  # also when ``page`` is not the fixture's
    return path


class NotebookKernel:
    """A notebook session opened through ``lab``'s REST API (as a front end opens
    a notebook: the server starts its kernel), and a client on that kernel.
    ``run(code)`` executes and asserts it went well; ``close()`` stops the client."""

    def __init__(self, lab, path):
        from jupyter_client import BlockingKernelClient

        req = urllib.request.Request(
            lab.url + "/api/sessions", method="POST",
            data=json.dumps({"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}).encode(),
            headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            session = json.loads(r.read())
        self.id = session["kernel"]["id"]
        runtime = lab.root_dir.parent / "runtime"  # JUPYTER_RUNTIME_DIR of start_server
        self.kc = BlockingKernelClient(connection_file=str(runtime / f"kernel-{self.id}.json"))
        self.kc.load_connection_file()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code):
        reply = self.kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]

    def close(self):
        self.kc.stop_channels()
