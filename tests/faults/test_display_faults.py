"""The display bound holds for a single item: one display over the bound
(e.g. ``display(HTML('x' * 20_000_000))`` from a job) is replaced by a note
with its size and type, keeping the head of its text/plain, instead of
travelling over IOPub whole."""

from __future__ import annotations

from notebook_ext.core._displays import DISPLAY_BYTES, Displays


def _size(items) -> int:
    return sum(len(v) for e in items for v in e["data"].values())


def test_one_display_over_the_bound_is_a_note_with_its_size_type_and_text_head():
    d = Displays()
    d.add({"text/html": "x" * 20_000_000, "text/plain": "<IPython.core.display.HTML object> " + "y" * 5000},
          display_id="big")
    assert _size(d.items) <= DISPLAY_BYTES
    (entry,) = d.items
    note = entry["data"]["text/plain"]
    assert set(entry["data"]) == {"text/plain"} and entry["id"] == "big"
    assert note.startswith("<IPython.core.display.HTML object> yyy") and "20.0 MB" in note and "text/html" in note
    assert len(note) < 3000


def test_small_displays_beside_a_big_one_are_kept():
    d = Displays()
    d.add({"text/plain": "before"})
    d.add({"image/png": "p" * (DISPLAY_BYTES + 1)})
    d.add({"text/plain": "after"})
    assert [e["data"].get("text/plain", "")[:6] for e in d.items][::2] == ["before", "after"]
    assert "image/png" in d.items[1]["data"]["text/plain"] and _size(d.items) <= DISPLAY_BYTES
