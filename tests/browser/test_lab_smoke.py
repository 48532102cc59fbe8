"""The browser harness itself: JupyterLab starts, a notebook's kernel starts,
run-all runs every cell, and an ipywidget renders (no node build needed)."""


import pytest
from browser_harness import (
    open_notebook_and_run_all,
    screenshot,
    text_by_class,
    texts_by_class,
)

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    'import ipywidgets as w\ns = w.IntSlider(value=7)\ns.add_class("nbx-smoke")\ns',
    'import time\ntime.sleep(3)\nprint("after-sleep")',
]


def test_widget_renders_and_all_cells_run(jupyter_lab, page):
    jupyter_lab.write_notebook("smoke.ipynb", CELLS)
    open_notebook_and_run_all(page, jupyter_lab, "smoke.ipynb")

    page.locator(".nbx-smoke").wait_for(timeout=30_000)
    page.locator(".jp-OutputArea-output", has_text="after-sleep").wait_for(timeout=30_000)

    # The slider shows its value; no widget error or placeholder anywhere in the outputs.
    wait_until(lambda: "7" in text_by_class(page, "nbx-smoke"), timeout=5)
    assert len(texts_by_class(page, "nbx-smoke")) == 1
    assert "7" in text_by_class(page, "nbx-smoke")
    outputs = text_by_class(page, "jp-OutputArea")
    assert "Loading widget" not in outputs, outputs
    assert "model not found" not in outputs.lower(), outputs
    assert "Error" not in outputs, outputs
    assert "after-sleep" in outputs
    screenshot(page, "smoke")
