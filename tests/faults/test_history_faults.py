"""The job history survives what users and machines throw at it: messages
and params that cannot be printed, repr'd or encoded, a file another
program locks for a while, garbage and read-only files. The writer thread
never dies on one odd record or a busy file, and jobs always run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from notebook_ext.core import Scheduler, get_scheduler, set_scheduler
from notebook_ext.testing import FakeClock, wait_until

FAST_RETRY = (0.001, 0.002, 0.005)  # the back-off schedule, shrunk for tests


class Bad(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


class Unrepr:
    def __repr__(self) -> str:
        raise RuntimeError("no")


def raise_(exc: BaseException) -> None:
    raise exc


def uid(sched: Scheduler, job) -> str:
    return f"{sched.store.session}:{job.id}"


def mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


def runtime_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


# -- one odd record: written, the writer goes on ----------------------------------

ODD_RECORDS = [
    pytest.param(raise_, (Bad(),), {}, "error", "Bad: <str() of this exception raised RuntimeError>",
                 id="exception-str-raises"),
    pytest.param(raise_, (ValueError("bad name \udcff"),), {}, "error", "ValueError: bad name \\udcff",
                 id="surrogate-in-error"),
    pytest.param(pow, (2, 3), {"name": "n\udcff"}, "name", "n\\udcff", id="surrogate-in-name"),
    pytest.param(pow, (2, 3), {"params": {"k\udcff": "v\udcff"}}, "params", {"k\\udcff": "'v\\udcff'"},
                 id="surrogate-in-params"),
    pytest.param(pow, (2, 3), {"params": {"x": Unrepr(), "y": 1}}, "params",
                 {"x": "<unrepresentable Unrepr: RuntimeError>", "y": "1"}, id="params-repr-raises"),
    pytest.param(pow, (2, 3), {"code": "pow(2, 3)  # \udcff"}, "code", "pow(2, 3)  # \\udcff",
                 id="surrogate-in-code"),
    pytest.param(pow, (2, 3), {"name": "\x1b[31mred\x00"}, "name", "\x1b[31mred\x00",
                 id="control-characters"),
    pytest.param(pow, (2, 3), {"priority": 2**70}, "error",  # SQLite refuses the value: the rest is kept
                 "notebook_ext could not store this job's full record: "
                 "OverflowError: Python int too large to convert to SQLite INTEGER", id="value-sqlite-refuses"),
]


@pytest.mark.parametrize("fn, args, options, column, expected", ODD_RECORDS)
def test_odd_record_is_written_and_the_writer_goes_on(tmp_path, flat, fn, args, options, column, expected):
    sched = Scheduler(slots=2, history=tmp_path / "h.sqlite3")
    try:
        odd = sched.submit(fn, *args, **options)
        wait_until(odd.done)
        later = [sched.submit(pow, 2, i, name=f"later-{i}") for i in range(10)]
        assert [j.result(timeout=10) for j in later] == [2**i for i in range(10)]
        sched.store.flush()
        assert sched.store._thread.is_alive()
        rows = {r.uid: r for r in sched.store.load(sessions="current")}
        assert getattr(rows[uid(sched, odd)], column) == expected
        assert rows[uid(sched, odd)].state == odd.state
        assert [rows[uid(sched, j)].state for j in later] == ["done"] * 10
    finally:
        sched.shutdown()


# -- a file another connection locks for a while ------------------------------------

def transitions(path: Path) -> list[tuple[str, str]]:
    """(uid, state) of every transition on disk, oldest first."""
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT uid, state FROM transitions ORDER BY rowid").fetchall()
    finally:
        con.close()


def records_made(store, monkeypatch) -> list[tuple[int, str]]:
    """(job id, state) of every record the scheduler makes from now on."""
    seen: list[tuple[int, str]] = []
    record = store.record
    monkeypatch.setattr(store, "record", lambda job, state=None: (
        seen.append((job.id, state or job.state)), record(job, state))[-1])
    return seen


@contextlib.contextmanager
def locked(path, *, commit: bool = True):
    """Another connection holds the file's write lock for the block."""
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        blocker.commit() if commit else blocker.rollback()
        blocker.close()


def powers_of_two(sched, n, **options):
    """Run ``n`` jobs to done; returns them."""
    jobs = [sched.submit(pow, 2, i, **{k: v.format(i=i) for k, v in options.items()}) for i in range(n)]
    assert [j.result(timeout=10) for j in jobs] == [2**i for i in range(n)]
    return jobs


def test_locked_file_is_retried_past_the_schedule_and_every_row_lands(tmp_path, flat):
    path = tmp_path / "h.sqlite3"
    sched = Scheduler(slots=2, history=path)
    store = sched.store
    try:
        assert sum(store.retry_delays) >= 60 and store.backlog_limit == 10_000  # the defaults
        store.retry_delays = FAST_RETRY
        store.flush()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with locked(path):
                powers_of_two(sched, 100, name="locked-{i}")
                # held well past the whole back-off schedule
                wait_until(lambda: not store.enabled or store.retries > 3 * len(FAST_RETRY), timeout=30)
            store.flush()
        assert store._thread.is_alive() and store.enabled
        rows = {r.name: r.state for r in store.load(sessions="current")}
        assert rows == {f"locked-{i}": "done" for i in range(100)}
        assert store.retries == 0 and store.dropped == 0
        assert runtime_warnings(caught) == []
    finally:
        sched.shutdown()


def test_backlog_overflow_drops_the_oldest_counts_them_and_warns_once(tmp_path, flat, monkeypatch):
    path = tmp_path / "h.sqlite3"
    sched = Scheduler(slots=2, history=path)
    store = sched.store
    try:
        store.retry_delays = FAST_RETRY
        store.backlog_limit = 20
        store.flush()
        on_disk = len(transitions(path))
        seen = records_made(store, monkeypatch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with locked(path):
                jobs = powers_of_two(sched, 100, name="locked-{i}")
                wait_until(lambda: {i for i, s in seen if s == "done"} == {j.id for j in jobs})
                # the writer has taken every record and kept the newest 20
                wait_until(lambda: store.dropped == len(seen) - 20, timeout=30,
                           message=f"dropped {getattr(store, 'dropped', None)} of {len(seen)}")
            store.flush()
        assert store.dropped == len(seen) - 20 > 0
        written = transitions(path)
        assert len(written) == on_disk + 20
        assert written[-20:] == [(f"{store.session}:{i}", s) for i, s in seen[-20:]]  # the newest 20 kept
        (message,) = runtime_warnings(caught)
        assert f"dropped {store.dropped} " in message and "locked" in message and "20" in message
        assert store._thread.is_alive() and store.enabled
        after = [sched.submit(pow, 3, i, name=f"after-{i}") for i in range(5)]
        assert [j.result(timeout=10) for j in after] == [3**i for i in range(5)]
        rows = {r.name: r.state for r in store.load(sessions="current")}
        assert all(rows[f"after-{i}"] == "done" for i in range(5))
    finally:
        sched.shutdown()


def test_shutdown_while_locked_gives_up_after_the_schedule_with_one_warning(tmp_path, flat, monkeypatch):
    path = tmp_path / "h.sqlite3"
    sched = Scheduler(slots=2, history=path)
    store = sched.store
    store.retry_delays = FAST_RETRY
    store.flush()
    on_disk = transitions(path)
    seen = records_made(store, monkeypatch)
    with locked(path, commit=False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jobs = powers_of_two(sched, 10)
        wait_until(lambda: {i for i, s in seen if s == "done"} == {j.id for j in jobs})
        sched.shutdown()
        wait_until(lambda: not store._thread.is_alive())
    assert store.dropped == len(seen) + 1  # and the session's end
    (message,) = runtime_warnings(caught)
    assert f"dropped {store.dropped} " in message and "still locked when the scheduler shut down" in message
    assert transitions(path) == on_disk


# -- files that cannot be used ------------------------------------------------------

GARBAGE = bytes(range(256)) * 16


def test_garbage_file_warns_once_jobs_run_and_load_raises_one_clean_error(tmp_path, flat):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(GARBAGE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched = Scheduler(slots=2, history=path)
    try:
        (message,) = runtime_warnings(caught)
        assert "job history disabled" in message and str(path) in message
        assert [sched.submit(pow, 2, i).result(timeout=10) for i in range(3)] == [1, 2, 4]
        with pytest.raises(sqlite3.DatabaseError, match="unreadable") as info:
            sched.store.load()
        assert str(path) in str(info.value) and info.value.__suppress_context__
        assert path.read_bytes() == GARBAGE  # left alone
    finally:
        sched.shutdown()


def test_jobs_history_magic_says_in_one_line_that_the_file_is_unreadable(tmp_path, capsys):
    from IPython.testing.globalipapp import start_ipython

    path = tmp_path / "h.sqlite3"
    path.write_bytes(GARBAGE)
    with pytest.warns(RuntimeWarning, match="job history disabled"):
        sched = Scheduler(slots=2, history=path)
    old = set_scheduler(sched)
    try:
        ip = start_ipython()
        ip.run_line_magic("load_ext", "notebook_ext")
        assert get_scheduler() is sched
        capsys.readouterr()
        assert ip.run_cell("%jobs --history").success
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        (line,) = [line for line in out.splitlines() if str(path) in line]
        assert "history file" in line and "unreadable" in line
    finally:
        set_scheduler(old)
        sched.shutdown()


def run_script(script: str, *args: str, unprivileged: bool = False) -> dict:
    """Run ``script`` in a fresh interpreter; its last line of output is JSON.
    ``unprivileged``: file modes bind it (as root: every capability dropped,
    root then is only the files' owner)."""
    cmd = [sys.executable, "-c", textwrap.dedent(script), *args]
    if unprivileged and os.geteuid() == 0:
        cmd = [shutil.which("setpriv") or "setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


RUN_JOBS = """
    import json, sys, warnings
    from notebook_ext.core import Scheduler
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = Scheduler(slots=2, history=sys.argv[1])
        results = [s.submit(pow, 2, i).result(timeout=10) for i in range(3)]
        s.shutdown()
    print(json.dumps({"results": results, "enabled": s.store.enabled,
                      "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning]}))
"""


def make_history(path: Path) -> None:
    s = Scheduler(slots=1, history=path)
    s.submit(pow, 2, 2, name="earlier").result(timeout=10)
    s.shutdown()


@pytest.mark.parametrize("case", ["read-only file", "read-only directory, new file",
                                  "read-only directory, existing file"])
def test_read_only_history_warns_once_and_jobs_run(tmp_path, case):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "h.sqlite3"
    if case != "read-only directory, new file":
        make_history(path)
    if case == "read-only file":
        path.chmod(0o444)
    else:
        folder.chmod(0o555)
    try:
        out = run_script(RUN_JOBS, str(path), unprivileged=True)
    finally:
        folder.chmod(0o755)
    assert out["results"] == [1, 2, 4] and out["enabled"] is False
    (message,) = out["warnings"]
    assert "job history disabled" in message and str(path) in message


def test_write_failure_while_running_disables_the_history_with_one_warning(tmp_path):
    """The file may not grow (a disk I/O error): history off, jobs go on."""
    out = run_script("""
        import json, os, resource, signal, sys, warnings
        from notebook_ext.core import Scheduler
        s = Scheduler(slots=2, history=sys.argv[1])
        s.submit(pow, 2, 2).result(timeout=10)
        s.store.flush()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            first = [s.submit(pow, 2, i).result(timeout=10) for i in range(20)]
            s.store._thread.join(timeout=10)
            then = [s.submit(pow, 3, i).result(timeout=10) for i in range(3)]
            s.shutdown()
        print(json.dumps({"results": first[-1:] + then, "enabled": s.store.enabled,
                          "writer": s.store._thread.is_alive(),
                          "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning]}))
    """, str(tmp_path / "h.sqlite3"))
    assert out["results"] == [2**19, 1, 3, 9] and out["enabled"] is False and out["writer"] is False
    (message,) = out["warnings"]
    assert "job history stopped" in message and "disk I/O error" in message


# -- permissions ---------------------------------------------------------------------

def test_new_history_file_and_folders_are_private_and_existing_folders_kept(tmp_path, flat):
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o751)
    path = mine / "new" / "sub" / "h.sqlite3"
    sched = Scheduler(slots=2, history=path)
    try:
        assert sched.submit(pow, 2, 2).result(timeout=10) == 4
        sched.store.flush()
        assert mode(path) == 0o600
        assert (mode(mine / "new"), mode(mine / "new" / "sub")) == (0o700, 0o700)
        assert mode(mine) == 0o751
        for side in ("-wal", "-shm"):  # SQLite gives them the database file's mode
            assert mode(f"{path}{side}") == 0o600
    finally:
        sched.shutdown()


# -- a bad row in the file: skipped and counted, the rest is read ------------------------

def earlier_history(path: Path, names: list[str]) -> dict[str, str]:
    """An earlier session that ran one job per name; name -> uid."""
    s = Scheduler(slots=1, history=path)
    jobs = [s.submit(pow, 2, 2, name=name) for name in names]
    assert [j.result(timeout=10) for j in jobs] == [4] * len(names)
    s.shutdown()
    return {j.name: f"{s.store.session}:{j.id}" for j in jobs}


def corrupt(path: Path, sql: str, uid: str) -> None:
    """Change one row with plain sqlite3, as another program (or a bad disk) would."""
    con = sqlite3.connect(path)
    try:
        with con:
            assert con.execute(sql, (uid,)).rowcount == 1
    finally:
        con.close()


BAD_ROWS = [
    pytest.param("INSERT INTO resumable VALUES (?, '{\"kind\": \"train\", \"path\": ')", id="resume-spec-not-json"),
    pytest.param("INSERT INTO resumable VALUES (?, '[\"a list\"]')", id="resume-spec-not-an-object"),
    pytest.param("UPDATE jobs SET params='{\"alpha\": ' WHERE uid=?", id="params-not-json"),
    pytest.param("UPDATE jobs SET metrics=x'ff00' WHERE uid=?", id="metrics-a-blob"),
    pytest.param("UPDATE jobs SET artifacts='{\"not\": \"a list\"}' WHERE uid=?", id="artifacts-not-a-list"),
    pytest.param("UPDATE jobs SET started='yesterday' WHERE uid=?", id="started-text"),
    pytest.param("UPDATE jobs SET attempts='many' WHERE uid=?", id="attempts-text"),
]


@pytest.mark.parametrize("sql", BAD_ROWS)
def test_a_bad_row_is_skipped_counted_and_warned_once(tmp_path, sql, capsys):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    import notebook_ext as nx

    path = tmp_path / "h.sqlite3"
    uids = earlier_history(path, ["first", "bad", "last"])
    corrupt(path, sql, uids["bad"])
    sched = Scheduler(slots=2, history=path)
    old = set_scheduler(sched)
    try:
        ip = start_ipython() or get_ipython()  # the suite's one shell
        ip.run_line_magic("load_ext", "notebook_ext")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert [r.name for r in nx.history()] == ["last", "first"]
            assert [r.name for r in sched.store.load(sessions="earlier")] == ["last", "first"]
            capsys.readouterr()
            assert ip.run_cell("%jobs --history").success
            out, err = capsys.readouterr()
        assert sched.store.skipped == 1
        (message,) = runtime_warnings(caught)  # once, however often the history is read
        assert "skipped 1 " in message and str(path) in message
        assert "Traceback" not in out + err
        assert "first" in out and "last" in out and "bad" not in out
        assert sched.store.enabled and sched.store._thread.is_alive()
        assert sched.store.find("bad") is None and sched.store.find("last").state == "done"
    finally:
        set_scheduler(old)
        sched.shutdown()


def test_text_in_another_encoding_is_read_escaped(tmp_path, flat):
    path = tmp_path / "h.sqlite3"
    uids = earlier_history(path, ["first", "bad", "last"])
    corrupt(path, "UPDATE jobs SET name=CAST(x'6c6174696e31e9' AS TEXT) WHERE uid=?", uids["bad"])
    sched = Scheduler(slots=2, history=path)
    try:
        assert [r.name for r in sched.store.load()] == ["last", "latin1\\xe9", "first"]
        assert sched.store.skipped == 0
    finally:
        sched.shutdown()


def test_an_unreadable_session_row_does_not_stop_the_next_open(tmp_path, flat):
    path = tmp_path / "h.sqlite3"
    earlier_history(path, ["earlier"])
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE sessions SET pid='not a pid', ended=NULL")
    con.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched = Scheduler(slots=2, history=path)
    try:
        assert sched.store.enabled and runtime_warnings(caught) == []
        assert sched.submit(pow, 2, 3, name="now").result(timeout=10) == 8
        assert [r.name for r in sched.store.load()] == ["now", "earlier"]
    finally:
        sched.shutdown()


# -- a lock at open: jobs run, the records reach the file when it goes -------------------

def session_rows(path: Path, session: str) -> tuple[list[tuple], list[tuple[str, str]]]:
    """(the session's row, its jobs' (name, state)) as on disk."""
    con = sqlite3.connect(path)
    try:
        return (con.execute("SELECT started FROM sessions WHERE id=?", (session,)).fetchall(),
                con.execute("SELECT name, state FROM jobs WHERE session=? ORDER BY job_id", (session,)).fetchall())
    finally:
        con.close()


def test_locked_at_open_jobs_run_and_records_land_when_the_lock_goes(tmp_path, flat):
    path = tmp_path / "h.sqlite3"
    earlier_history(path, ["earlier"])
    clock = FakeClock(start=2_000_000.0)
    with warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as stack:
        warnings.simplefilter("always")
        with locked(path):
            opened = time.monotonic()
            sched = Scheduler(slots=2, history=path, clock=clock)
            stack.callback(sched.shutdown)
            assert time.monotonic() - opened < 5  # the lock is not waited for here
            store = sched.store
            assert store.enabled
            store.retry_delays = FAST_RETRY
            jobs = powers_of_two(sched, 30, name="locked-{i}")
            wait_until(lambda: store.retries > 3 * len(FAST_RETRY), timeout=30)  # past the schedule
            assert session_rows(path, store.session) == ([], [])
            clock.advance(60)
        store.flush()
        (started,), names = session_rows(path, store.session)
        assert names == [(j.name, "done") for j in jobs]
        assert started == (2_000_000.0,)  # the session began at open (the store's clock), not when the lock went
        assert [r.name for r in store.load(sessions="earlier")] == ["earlier"]
        assert store.retries == 0 and store.dropped == 0 and store._thread.is_alive()
    assert runtime_warnings(caught) == []


def test_locked_at_open_keeps_the_backlog_bound_and_warns_once(tmp_path, flat, monkeypatch):
    path = tmp_path / "h.sqlite3"
    earlier_history(path, ["earlier"])
    on_disk = transitions(path)
    with warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as stack:
        warnings.simplefilter("always")
        with locked(path):
            sched = Scheduler(slots=2, history=path)
            stack.callback(sched.shutdown)
            store = sched.store
            store.retry_delays = FAST_RETRY
            store.backlog_limit = 20
            seen = records_made(store, monkeypatch)
            jobs = powers_of_two(sched, 30, name="locked-{i}")
            wait_until(lambda: {i for i, s in seen if s == "done"} == {j.id for j in jobs})
            wait_until(lambda: store.dropped == len(seen) - 20, timeout=30,
                       message=f"dropped {store.dropped} of {len(seen)}")
        store.flush()
        assert transitions(path) == on_disk + [(f"{store.session}:{i}", s) for i, s in seen[-20:]]
        assert len(session_rows(path, store.session)[0]) == 1
        (message,) = runtime_warnings(caught)
        assert f"dropped {store.dropped} " in message and "locked" in message and "20" in message
