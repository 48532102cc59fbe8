"""Text from user objects, made safe to send anywhere.

Job output, error messages, names and reprs come from user code: a lone
surrogate (what ``os.fsdecode`` makes of a non-UTF-8 file name) cannot be
encoded as UTF-8, so a comm message, a JSON row or a terminal write carrying
it raises. `clean` turns such characters into backslash escapes; `printable`
also shows control characters (ANSI escapes among them) as escapes, for one
line of text in a table. `wrap_text` and `shorten` break and cut text at
spaces, never inside a word where a space will do.
"""

from __future__ import annotations

import math

import textwrap
from typing import Any

# C0 and C1 control characters except tab and newline.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)}


def clean(text: str) -> str:
    """``text`` with lone surrogates as backslash escapes (it is returned
    unchanged, cheaply, when it has none)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def printable(text: str) -> str:
    """`clean` text with control characters (tab and newline kept) shown as
    ``\\x1b``-style escapes: what a table or a terminal line may show."""
    return clean(text).translate(_CONTROL)


def safe_repr(value: Any, limit: int = 500) -> str:
    """``repr(value)``, clean and at most ``limit`` characters, whatever the
    object's ``__repr__`` does."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a user's broken __repr__
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return shorten(text, limit)


def shorten(text: str, limit: int) -> str:
    """`clean` text cut to at most ``limit`` characters (an ellipsis marks
    the cut), after a whole word when one ends in the second half."""
    if len(text) > limit:
        cut = text[: limit - 1]
        if not text[limit - 1].isspace():  # the cut falls inside a word: leave that word out
            space = max(cut.rfind(c) for c in " \t\n")
            if space > limit // 2:
                cut = cut[:space]
        text = cut.rstrip() + "…"
    return clean(text)


#: The columns of text output (``%wait``, ``%jobs``). JupyterLab's output
#: area breaks a wider line anywhere, inside words (its ``pre`` has
#: ``word-break: break-all``), so text wraps itself to fit one at its
#: default size.
TEXT_WIDTH = 100


def wrap_text(text: str, width: int = TEXT_WIDTH, indent: int = 0) -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken at spaces
    (its own line breaks kept); lines after the first start with ``indent``
    spaces. Only a word longer than a whole line is cut.

    Examples
    --------
    >>> wrap_text("ValueError: the drive disconnected", 20, indent=2)
    ['ValueError: the', '  drive disconnected']
    """
    indent = min(indent, width // 2)
    wrapper = textwrap.TextWrapper(width=width, subsequent_indent=" " * indent, break_on_hyphens=False)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        wrapper.initial_indent = " " * indent if lines else ""
        lines.extend(wrapper.wrap(paragraph) or [""])
    return lines


def format_number(value: Any) -> str:
    """A number as every card, table and status line shows it: whole numbers
    in full, and at least 1,000 rounded to a whole number (``4064``), else
    4 significant digits (``0.9533``, ``28.77``, ``1``); NumPy scalars
    alike; ``–`` for None and NaN. ``card.js`` draws with the same rule."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    item = getattr(value, "item", None)  # a NumPy scalar: its Python value
    if callable(item) and not isinstance(value, (int, float)):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value != value:
        return "–"
    if value in (float("inf"), float("-inf")):
        return "∞" if value > 0 else "-∞"
    if abs(value) >= 1e15:
        return f"{value:.3e}"
    if isinstance(value, int) or abs(value) >= 1000 or value.is_integer():
        return str(int(round(value)))
    return f"{value:.4g}"


def format_value(value: Any) -> str:
    """A parameter value for a table: numbers by `format_number`, strings
    plain, anything else by its short repr (``C=28.77``, not
    ``C=np.float64(28.765041432546976)``)."""
    if isinstance(value, str):
        return shorten(value, 80)
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)) or (hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
        return format_number(value)
    return safe_repr(value, 80)


def json_number(x: Any) -> Any:
    """A number JSON can carry: NaN and infinities become None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
