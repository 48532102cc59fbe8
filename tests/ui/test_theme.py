"""The state colours: every state has a colour in the light and the dark
block of theme.css and a badge class, and the plain fall-backs (used where a
renderer drops the style sheet) keep white text legible (WCAG >= 4.5). The
colours as a browser computes them are checked in tests/browser/test_lab_theme.py."""

import re

import pytest

from notebook_ext.core import STATES
from notebook_ext.ui import _render


def luminance(hex_colour):
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a, b):
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("state", sorted(STATES))
def test_every_state_has_theme_colours_and_a_legible_fallback(state):
    light, dark = _render.THEME_CSS.split('body[data-jp-theme-light="false"]')
    assert re.search(rf"--nbx-{state}:", light), f"{state} has no light colour"
    assert re.search(rf"--nbx-{state}:", dark), f"{state} has no dark colour"
    assert f".nbx-state-{state} {{ background: var(--nbx-{state}); }}" in _render.THEME_CSS
    assert contrast(_render.STATE_COLOURS[state], "#ffffff") >= 4.5, _render.STATE_COLOURS[state]
    badge = _render.state_badge(state)
    assert f"nbx-state-{state}" in badge and f"var(--nbx-{state}, {_render.STATE_COLOURS[state]})" in badge


def test_static_cards_carry_the_theme_rules():
    html = _render.jobs_table([])[1]
    assert html.startswith("<style>") and "--nbx-error-text" in html and "/*" not in html
