"""Cards stay legible in JupyterLab's dark theme (and its light one).

A notebook leaves jobs in most states (running, pending, done, failed,
timed out, cancelled) with a ``%jobs`` table under them; then, in each theme,
every state badge and every error line and traceback on the page, live card
or static table, must have a WCAG contrast ratio of at least 4.5 against what
is behind it. The colours come from the computed styles: the browser turns
whatever CSS produced them (theme variables, ``color-mix``) into pixels on a
canvas, and backgrounds are composited up the tree until one is opaque."""

import pytest
from browser_harness import SCREENSHOTS, run_all, wait_for_kernel

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    "%load_ext notebook_ext\nimport time",
    "%%bg -n runner\ntime.sleep(120)",
    "%%bg -n waiter --after runner\n1",
    "%%bg -n ok\n1 + 1",
    "%%bg -n boom\nraise ValueError('bad input: the error line')",
    "%%bg -n slow --timeout 0.5\ntime.sleep(30)",
    "%%bg -n victim\ntime.sleep(60)",
    "%cancel victim",
    "%wait ok boom slow victim\n%jobs",
]
EXPECTED = {"runner": "running", "waiter": "pending", "ok": "done", "boom": "failed",
            "slow": "timed_out", "victim": "cancelled"}

MIN_RATIO = 4.5  # WCAG 2 AA for normal text

# For each element: its text colour and the colour behind it, both as opaque
# [r, g, b] after alpha compositing, and the WCAG ratio between them.
_CONTRASTS_JS = """(selector) => {
  const canvas = document.createElement('canvas'); canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const rgba = (css) => {  // any CSS colour the browser computed -> [r, g, b, a 0..1]
    ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = css; ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data; return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3]));
  const backdrop = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let bg = [255, 255, 255];  // the canvas under everything
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const lum = (c) => {
    const lin = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  return [...document.querySelectorAll(selector)].map(el => {
    const bg = backdrop(el);
    const fg = over(rgba(getComputedStyle(el).color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return { cls: el.className, text: el.textContent.trim().slice(0, 2000),
             fg: fg.map(Math.round), bg: bg.map(Math.round), ratio: (a + 0.05) / (b + 0.05) };
  });
}"""

SELECTORS = {
    "badge": ".nbx-card .nbx-state, .nbx-static .nbx-state",
    "error": ".nbx-card .nbx-error, .nbx-card .nbx-traceback, .nbx-static .nbx-error",
}


def card_states(page):
    return dict(zip(page.locator(".nbx-card .nbx-name").all_inner_texts(),
                    page.locator(".nbx-card .nbx-header .nbx-state").all_inner_texts()))


def set_theme(page, theme, light):
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', { theme: t })", theme)
    wait_until(lambda: page.evaluate("() => document.body.dataset.jpThemeLight") == light
               and page.evaluate("() => document.body.dataset.jpThemeName") == theme, timeout=20, interval=0.1,
               message=f"JupyterLab did not switch to {theme}")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=20_000)  # shown while it switches


def contrasts(page):
    return {kind: page.evaluate(_CONTRASTS_JS, sel) for kind, sel in SELECTORS.items()}


def test_cards_are_legible_in_light_and_dark_themes(lab, page):
    lab.write_notebook("theme.ipynb", CELLS)
    page.goto(lab.tree_url("theme.ipynb"))
    wait_for_kernel(page)
    run_all(page)
    try:
        wait_until(lambda: card_states(page) == EXPECTED, timeout=90, interval=0.25)
    except AssertionError:
        raise AssertionError(f"the cards did not reach their states: {card_states(page)}") from None
    table = page.locator("table.nbx-jobs-table")
    table.wait_for(timeout=30_000)

    for theme, light in (("JupyterLab Light", "true"), ("JupyterLab Dark", "false")):
        set_theme(page, theme, light)
        found = contrasts(page)
        page.screenshot(path=str(SCREENSHOTS / f"theme-{'light' if light == 'true' else 'dark'}.png"),
                        full_page=True)
        # Every state is on the page as a live badge and in the static %jobs table.
        badge_texts = [b["text"] for b in found["badge"]]
        for state in EXPECTED.values():
            assert badge_texts.count(state) >= 2, (theme, state, badge_texts)
        assert any("bad input: the error line" in e["text"] for e in found["error"]), found["error"]
        assert any("ValueError" in e["text"] and "traceback" in e["cls"] for e in found["error"]), found["error"]
        low = [c for kind in found.values() for c in kind if c["ratio"] < MIN_RATIO]
        assert not low, f"{theme}: contrast below {MIN_RATIO}: {low}"
