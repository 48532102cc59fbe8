"""Rich output on job cards is drawn as the front end draws a cell's own.

* Notebook 7: a matplotlib figure shown by ten ``%%bg`` jobs is, on every
  card, the very picture the same figure makes in a foreground cell (pixel for
  pixel, through a canvas in the page), and no copy of it strays into a cell's
  output. (The main thread's inline backend used to draw a running job's
  figure after each cell, on the job's own canvas at the same time as the job:
  blank and half-drawn PNGs.)
* JupyterLab, light and dark theme: a pandas DataFrame on a card has the
  table styles of the same DataFrame in a cell's output (JupyterLab's
  rendered-HTML classes on the card's HTML, nothing of the card's over them).
"""

import pytest
from browser_harness import open_notebook_and_run_all, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

JOBS = 10

FIGURE_CELLS = [
    "%load_ext notebook_ext\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
    "def make():\n"
    "    fig, ax = plt.subplots(figsize=(4, 3))\n"
    "    for k in range(12):\n"
    "        ax.plot([i * (k + 1) % 7 for i in range(40)], label=f'line {k}')\n"
    "    ax.set_title('curves'); ax.legend(fontsize=6); ax.grid(True)\n"
    "    return fig",
    "fig = make()\ndisplay(fig)\nplt.close(fig)",
    # each job its own name: a cell's top-level names are the notebook's globals
    *[f"%%bg -n fig{i}\nfig{i} = make()\ndisplay(fig{i})\nplt.close(fig{i})" for i in range(JOBS)],
]

# Every image decoded, then each card's pixels against the foreground cell's.
_COMPARE_JS = """async () => {
  const pixels = async (img) => {
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, c.width, c.height).data;
  };
  const cells = [...document.querySelectorAll('.jp-CodeCell')];
  const ref = cells[1].querySelector('.jp-OutputArea-output img');
  const want = await pixels(ref);
  const cards = [];
  for (const card of document.querySelectorAll('.nbx-card')) {
    const img = card.querySelector('.nbx-display img');
    const got = await pixels(img);
    let differing = got.length === want.length ? 0 : -1;
    for (let i = 0; differing >= 0 && i < got.length; i += 4) {
      if (got[i] !== want[i] || got[i + 1] !== want[i + 1] || got[i + 2] !== want[i + 2] || got[i + 3] !== want[i + 3]) differing++;
    }
    cards.push({ name: card.querySelector('.nbx-name').textContent, complete: img.complete,
                 width: img.naturalWidth, height: img.naturalHeight, differing });
  }
  // outputs of the jobs' cells other than their cards (the main thread drawing a job's figure made one)
  const stray = cells.slice(2).map(c => c.querySelectorAll('.jp-OutputArea-output:not(.nbx-card-output) img').length)
    .reduce((a, b) => a + b, 0);
  return { ref: { width: ref.naturalWidth, height: ref.naturalHeight }, cards, stray };
}"""

_ALL_DRAWN_JS = """(n) => {
  const cards = [...document.querySelectorAll('.nbx-card')];
  const cells = [...document.querySelectorAll('.jp-CodeCell')];
  const ref = cells[1] && cells[1].querySelector('.jp-OutputArea-output img');
  return !!ref && ref.complete && cards.length === n && cards.every(c => c.dataset.state === 'done'
    && c.querySelector('.nbx-display img'))
    && cells.every(c => !c.querySelector('.jp-InputPrompt').textContent.includes('*'));
}"""


def test_figure_from_jobs_is_fully_drawn_in_notebook7(jupyter_notebook7, page):
    server = jupyter_notebook7
    server.write_notebook("figures.ipynb", FIGURE_CELLS)
    open_notebook_and_run_all(page, server, "figures.ipynb")
    page.wait_for_function(_ALL_DRAWN_JS, arg=JOBS, timeout=90_000, polling=200)
    found = page.evaluate(_COMPARE_JS)
    screenshot(page, "notebook7-card-figures")
    assert found["ref"]["width"] > 0, found
    assert sorted(c["name"] for c in found["cards"]) == sorted(f"fig{i}" for i in range(JOBS)), found
    size = (found["ref"]["width"], found["ref"]["height"])
    bad = [c for c in found["cards"]
           if not (c["complete"] and c["width"] > 0 and (c["width"], c["height"]) == size and c["differing"] == 0)]
    assert not bad, (f"{len(bad)} of {JOBS} cards do not show the foreground's {size[0]}x{size[1]} figure "
                     f"(differing: pixels unlike it, -1 another size): {bad}")
    assert found["stray"] == 0, f"{found['stray']} job figure(s) shown in cell outputs, not on their cards"


FRAME_CELLS = [
    "%load_ext notebook_ext\nimport pandas as pd\n"
    "df = pd.DataFrame({'alpha': [1.5, 2.25, 3.0, 4.75], 'beta': ['x', 'y', 'z', 'w'], 'gamma': [10, 20, 30, 40]},\n"
    "                  index=['r1', 'r2', 'r3', 'r4'])",
    "display(df)",
    "%%bg -n frame\ndisplay(df)",
]

PROPS = ["border-top-width", "border-top-style", "border-top-color", "border-bottom-width", "border-bottom-style",
         "border-bottom-color", "border-left-width", "border-left-style", "border-right-width",
         "border-right-style", "padding-top", "padding-right", "padding-bottom", "padding-left", "font-size",
         "font-family", "line-height", "text-align", "vertical-align", "color", "background-color",
         "border-collapse", "table-layout", "margin-left", "margin-right"]

# The computed styles of a table's parts: the table, a header cell, a body
# header cell, a body cell, and odd and even body rows.
_STYLES_JS = """([table, props]) => {
  const pick = (el) => { const s = getComputedStyle(el); return Object.fromEntries(props.map(p => [p, s.getPropertyValue(p)])); };
  const parts = { table, 'thead th': table.querySelector('thead th:last-child'),
                  'tbody th': table.querySelector('tbody tr th'), 'tbody td': table.querySelector('tbody td'),
                  'tr:nth-child(odd)': table.querySelector('tbody tr:nth-child(odd)'),
                  'tr:nth-child(even)': table.querySelector('tbody tr:nth-child(even)') };
  return Object.fromEntries(Object.entries(parts).map(([k, el]) => [k, el ? pick(el) : null]));
}"""


def set_theme(page, theme, light):
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', { theme: t })", theme)
    page.wait_for_function("([t, l]) => document.body.dataset.jpThemeName === t && document.body.dataset.jpThemeLight === l",
                           arg=[theme, light], timeout=20_000)
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=20_000)  # shown while it switches


def table_styles(table):
    return table.evaluate(f"(t) => ({_STYLES_JS})([t, {PROPS!r}])")


def test_dataframe_on_card_has_the_front_ends_table_styles(jupyter_lab, page):
    lab = jupyter_lab
    lab.write_notebook("frame.ipynb", FRAME_CELLS)
    open_notebook_and_run_all(page, lab, "frame.ipynb")
    card_table = page.locator(".nbx-card .nbx-display table.dataframe")
    cell_table = page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea-output table.dataframe")
    card_table.wait_for(timeout=60_000)
    cell_table.wait_for(timeout=30_000)
    assert page.locator(".nbx-card").count() == 1
    page.mouse.move(0, 0)  # a row under the pointer takes its hover colour
    for theme, light in (("JupyterLab Light", "true"), ("JupyterLab Dark", "false")):
        set_theme(page, theme, light)
        want, got = table_styles(cell_table), table_styles(card_table)
        screenshot(page, f"lab-card-dataframe-{'light' if light == 'true' else 'dark'}")
        diffs = {part: {p: (want[part][p], got[part][p]) for p in PROPS if want[part][p] != got[part][p]}
                 for part in want if want[part] is not None}
        diffs = {k: v for k, v in diffs.items() if v}
        assert not diffs, f"{theme}: the card's table differs from the cell's (cell, card): {diffs}"
        # the cell's rows are striped: what is compared is JupyterLab's table style
        assert want["tr:nth-child(odd)"]["background-color"] != want["tr:nth-child(even)"]["background-color"], want
