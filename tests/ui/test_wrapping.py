"""Text output (``%wait``, ``%jobs``, ``%jobs --history``) breaks long lines
at spaces, never inside a word (issue 27, "%wait output"). JupyterLab's
output area breaks a line wider than itself anywhere (its ``pre`` has
``word-break: break-all``), so the text wraps itself first, to a width an
output area at its default size shows."""

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.core.lowlevel import safe_repr
from notebook_ext.ui import history_table, jobs_table, status_line

WIDTH = 100  # columns a JupyterLab output area shows at its default size
MESSAGE = ("could not read the training table from the shared folder because the network drive "
           "disconnected while the loader was halfway through the second partition; reconnect the "
           "drive (or copy the table to a local folder) and run the job again")
WORDS = MESSAGE.split()


def fail(message):
    raise ValueError(message)


@pytest.fixture
def sched(tmp_path):
    s = Scheduler(slots=2, history=tmp_path / "history.sqlite3")
    yield s
    s.shutdown()


@pytest.fixture
def failed(sched):
    job = sched.submit(fail, MESSAGE, name="loader")
    job.exception(30)
    assert job.state == "failed"
    return job


def assert_words_whole(text, words=WORDS):
    """Every word of the message is a word of ``text``: none split across lines."""
    tokens = text.split()
    split = [w for w in words if w not in tokens]
    assert not split, f"words split or lost: {split}\n{text}"


def assert_within(text, width=WIDTH):
    long = [line for line in text.splitlines() if len(line) > width]
    assert not long, f"lines wider than {width}: {long}"


def test_wait_lines_wrap_at_spaces_under_the_text(failed):
    text = status_line(failed.snapshot(), width=WIDTH)
    assert_within(text)
    assert_words_whole(text)
    first, *rest = text.splitlines()
    assert first.startswith("loader [failed]  ") and rest
    indent = len("loader [failed]  ")
    assert all(line.startswith(" " * indent) and line[indent] != " " for line in rest), text
    # without a width it stays one line (a card's text/plain)
    assert "\n" not in status_line(failed.snapshot())


def test_jobs_table_wraps_the_error_under_its_column(failed):
    text, html = jobs_table([failed.snapshot()])
    assert_within(text)
    assert_words_whole(text)
    header, rule, *rows = text.splitlines()
    column = header.index("error")
    assert rows[0][column:].startswith("ValueError: could")
    assert len(rows) > 1
    for line in rows[1:]:  # continuation lines: blank up to the error column, words from there
        assert line[:column].strip() == "" and line[column] != " ", line
    assert "break-all" not in html and MESSAGE in html  # the browser wraps the HTML table itself


def test_history_table_cuts_the_error_at_a_word_with_an_ellipsis(sched, failed):
    text, _ = history_table(sched.store.load())
    assert_within(text)
    header, rule, *rows = text.splitlines()
    start, end = header.index("error"), header.index("session")
    shown = " ".join(line[start:end] for line in rows).split()
    assert shown[0] == "ValueError:" and shown[-1].endswith("…"), shown
    words = [w.removesuffix("…") for w in shown[1:]]
    assert words == WORDS[:len(words)], f"cut inside a word: {shown}"


def test_reprs_are_cut_at_a_word():
    text = safe_repr(MESSAGE, 60)
    assert len(text) <= 60 and text.endswith("…")
    assert text[1:-1].split()[-1] in WORDS, text  # the last word shown is whole
