"""A ``%%bg`` cell's traceback numbers its lines as the cell editor does:
the ``%%bg`` line is line 1, so the body's first line is line 2 (issue 27,
"Tracebacks"). Checked in a real kernel where a user reads them: ``%result``,
the job's traceback (its card) and the ledger's record (the history)."""

import ast
import json

import pytest

pytestmark = pytest.mark.kernel


def _frames(tb_lines):
    """(file line, source line) of each frame of a formatted traceback."""
    return [(line, tb_lines[i + 1].strip()) for i, line in enumerate(tb_lines) if line.startswith("  File ")]


def _result_traceback(kernel, name):
    kernel.execute(f"%wait {name}")
    reply, msgs = kernel.execute(f"%result {name}", allow_error=True)
    assert reply["status"] == "error", reply
    (error,) = kernel.errors(msgs)
    return error["traceback"]


def _job_tracebacks(kernel, name):
    """The job's traceback (what its card shows) and its ledger record's (what the history shows)."""
    text = kernel.value(
        "import json as _json\n"
        f"_json.dumps([nx.jobs[{name!r}].traceback, nx.get_scheduler().store.find({name!r}).traceback])")
    return json.loads(ast.literal_eval(text))  # text/plain is the repr of a str


@pytest.mark.parametrize("executor", ["thread", "process", "loop"])
def test_a_cell_failing_on_its_fourth_editor_line_says_line_4(kernel, executor):
    kernel.execute(f"%%bg -n boom4 --priority 1 --timeout 60 --executor {executor}\n"  # editor line 1
                   "x = 1\n"                                       # 2
                   "y = x + 1\n"                                   # 3
                   "open('data/missing-%d.csv' % y)\n")            # 4
    tb = _result_traceback(kernel, "boom4")
    assert _frames(tb)[0] == ('  File "<bg cell boom4>", line 4, in <module>', "open('data/missing-%d.csv' % y)")
    for text in _job_tracebacks(kernel, "boom4"):
        frames = _frames(text.splitlines())
        assert frames[0] == ('  File "<bg cell boom4>", line 4, in <module>',
                             "open('data/missing-%d.csv' % y)"), text


def test_blank_lines_under_the_magic_line_count_too(kernel):
    # IPython drops a cell's leading blank lines before the magic gets the body: they still are editor lines
    kernel.execute("%%bg -n gap\n"                                 # 1
                   "\n"                                            # 2
                   "   \n"                                         # 3
                   "def load(path):\n"                             # 4
                   "\n"                                            # 5
                   "    raise FileNotFoundError(path)\n"           # 6
                   "load('data/missing.csv')\n")                   # 7
    tb = _result_traceback(kernel, "gap")
    assert _frames(tb) == [
        ('  File "<bg cell gap>", line 7, in <module>', "load('data/missing.csv')"),
        ('  File "<bg cell gap>", line 6, in load', "raise FileNotFoundError(path)"),
    ]


def test_a_syntax_error_names_the_editor_line(kernel):
    reply, msgs = kernel.execute("%%bg -n bad\nx = 1\ny = (\n", allow_error=True)
    assert reply["status"] == "error" and reply["ename"] == "UsageError"
    assert "line 3" in reply["evalue"], reply["evalue"]
