"""Run a tutorial top to bottom in a fresh kernel, as a user would, and read
what it printed and which card states it saved.

Three runners, the ways a tutorial meets its readers and their pipelines:
``nbclient`` (a `NotebookClient` in this process, which can also kill the
kernel where the tutorial says to restart it), ``papermill`` (its Python API,
which fails on any error output whatever the cell's tags) and ``nbconvert``
(``jupyter nbconvert --to notebook --execute`` in a subprocess)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from notebook_ext.core import FINAL_STATES
from notebook_ext.core.lowlevel import Ledger

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
RUNNERS = ("nbclient", "papermill", "nbconvert")
CARD_MIME = "application/vnd.notebook-ext.card+json"  # a card's state in its saved output


def run_notebook(name, tmp_path, timeout=180, crash=False, runner="nbclient"):
    """Execute the tutorial in ``tmp_path`` (the kernel's working folder, where the
    executed notebook is saved) with ``runner``, one of `RUNNERS`, and return it.

    With ``crash`` (nbclient only), a cell tagged ``crash`` is not run: the kernel
    is killed and restarted there, as the tutorial tells its reader to do (the
    cell stands in for that when the notebook runs top to bottom). The kernel
    writes its job history to ``NOTEBOOK_EXT_HISTORY`` (the `run` fixture points
    it at ``tmp_path``; unset, it is set to ``tmp_path/history.sqlite3``)."""
    if runner not in RUNNERS:
        raise ValueError(f"`runner` must be one of {RUNNERS}, got {runner!r}")
    if crash and runner != "nbclient":
        raise ValueError(f"`crash` needs runner='nbclient' (it restarts the kernel between cells), got {runner!r}")
    os.environ.setdefault("NOTEBOOK_EXT_HISTORY", str(tmp_path / "history.sqlite3"))
    if runner == "papermill":
        return _run_papermill(name, tmp_path, timeout)
    if runner == "nbconvert":
        return _run_nbconvert(name, tmp_path, timeout)
    return _run_nbclient(name, tmp_path, timeout, crash)


def _run_nbclient(name, tmp_path, timeout, crash):
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
    )
    if not crash:
        client.execute()
    else:
        tagged = [i for i, cell in enumerate(nb.cells) if "crash" in cell.metadata.get("tags", [])]
        assert tagged, f"{name} has no cell tagged 'crash'"
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if index in tagged:
                    run_sync(client.km.restart_kernel)(now=True)  # SIGKILL, then a fresh kernel
                    run_sync(client.kc.wait_for_ready)(timeout=60)
                    cell.outputs = []
                    continue
                client.execute_cell(cell, index)
            client.set_widgets_metadata()
    nbformat.write(nb, tmp_path / name)
    return nb


def _run_papermill(name, tmp_path, timeout):
    import papermill  # the test extra has it; imported here so the other runners do without

    # papermill raises PapermillExecutionError (the notebook saved first) on any error output
    papermill.execute_notebook(TUTORIALS / name, tmp_path / name, kernel_name="python3", cwd=tmp_path,
                               execution_timeout=timeout, progress_bar=False)
    return nbformat.read(tmp_path / name, as_version=4)


def _run_nbconvert(name, tmp_path, timeout):
    shutil.copy(TUTORIALS / name, tmp_path / name)
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
           f"--ExecutePreprocessor.timeout={timeout}", "--ExecutePreprocessor.kernel_name=python3",
           "--output", name, name]
    try:
        done = subprocess.run(cmd, cwd=tmp_path, check=False, capture_output=True, text=True, timeout=4 * timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{cmd} ran over {4 * timeout} s\nstderr:\n{_tail(e.stderr)}") from None
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\nstderr:\n{_tail(done.stderr)}"
    return nbformat.read(tmp_path / name, as_version=4)


def _tail(text, lines=60):
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


def outputs_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def _card_snaps(nb):
    """The saved state of every job card's widget, one per card (a job shown
    twice, or two jobs of one name, give two)."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [model["state"]["snap"] for model in state.get("state", {}).values()
            if model.get("state", {}).get("snap")]


def card_states(nb):
    """name -> state of every job card, from the widget state saved in the notebook."""
    return {snap["name"]: snap for snap in _card_snaps(nb)}


def saved_cards(nb):
    """(where, snap) of every job card the notebook saved: each card widget's state
    (what a widget manager draws) and each output's card MIME bundle (what the
    extension's renderer and a reader without the kernel see)."""
    cards = [("widget state", snap) for snap in _card_snaps(nb)]
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            card = out.get("data", {}).get(CARD_MIME)
            if card and card.get("kind") == "card":
                cards.append((f"cell {index} {out['output_type']}", card["snap"]))
    return cards


def assert_cards_final(nb, history=None):
    """Every job card saved in the executed notebook (`saved_cards`) whose job ended
    during the run is saved in a final state (not pending, queued or running).

    Whether a job ended is the job history's word (``history``, by default the
    file ``NOTEBOOK_EXT_HISTORY`` names): a job it has in a final state ended in
    its own kernel; one it reads ``interrupted`` (its kernel was killed under it,
    `run_notebook`'s ``crash``) did not, and its card keeps what it last saw. A
    card whose job the history does not know fails too: it cannot be judged."""
    history = history or os.environ.get("NOTEBOOK_EXT_HISTORY")
    assert history and Path(history).exists(), f"no job history to judge the cards by: {history!r}"
    ended = {record.uid: record.state for record in Ledger(history).jobs(ended=None)}
    cards = saved_cards(nb)
    assert cards, "the notebook saved no job card"
    unknown = sorted(f"{snap['name']} ({where}, uid {snap.get('uid')!r})" for where, snap in cards
                     if snap.get("uid") not in ended)
    assert not unknown, f"cards of jobs the history {history} does not know: {unknown}"
    stale = sorted(f"{snap['name']} ({where}): saved {snap['state']}, ended {ended[snap['uid']]}"
                   for where, snap in cards if ended[snap["uid"]] in FINAL_STATES and snap["state"] not in FINAL_STATES)
    assert not stale, f"cards saved before their job ended: {stale}"


def card_displays(nb):
    """name -> the rich outputs (display(), figures) each job card saved."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    shown = {}
    for model in state.get("state", {}).values():
        values = model.get("state", {})
        if values.get("snap"):
            shown[values["snap"]["name"]] = values.get("displays", [])
    return shown
