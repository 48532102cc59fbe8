import pytest
from tutorial_runner import run_notebook


@pytest.fixture
def run(tmp_path):
    return lambda name, **kw: run_notebook(name, tmp_path, **kw)
