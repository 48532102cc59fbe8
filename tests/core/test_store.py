"""History: survives reopening, marks interrupted jobs, never blocks jobs."""

import subprocess
import sys
import textwrap

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.core.lowlevel import HistoryStore, default_history_path


def test_history_survives_reopening(tmp_path):
    path = tmp_path / "h.sqlite3"
    s = Scheduler(slots=1, history=path)
    ok = s.submit(lambda: 1, name="ok", params={"alpha": 0.1})
    bad = s.submit(lambda: 1 / 0, name="bad")
    s.wait(ok, bad, timeout=5)
    s.shutdown()
    store = HistoryStore(path)
    rows = {r.name: r for r in store.load(sessions="earlier")}
    assert rows["ok"].state == "done" and rows["ok"].params == {"alpha": "0.1"}
    assert rows["bad"].state == "failed" and "ZeroDivisionError" in rows["bad"].error
    assert rows["ok"].ended >= rows["ok"].started >= rows["ok"].created
    states = [s for s, _ in store.transitions(rows["bad"].uid)]
    assert states[-1] == "failed" and len(states) >= 2
    store.close()


def test_job_active_when_its_process_died_is_interrupted(tmp_path):
    path = tmp_path / "h.sqlite3"
    script = textwrap.dedent(f"""
        import os, time
        from notebook_ext.core import Scheduler
        s = Scheduler(slots=1, history={str(path)!r})
        job = s.submit(time.sleep, 60, name="long-fit")
        # load() flushes the writer first: wait until the running row is on disk
        while not any(r.state == "running" for r in s.store.load(sessions="current")):
            pass
        os._exit(0)   # the kernel dies: no shutdown
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    store = HistoryStore(path)
    rows = store.load(sessions="earlier")
    assert [(r.name, r.state) for r in rows] == [("long-fit", "interrupted")]
    assert "kernel stopped" in rows[0].error
    store.close()


def test_unwritable_history_warns_once_and_jobs_still_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="job history disabled"):
        s = Scheduler(slots=1, history=blocker / "sub" / "h.sqlite3")
    try:
        assert s.submit(lambda: 5).result(timeout=5) == 5
    finally:
        s.shutdown()


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTEBOOK_EXT_HISTORY", str(tmp_path / "x.db"))
    assert default_history_path() == tmp_path / "x.db"
    monkeypatch.setenv("NOTEBOOK_EXT_HISTORY", "off")
    assert default_history_path() is None
    monkeypatch.delenv("NOTEBOOK_EXT_HISTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_history_path() == tmp_path / "notebook_ext" / "history.sqlite3"
