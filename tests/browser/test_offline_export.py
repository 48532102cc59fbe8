"""A saved notebook reads well where no widget manager runs.

Tutorial 01 is executed with nbclient (as CI, papermill or ``nbconvert
--execute`` do), exported with ``jupyter nbconvert --to html``'s exporter,
and opened in Chromium with every network request blocked: each job card of
the notebook shows its name, final state, progress, metrics and error. A
plain-text reader (the saved text/plain) shows them too."""

import importlib.util
from pathlib import Path

import pytest
from browser_harness import SCREENSHOTS

from notebook_ext.core.lowlevel import format_number

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_RUNNER = Path(__file__).resolve().parents[1] / "tutorials" / "tutorial_runner.py"
_spec = importlib.util.spec_from_file_location("offline_tutorial_runner", _RUNNER)
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

TUTORIAL = "01-quickstart.ipynb"


def progress(snap):
    if snap.get("total"):
        return f"{format_number(snap['done'])}/{format_number(snap['total'])}"
    return f"{format_number(snap['done'])} steps" if snap.get("done") else ""


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOTEBOOK_EXT_HISTORY", str(folder / "history.sqlite3"))
        nb = runner.run_notebook(TUTORIAL, folder)
    cards = runner.card_states(nb)
    assert {"count", "forever", "boom"} <= set(cards), sorted(cards)
    return folder, nb, cards


def test_plain_text_readers_see_each_cards_final_state(executed):
    _, nb, cards = executed
    texts = [out["data"]["text/plain"] for cell in nb.cells for out in cell.get("outputs", [])
             if "data" in out and "text/plain" in out["data"]]
    for name, snap in cards.items():
        line = next((t for t in texts if t.startswith(f"{name} [")), None)
        assert line is not None, f"no saved text for the card {name!r}"
        assert line.startswith(f"{name} [{snap['state']}]"), line
        assert progress(snap) in line, (line, progress(snap))
        for metric, value in list((snap.get("metrics") or {}).items())[:4]:  # the line shows four
            assert f"{metric}={format_number(value)}" in line, (line, metric)
    assert "FileNotFoundError" in next(t for t in texts if t.startswith("boom ["))


def test_html_export_offline_shows_each_cards_final_state(executed, browser):
    from nbconvert import HTMLExporter

    folder, nb, cards = executed
    body, _ = HTMLExporter().from_notebook_node(nb)  # `jupyter nbconvert --to html`'s defaults
    page_path = folder / "01-quickstart.html"
    page_path.write_text(body, encoding="utf-8")

    context = browser.new_context(viewport={"width": 1300, "height": 1000}, offline=True)
    blocked = []

    def block(route):
        blocked.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith("file:"), block)
    page = context.new_page()
    try:
        page.goto(page_path.as_uri(), wait_until="load")
        page.screenshot(path=str(SCREENSHOTS / "export-offline.png"), full_page=True)
        # The export does reach for the network (the widget renderer, from a CDN);
        # all of it was refused, so what shows is what the file itself holds.
        assert blocked, "the export asked for nothing from the network: this test would not see a CDN renderer fail"
        for name, snap in cards.items():
            card = page.locator(".nbx-card-static", has=page.locator(".nbx-name", has_text=name)).filter(
                has=page.locator(f".nbx-name:text-is('{name}')"))
            assert card.count() == 1, f"{name!r}: {card.count()} static cards on the page"
            assert card.is_visible(), f"the card of {name!r} is not visible"
            text = card.inner_text()
            assert snap["state"] in card.locator(".nbx-state").inner_text(), (name, text)
            assert progress(snap) in text, (name, progress(snap), text)
            for metric, value in (snap.get("metrics") or {}).items():
                assert f"{metric}={format_number(value)}" in text, (name, metric, text)
            if snap.get("error") and snap["state"] != "done":
                assert snap["error"] in text, (name, snap["error"], text)
        assert any(snap.get("metrics") for snap in cards.values()) and any(
            snap.get("error") for snap in cards.values()), "the tutorial no longer has a card with metrics and one with an error"
    finally:
        context.close()
