"""Every tutorial, run top to bottom in JupyterLab in Chromium: a full-page
screenshot of each (``screenshots/tutorial-<stem>.png``), and no card, group
card row or ``%jobs`` table shows an error state the tutorial does not mean,
no cell shows a traceback it does not mean, no widget failed to display.
(Cells are numbered from 0, markdown cells included; [n] is the execution count.)

What each tutorial means to show is the table ``INTENDED`` below, read from
the notebooks' prose and code (tests/tutorials/test_tutorials.py checks the
same runs outside a browser). A tutorial missing from the table fails, so a
new one cannot slip through untested.

The tutorials run one at a time, each in a folder of its own in the lab's
throwaway root (02 and 03 write files next to the notebook), each kernel shut
down when its test ends (06 starts a Dask cluster; the machine has 2 cores).
"""

import contextlib
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser_harness import SCREENSHOTS, wait_for_kernel

from notebook_ext.core import FINAL_STATES
from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))

RUN_TIMEOUT = 600  # s for one tutorial's cells and jobs to end (06 starts a Dask cluster)
CARDS_TIMEOUT = 120  # s, after the last cell, for every card to show a final state
MAX_SCREENSHOT_HEIGHT = 16_000  # px; Chromium cannot capture much taller pages
WIDGET_ERRORS = ("Error displaying widget", "model not found", "Loading widget",
                 "Failed to load model class", "[anywidget]")

DONE = frozenset({"done"})
ACTIVE = frozenset({"pending", "queued", "running"})


@dataclass(frozen=True)
class Intent:
    """What a tutorial shows when it has run.

    cards:        every card it shows -> the states it may end in (a card not
                  listed may only end ``done``); a listed card that never shows
                  fails the test too.
    failed_items: cards that list failed work items on purpose -> how many
                  (a list: per card of that name, in the notebook's order).
    errors:       a snippet of a cell's source -> the exception that cell
                  raises on purpose (its traceback is the lesson).
    """

    cards: dict = field(default_factory=dict)
    failed_items: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)


INTENDED = {
    "01-quickstart": Intent(
        cards={"count": DONE, "forever": {"cancelled"}, "boom": {"failed"}},
        # `prep` and `train` (nx.submit) show no card; the last `%jobs` lists them.
        # `%result boom` re-raises boom's error; the cell catches it and prints its traceback.
    ),
    "02-background-training": Intent(
        # `mlp` is stopped on purpose with "Stop and keep": it ends done. The first
        # `long` is cancelled in place of a kernel restart (the crash); the
        # resumed `long` ends done.
        cards={**{name: DONE for name in ("sgd", "forest", "logreg", "svc", "mlp", "saved")},
               "long": {"cancelled", "done"}},
    ),
    "03-preprocessing-pipeline": Intent(
        # `feats` has one corrupt file: its card keeps that run's numbers (1
        # failed), and the card of `%retry feats` shows the repair (none left).
        # `stages` fails five items in `parse` on purpose, the job itself is done.
        cards={"feats": DONE, "stream": DONE, "stages": DONE},
        failed_items={"feats": [1, 0], "stages": 5},
    ),
    "04-hyperparameter-search": Intent(
        # `svc-same-cv` (nx.ml.search, no nx.ui.card) shows no card.
        cards={"svc-grid": DONE, "random": DONE},
    ),
    "05-async-serving": Intent(
        # `predictor.close()` ends the serving job: done.
        cards={"digits-api": DONE, "reviews": DONE},
    ),
    "06-scale-out-with-dask": Intent(
        cards={"on-dask": DONE, "long-on-dask": {"cancelled"}, "wine-search": DONE},
    ),
}

# Everything the checks read, in one pass over the notebook the page shows:
# the cells (from the model: running or not, execution count, error outputs),
# every card, group-card row and %jobs table row (from the DOM, by textContent,
# which does not depend on a cell being on screen), the stderr outputs as
# rendered, and which widget error texts are in any output.
_SNAPSHOT_JS = """(widgetErrors) => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext) return null;
    const nb = panel.content;
    const session = panel.sessionContext.session;
    const kernel = session && session.kernel;
    const txt = (el) => el ? el.textContent.trim() : null;
    const cellOf = (el) => {
        const c = el.closest('.jp-Cell');
        return c ? nb.widgets.findIndex((w) => w.node === c) : -1;
    };
    // A cell's execute request (its "future") is answered when future.done settles.
    const answered = window.__nbxAnswered || (window.__nbxAnswered = new WeakSet());
    const watched = window.__nbxWatched || (window.__nbxWatched = new WeakSet());
    const unanswered = (f) => {
        if (!f) return false;
        if (!watched.has(f)) {
            watched.add(f);
            const mark = () => answered.add(f);
            f.done.then(mark, mark);
        }
        return !answered.has(f);
    };
    const cells = nb.widgets.map((w, i) => {
        const m = w.model;
        const code = m.type === 'code';
        return {
            index: i, type: m.type, source: m.sharedModel.getSource(),
            // Pending: scheduled, or sent with no reply yet. The model's executionState alone
            // is not enough: when a cell raises, JupyterLab marks the cells queued after it
            // idle although the kernel still runs them; their request is still unanswered.
            running: code && (m.executionState === 'running' || unanswered(w.outputArea && w.outputArea.future)),
            count: code ? (m.executionCount ?? null) : null,
            errors: code ? m.outputs.toJSON().filter((o) => o.output_type === 'error')
                .map((o) => ({ename: o.ename, evalue: o.evalue})) : [],
        };
    });
    const cards = [...nb.node.querySelectorAll('.nbx-card')].map((c) => ({
        cell: cellOf(c),
        name: txt(c.querySelector(':scope > .nbx-header > .nbx-name')),
        state: txt(c.querySelector(':scope > .nbx-header > .nbx-state')),
        children: txt(c.querySelector(':scope > .nbx-children')),
        failed: txt(c.querySelector(':scope > .nbx-failed > summary')),
        error: txt(c.querySelector(':scope > .nbx-error')),
        board: [...c.querySelectorAll(':scope > .nbx-leaderboard:not(.nbx-stages) tbody tr')]
            .map((r) => txt(r.lastElementChild)),
    }));
    const rows = [...nb.node.querySelectorAll('.nbx-dashboard .nbx-row')].map((r) => ({
        cell: cellOf(r), name: r.dataset.name, state: txt(r.querySelector('.nbx-state')),
    }));
    const tables = [...nb.node.querySelectorAll('.nbx-jobs-table tbody tr')].map((r) => ({
        cell: cellOf(r), name: txt(r.cells[0]), state: txt(r.cells[1]),
    }));
    const stderr = [...nb.node.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')].map((o) => ({
        cell: cellOf(o), text: o.textContent,
    }));
    // Widget errors show in outputs (sources and prose may quote them).
    const outputs = [...nb.node.querySelectorAll('.jp-OutputArea')].map((o) => o.textContent).join(' ');
    return {
        path: panel.context.path, kernel: kernel ? kernel.status : null,
        cells, cards, rows, tables, stderr,
        widgetErrors: widgetErrors.filter((t) => outputs.includes(t)),
    };
}"""


def snapshot(page):
    return page.evaluate(_SNAPSHOT_JS, list(WIDGET_ERRORS))


def start_run_all(page):
    """Run every cell (not awaited: the command's promise settles early when a
    cell raises, although the kernel goes on with the next cells)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def code_cells(snap):
    return [c for c in snap["cells"] if c["type"] == "code"]


def cells_busy(snap):
    """'' when every cell's request is answered (run, or aborted) and the kernel is idle; otherwise why not."""
    if snap is None:
        return "no notebook on the page"
    busy = []
    if snap["kernel"] != "idle":
        busy.append(f"kernel is {snap['kernel']}")
    running = [c["index"] for c in code_cells(snap) if c["running"]]
    if running:  # run-all sends every cell at once; each is pending until its reply is in
        busy.append(f"cells {running} still running")
    return "; ".join(busy)


def cards_unsettled(snap, intent):
    """'' when every card the tutorial means is shown and every card and
    group-card row shows a final state; otherwise what is missing."""
    if snap is None:
        return "no notebook on the page"
    waiting = []
    shown = {c["name"] for c in snap["cards"]}
    missing = sorted(set(intent.cards) - shown)
    if missing:
        waiting.append(f"cards {missing} not shown")
    active = [f"{c['name']}={c['state']}" for c in snap["cards"] if c["state"] not in FINAL_STATES]
    active += [f"{r['name']}={r['state']} (group row)" for r in snap["rows"] if r["state"] not in FINAL_STATES]
    if active:
        waiting.append(f"not final: {', '.join(active)}")
    if "Loading widget" in snap["widgetErrors"]:
        waiting.append("a widget is still loading")
    return "; ".join(waiting)


def intended_states(intent, name):
    return frozenset(intent.cards.get(name, DONE))


def unintended_states(snap, intent):
    """Every card, group-card row, child-job count, leaderboard row and
    ``%jobs`` row whose state the tutorial does not mean."""
    bad = []
    seen: dict = {}
    for c in snap["cards"]:
        nth = seen[c["name"]] = seen.get(c["name"], -1) + 1
        ok = intended_states(intent, c["name"])
        where = f"card {c['name']!r} (cell {c['cell']})"
        if c["state"] not in ok:
            detail = f": {c['error']}" if c["error"] else ""
            bad.append(f"{where} is {c['state']}, meant {sorted(ok)}{detail}")
        if c["children"]:  # "1 sub-job done", "3 sub-jobs: 2 done, 1 timed out"
            text = c["children"]
            counts = (re.findall(r"(\d+) ([a-z ]+)", text.partition(": ")[2]) if ": " in text
                      else re.findall(r"^(\d+) sub-jobs? ([a-z ]+)$", text))
            for n, state in counts:
                state = state.strip().replace(" ", "_")
                if state not in ok:
                    bad.append(f"{where}: {n} child job(s) {state}, meant {sorted(ok)}")
        for state in sorted(set(c["board"]) - ok):
            bad.append(f"{where}: {c['board'].count(state)} leaderboard row(s) {state}, meant {sorted(ok)}")
        failed = int(c["failed"].split()[0]) if c["failed"] else 0
        meant = intent.failed_items.get(c["name"], 0)
        meant = meant[nth] if isinstance(meant, list) and nth < len(meant) else meant
        if failed != meant:
            bad.append(f"{where} lists {failed} failed item(s), meant {meant}")
    for r in snap["rows"]:
        ok = intended_states(intent, r["name"])
        if r["state"] not in ok:
            bad.append(f"group card row {r['name']!r} (cell {r['cell']}) is {r['state']}, meant {sorted(ok)}")
    for r in snap["tables"]:  # a %jobs table is a snapshot of its time: running is fine there
        ok = intended_states(intent, r["name"])
        if r["state"] not in ok | ACTIVE:
            bad.append(f"%jobs row {r['name']!r} (cell {r['cell']}) is {r['state']}, meant {sorted(ok)}")
    return bad


def _intended_error(intent, cell):
    for needle, ename in intent.errors.items():
        if needle in cell["source"]:
            return ename
    return None


def _looks_like_traceback(text):
    return "Traceback (most recent call last)" in text or bool(re.search(r"^-{20,}\s*$", text, re.MULTILINE))


def unintended_errors(snap, intent):
    """Error outputs (in the model, and tracebacks as rendered) that the tutorial does not mean,
    and intended ones that did not happen."""
    bad = []
    cells = snap["cells"]
    for c in code_cells(snap):
        meant = _intended_error(intent, c)
        names = [e["ename"] for e in c["errors"]]
        where = f"cell {c['index']} [{c['count'] or ' '}] ({c['source'].partition(chr(10))[0]!r})"
        for e in c["errors"]:
            if e["ename"] != meant:
                bad.append(f"{where} raised {e['ename']}: {e['evalue']}")
        if meant and meant not in names:
            bad.append(f"{where} was meant to raise {meant}; it showed {names or 'no error'}")
    for o in snap["stderr"]:
        if not _looks_like_traceback(o["text"]):
            continue
        cell = cells[o["cell"]] if 0 <= o["cell"] < len(cells) else None
        meant = _intended_error(intent, cell) if cell else None
        if not meant or meant not in o["text"]:
            bad.append(f"cell {o['cell']} shows a traceback: {o['text'].strip()[-300:]!r}")
    return bad


def wait_for(page, why, timeout, what):
    """Poll ``why(snapshot)`` until it says nothing is missing; return that snapshot."""
    last = {}

    def ok():
        snap = snapshot(page)
        last["why"] = why(snap)
        return snap if not last["why"] else None

    try:
        return wait_until(ok, timeout=timeout, interval=0.25)
    except AssertionError:
        raise AssertionError(f"{what} not within {timeout:.0f} s: {last.get('why')}") from None


def run_and_settle(page, intent, timeout=RUN_TIMEOUT):
    """Run all cells, wait until they have run and every card shows a final
    state; return the snapshot."""
    deadline = time.monotonic() + timeout
    start_run_all(page)
    wait_until(lambda: any(c["running"] or c["count"] is not None for c in code_cells(snapshot(page) or {"cells": []})),
               timeout=30, interval=0.1, message="run-all did not start any cell")
    snap = wait_for(page, cells_busy, deadline - time.monotonic(), "every cell run")
    # Cells aborted after an unmeant error never run: no card will come; say why now.
    never_ran = [c["index"] for c in code_cells(snap) if c["count"] is None]
    assert not never_ran, (f"cells {never_ran} never ran (aborted after an error); errors: "
                           + "\n".join(unintended_errors(snap, intent)))
    # Cards draw once their widget models reach the page; jobs may still be ending.
    return wait_for(page, lambda s: cards_unsettled(s, intent), min(CARDS_TIMEOUT, deadline - time.monotonic() + 10),
                    "every card shown and final")


def full_page_screenshot(page, path):
    """Make the viewport as tall as the notebook (JupyterLab scrolls inside the
    notebook panel, not the page), then capture the page."""
    measure = """() => {
        const outer = window.jupyterapp.shell.currentWidget.node.querySelector('.jp-WindowedPanel-outer');
        outer.scrollTop = 0;
        const cells = outer.querySelectorAll('.jp-Cell');
        const last = cells[cells.length - 1];
        const bottom = last ? last.getBoundingClientRect().bottom : 0;
        return {need: Math.ceil(bottom + 40), have: window.innerHeight};
    }"""
    next_frame = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    width = page.viewport_size["width"]
    for _ in range(6):  # cells scrolled into view get their real height (content-visibility)
        m = page.evaluate(measure)
        height = min(max(m["need"], m["have"]), MAX_SCREENSHOT_HEIGHT)
        if height == m["have"]:
            break
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate(next_frame)
    page.evaluate(next_frame)
    page.screenshot(path=str(path), full_page=True)
    return path


def shut_down(lab, path):
    """End the notebook's session and kernel (and with it 06's Dask cluster)."""
    try:
        for session in lab.api("/api/sessions") or []:
            if session.get("path") == path:
                lab.api(f"/api/sessions/{session['id']}", method="DELETE", timeout=30)
        print(f"kernels still running: {len(lab.api('/api/kernels') or [])}")
    except OSError:  # already gone; the lab's teardown stops whatever is left
        pass


@pytest.mark.timeout(RUN_TIMEOUT + 300)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_in_jupyterlab(lab, page, notebook):
    stem = notebook.stem
    assert stem in INTENDED, (f"{notebook.name} is not in INTENDED: list the cards it shows and the states "
                              "they are meant to end in (and any error it raises on purpose)")
    intent = INTENDED[stem]
    rel = f"{stem}/{notebook.name}"  # a folder of its own: the tutorial writes files next to itself
    (lab.root_dir / stem).mkdir(exist_ok=True)
    shutil.copy(notebook, lab.root_dir / rel)

    t0 = time.monotonic()
    try:
        # A workspace of its own: the page does not reopen (and start kernels for) the earlier tutorials.
        page.goto(f"{lab.url}/lab/workspaces/{stem}/tree/{rel}?token={lab.token}")
        wait_for_kernel(page, path=rel)
        shot = SCREENSHOTS / f"tutorial-{stem}.png"
        try:
            run_and_settle(page, intent)
        except BaseException:  # the screenshot is wanted most when the run went wrong
            with contextlib.suppress(Exception):
                full_page_screenshot(page, shot)
            raise
        full_page_screenshot(page, shot)
        # After the resize every card is drawn on screen; cards drawn only now say "hello" to
        # the kernel, which is busy for that moment (seen once in a CI-like run): wait it out.
        snap = wait_for(page, lambda s: cells_busy(s) or cards_unsettled(s, intent), 60, "settled after the resize")
        print(f"\n{stem}: opened, ran and settled in {time.monotonic() - t0:.1f} s; cards: "
              + ", ".join(f"{c['name']}={c['state']}" for c in snap["cards"]))
        for o in snap["stderr"]:  # warnings and logs: shown in the log, not failures
            if not _looks_like_traceback(o["text"]):
                print(f"  stderr in cell {o['cell']}: {o['text'].strip()[:200]!r}")

        assert not cells_busy(snap) and not cards_unsettled(snap, intent), cards_unsettled(snap, intent)
        bad = unintended_states(snap, intent)
        assert not bad, "cards in a state the tutorial does not mean:\n" + "\n".join(bad)
        bad = unintended_errors(snap, intent)
        assert not bad, "errors the tutorial does not mean:\n" + "\n".join(bad)
        assert not snap["widgetErrors"], f"widget errors on the page: {snap['widgetErrors']}"
    finally:
        shut_down(lab, rel)
