import os
import tempfile

import pytest

# Tests never write to the user's real history file.
_HISTORY_DIR = tempfile.mkdtemp(prefix="notebook_ext-test-history-")
os.environ.setdefault("NOTEBOOK_EXT_HISTORY", os.path.join(_HISTORY_DIR, "history.sqlite3"))


@pytest.fixture
def sched():
    from notebook_ext.core import Scheduler

    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()
