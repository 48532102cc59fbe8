"""The ledger's schema and its readers: the previous release's history
opens, lists and resumes; a newer schema and a network filesystem are
refused in one line and the history stays in memory; a record this
release cannot read is skipped and counted; live snapshots are throttled
to one write per second per job; leases are renewed only while jobs run."""

from __future__ import annotations

import hashlib
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

from notebook_ext.core._duties import SNAPSHOT_SECONDS
from notebook_ext.core import Scheduler, progress
from notebook_ext.core import _store
from notebook_ext.core.lowlevel import SCHEMA_VERSION, HistoryStore, Ledger, network_filesystem
from notebook_ext.testing import wait_until

FIXTURE = Path(__file__).parents[1] / "fixtures" / "history_v1"
WHERE = Path("/tmp/notebook_ext-history-v1")  # where tests/fixtures/make_history_v1.py ran the old release


def runtime_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.fixture
def v1_history():
    """The previous release's files, back where that release wrote them."""
    shutil.rmtree(WHERE, ignore_errors=True)
    shutil.copytree(FIXTURE, WHERE)
    os.chmod(WHERE, 0o700)
    yield WHERE / "history.sqlite3"
    shutil.rmtree(WHERE, ignore_errors=True)


def test_the_previous_releases_history_opens_lists_and_its_interrupted_sink_run_resumes(v1_history):
    with sqlite3.connect(v1_history) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 0  # the first release's file
    store = HistoryStore(v1_history)
    try:
        rows = {r.name: r for r in store.load()}
        assert {n: r.state for n, r in rows.items()} == {"added": "done", "broken": "failed",
                                                            "long": "interrupted"}
        assert "ZeroDivisionError" in rows["broken"].error
        assert rows["long"].resume["kind"] == "preprocess"
    finally:
        store.close()
    with sqlite3.connect(v1_history) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    sink = WHERE / "sink.txt"
    before = [int(x) for x in sink.read_text().split()]
    assert 100 <= len(before) < 400
    script = textwrap.dedent(f"""
        import notebook_ext as nx

        def work(i):
            return i

        def save(value):
            with open({str(sink)!r}, "a") as f:
                f.write(f"{{value}}\\n")

        job = nx.resume("long", list(range(400)), func=work, into=save)
        job.wait(120)
        print(job.state, job.result())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "NOTEBOOK_EXT_HISTORY": str(v1_history)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "done PreprocessResult(400 ok, 0 failed, into the sink)"
    assert sorted(int(x) for x in sink.read_text().split()) == list(range(400))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_newer_schema_is_refused_in_one_line_left_untouched_and_history_stays_in_memory(tmp_path):
    path = tmp_path / "h.sqlite3"
    with Scheduler(slots=1, history=path) as s:
        s.submit(sum, [1], name="old").wait(10)
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = digest(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = Scheduler(slots=1, history=path)
    try:
        (message,) = runtime_warnings(caught)
        assert "kept in memory" in message and f"schema version {SCHEMA_VERSION + 1}" in message
        assert "\n" not in message
        assert s.submit(sum, [2], name="new").result(10) == 2
        assert [r.name for r in s.store.load()] == ["new"]  # this session's, from memory
    finally:
        s.shutdown()
    assert digest(path) == before


def test_a_history_on_a_network_filesystem_is_refused_and_kept_in_memory(tmp_path, monkeypatch):
    mounts = ("/dev/sda1 / ext4 rw 0 0\n"
              "server:/export /mnt/home nfs4 rw,relatime 0 0\n"
              "/dev/sdb1 /mnt/home/local ext4 rw 0 0\n"
              "me@host:/ /mnt/remote fuse.sshfs rw 0 0\n")
    assert network_filesystem("/mnt/home/me/h.sqlite3", mounts) == "nfs4"
    assert network_filesystem("/mnt/home/local/h.sqlite3", mounts) is None  # a local disk mounted inside
    assert network_filesystem("/mnt/remote/x", mounts) == "fuse.sshfs"
    assert network_filesystem("/home/me/x", mounts) is None
    assert network_filesystem("/mnt/homework/x", mounts) is None  # a prefix of the name is not a mount
    monkeypatch.setattr(_store, "network_filesystem", lambda path: "nfs4")  # no NFS server here
    path = tmp_path / "h.sqlite3"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = Scheduler(slots=1, history=path)
    try:
        (message,) = runtime_warnings(caught)
        assert "network filesystem (nfs4)" in message and "kept in memory" in message
        assert s.submit(sum, [3], name="here").result(10) == 3
        assert [(r.name, r.state) for r in s.store.load()] == [("here", "done")]
    finally:
        s.shutdown()
    assert not path.exists()


def test_a_record_of_a_newer_release_is_skipped_and_counted(tmp_path):
    path = tmp_path / "h.sqlite3"
    with Scheduler(slots=1, history=path) as s:
        for name in ("a", "b"):
            s.submit(sum, [1], name=name).wait(10)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE jobs SET state='paused' WHERE name='a'")
    store = HistoryStore(path)
    try:
        with pytest.warns(RuntimeWarning, match="'paused', which this notebook_ext does not know"):
            assert [r.name for r in store.load()] == ["b"]
        assert store.skipped == 1
    finally:
        store.close()


def test_live_snapshots_are_written_at_most_once_a_second_and_the_final_one_always(tmp_path):
    path = tmp_path / "h.sqlite3"
    with Scheduler(slots=1, history=path) as s:
        def busy(seconds):
            t0 = time.monotonic()
            for _ in progress(range(10 ** 9)):
                if time.monotonic() - t0 > seconds:
                    return
        t0 = time.monotonic()
        job = s.submit(busy, 2.5, name="busy")
        wait_until(lambda: s.store.flush() or (Ledger(path).resolve("busy").done or 0) > 0, timeout=10)
        mid = Ledger(path).resolve("busy")
        assert mid.state == "running" and mid.live and mid.total == 10 ** 9
        job.wait(30)
        took = time.monotonic() - t0
        s.store.flush()
        writes = s.store.live_writes
        end = Ledger(path).resolve("busy")
    assert job.ctx.done > 10_000  # many progress() calls …
    assert 2 <= writes <= took / SNAPSHOT_SECONDS + 2, (writes, took)  # … few writes: one a second, and the final one
    assert end.state == "done" and end.done == job.ctx.done


def test_the_lease_is_renewed_while_jobs_run_and_left_alone_when_idle(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_EXT_LEASE", "1")  # renewed every 0.2 s
    path = tmp_path / "h.sqlite3"

    def lease(session):
        with sqlite3.connect(path) as con:
            return con.execute("SELECT lease FROM sessions WHERE id=?", (session,)).fetchone()[0]

    with Scheduler(slots=1, history=path) as s:
        assert s.store.lease == 1.0
        s.store.flush()
        assert lease(s.store.session) is None  # no job yet: no lease
        stop = []
        job = s.submit(lambda: wait_until(lambda: stop, timeout=30), name="waits")
        wait_until(lambda: lease(s.store.session) is not None, timeout=10)
        first = lease(s.store.session)
        wait_until(lambda: lease(s.store.session) > first + 0.3, timeout=10, message="the lease was not renewed")
        stop.append(1)
        job.wait(10)
        s.store.flush()
        last = lease(s.store.session)
        renewals = s.store.live_writes, last
        wait_until(lambda: time.time() > last, timeout=10)  # the lease ran out: five renewal periods went by
        assert lease(s.store.session) == last, "renewed with no job running"
        assert (s.store.live_writes, lease(s.store.session)) == renewals


def test_a_jobs_record_is_the_ledgers_record_of_it(tmp_path):
    path = tmp_path / "h.sqlite3"
    with Scheduler(slots=1, history=path) as s:
        first = s.submit(sum, [1, 2], name="first", params={"alpha": 0.5})
        job = s.submit(lambda: 1 / 0, name="second", after=[first], kind="fit")
        job.wait(10)
        s.store.flush()
        mine = job.record
        (stored,) = [r for r in s.store.load() if r.name == "second"]
    assert type(mine) is type(stored)
    same = ("name", "state", "kind", "session", "uid", "job_id", "executor", "priority", "created", "started",
            "ended", "attempts", "error", "traceback", "parent", "after", "params", "artifacts")
    assert {k: getattr(mine, k) for k in same} == {k: getattr(stored, k) for k in same}
    assert mine.after == ("first",) and mine.state == "failed" and "ZeroDivisionError" in mine.error
    with pytest.raises(TypeError, match="cannot set state"):
        job.set_facts(state="done")  # the scheduler's own facts are not for layers to write
