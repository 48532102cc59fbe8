import pytest
from tutorial_runner import RUNNERS, run_notebook


# papermill and nbconvert each run every tutorial once more: slow, as all tutorial tests are
@pytest.fixture(params=[r if r == "nbclient" else pytest.param(r, marks=pytest.mark.slow) for r in RUNNERS])
def runner(request):
    """How the tutorial is executed: nbclient, papermill or nbconvert (tutorial_runner.RUNNERS)."""
    return request.param


@pytest.fixture
def run(tmp_path, runner, monkeypatch):
    # the kernel's job history is the test's own (assert_cards_final reads it; scratch_files skips it)
    monkeypatch.setenv("NOTEBOOK_EXT_HISTORY", str(tmp_path / "history.sqlite3"))
    return lambda name, **kw: run_notebook(name, tmp_path, runner=runner, **kw)
