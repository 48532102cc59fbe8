"""card.js in Chromium, without a server: it writes numbers exactly as the
kernel's text renderers do, and draws a flat curve across the middle."""

import math
from pathlib import Path

import pytest

from notebook_ext.core.lowlevel import format_number

pytestmark = [pytest.mark.browser]

VALUES = [4064.2, 4064, 1.0, 0.95333, 28.765041432546976, 0.0001234, 0.00001234, 0, 1e20, None, -3.5,
          12.0, 2_000_000, 0.5, 1e-5, 123.456, 999.96, 0.1 + 0.2, 1e15, -0.00002]


def test_numbers_are_written_as_the_kernel_writes_them(card_js):
    drawn = card_js.evaluate("(values) => values.map((v) => window.card.num(v))", VALUES)
    assert drawn == [format_number(v) for v in VALUES]
    assert card_js.evaluate("() => window.card.num(NaN)") == format_number(math.nan)


def test_a_flat_curve_is_drawn_across_the_middle(card_js):
    flat = card_js.evaluate("() => window.card.curvePoints([[1, 1.0], [2, 1.0], [3, 1.0]], 180, 40)")
    assert [y for _, y in flat] == [20, 20, 20]
    rising = card_js.evaluate("() => window.card.curvePoints([[1, 0.5], [2, 0.75], [3, 1.0]], 180, 40)")
    ys = [y for _, y in rising]
    assert ys[0] > ys[1] > ys[2]  # upwards (SVG y grows downwards), from the bottom to the top
    assert rising[0][0] < rising[1][0] < rising[2][0]


def draw(page, state, displays=()):
    """card.js's own render() on a model holding ``state``; the card's text."""
    return page.evaluate("""([snap, displays]) => {
        const el = document.createElement("div");
        document.body.replaceChildren(el);
        const values = { kind: "card", snap, displays };
        const model = { get: (k) => values[k], on() {}, off() {}, send() {} };
        window.card.default.render({ model, el });
    }""", [state, list(displays)]) or page.locator("body").inner_text()


def test_the_cancel_note_is_on_the_card(card_js):
    from notebook_ext.core import Scheduler
    from notebook_ext.ui import snapshot_state

    sched = Scheduler(slots=1, history=None)
    try:
        job = sched.submit(lambda: 1, name="quick")
        job.result(timeout=30)
        job.cancel_note = "Dask cannot stop a running task: it stops at its next progress step"
        text = draw(card_js, snapshot_state(job.snapshot()))
    finally:
        sched.shutdown()
    assert "quick" in text and "Dask cannot stop a running task" in text


def test_a_jobs_displays_are_drawn_on_its_card(card_js):
    from notebook_ext.core import Scheduler
    from notebook_ext.ui import snapshot_state
    from notebook_ext.ui._display import best_mime

    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    sched = Scheduler(slots=1, history=None)
    try:
        job = sched.submit(lambda: 1, name="plots")
        job.result(timeout=30)
        shown = [best_mime({"data": {"text/html": "<b class='mine'>hello</b>", "text/plain": "x"}}),
                 best_mime({"data": {"image/png": png, "text/plain": "<Figure>"}, "metadata": {"image/png": {"width": 7}}}),
                 best_mime({"data": {"text/plain": "just text"}})]
        text = draw(card_js, snapshot_state(job.snapshot()), shown)
    finally:
        sched.shutdown()
    assert card_js.locator(".nbx-card .nbx-displays b.mine").inner_text() == "hello"
    img = card_js.locator(".nbx-card .nbx-displays img")
    assert img.get_attribute("src").startswith("data:image/png;base64,") and img.get_attribute("width") == "7"
    assert "just text" in text
