"""Run a tutorial top to bottom in a fresh kernel, as a user would, and read
what it printed and which card states it saved."""

import os
from pathlib import Path

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


def run_notebook(name, tmp_path, timeout=180, crash=False):
    """Execute the tutorial; with ``crash``, a cell tagged ``crash`` is not run:
    the kernel is killed and restarted there, as the tutorial tells its reader
    to do (the cell stands in for that when the notebook runs top to bottom)."""
    nb = nbformat.read(TUTORIALS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
    )
    os.environ.setdefault("NOTEBOOK_EXT_HISTORY", str(tmp_path / "history.sqlite3"))
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


def card_states(nb):
    """name -> state of every job card, from the widget state saved in the notebook."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    cards = {}
    for model in state.get("state", {}).values():
        snap = model.get("state", {}).get("snap")
        if snap:
            cards[snap["name"]] = snap
    return cards


def card_displays(nb):
    """name -> the rich outputs (display(), figures) each job card saved."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    shown = {}
    for model in state.get("state", {}).values():
        values = model.get("state", {})
        if values.get("snap"):
            shown[values["snap"]["name"]] = values.get("displays", [])
    return shown
