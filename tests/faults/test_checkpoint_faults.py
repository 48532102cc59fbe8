"""Checkpoints never kill the run they protect: a full disk or a read-only
folder at a checkpoint pauses checkpoints with one line in the job's output
and training goes on; a damaged checkpoint is refused on resume in one line
that names the file; checkpoint and history folders others can write are
made private, or refused when another user owns them."""

from __future__ import annotations

import errno
import os
import tempfile
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier

from notebook_ext.core import Scheduler
from notebook_ext.ml import load_artifact, resume, train
from notebook_ext.ml._checkpoints import read_checkpoint
from notebook_ext.testing import wait_until

from .test_history_faults import mode, run_script, runtime_warnings

OTHER_UID = 4242  # not this process's user, not root


@pytest.fixture(scope="module")
def data():
    return make_classification(400, 10, random_state=0)


@pytest.fixture
def sched(tmp_path):
    s = Scheduler(slots=2, history=tmp_path / "history.sqlite3")
    yield s
    s.shutdown()


def paused_lines(job) -> list[str]:
    return [line for line in job.output.splitlines() if line.startswith("checkpoints paused:")]


# -- a checkpoint that cannot be written ----------------------------------------------

class Fault:
    """The first ``times`` checkpoint writes fail with ``code`` where a real
    fault would strike (``where``): "write" while the temporary file is
    written (a full disk: it is left half written), "create" when it is
    made (a read-only folder). Notes the step of every checkpoint written."""

    def __init__(self, monkeypatch, folder: Path, code: int, where: str, times: int) -> None:
        self.folder, self.code, self.where, self.left = str(folder), code, where, times
        self.written: list[int] = []
        real_dump, real_mkstemp = joblib.dump, tempfile.mkstemp

        def dump(value, filename, *args, **kwargs):
            if os.path.dirname(str(filename)) == self.folder and self.where == "write" and self.strike():
                with open(filename, "wb") as f:
                    f.write(b"\x80\x04\x95half")
                raise OSError(self.code, os.strerror(self.code), str(filename))
            out = real_dump(value, filename, *args, **kwargs)
            if isinstance(value, dict) and "step" in value:
                self.written.append(value["step"])
            return out

        def mkstemp(*args, **kwargs):
            if str(kwargs.get("dir")) == self.folder and self.where == "create" and self.strike():
                raise OSError(self.code, os.strerror(self.code), self.folder)
            return real_mkstemp(*args, **kwargs)

        monkeypatch.setattr(joblib, "dump", dump)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    def strike(self) -> bool:
        if self.left:
            self.left -= 1
            return True
        return False


@pytest.mark.parametrize("code, where", [(errno.ENOSPC, "write"), (errno.EROFS, "create"), (errno.EACCES, "create")],
                         ids=["ENOSPC", "EROFS", "EACCES"])
def test_a_checkpoint_that_cannot_be_written_pauses_them_and_training_goes_on(sched, data, monkeypatch, code, where):
    X, y = data
    folder = Path(sched.store.path).parent / "checkpoints"
    fault = Fault(monkeypatch, folder, code, where, times=2)  # the checkpoints at steps 2 and 4
    # 4 batches an epoch: a checkpoint is due at steps 2, 4, 6, ...
    job = train(SGDClassifier(random_state=0), X, y, epochs=4, batch_size=100, checkpoint_every=2,
                scheduler=sched, name="fit")
    job.wait(60)
    assert job.state == "done", job.error
    path = job.resume_spec["path"]
    (line,) = paused_lines(job)
    assert os.strerror(code) in line and path in line
    assert fault.left == 0 and fault.written[0] == 6  # tried again at its time (not at the next step), written
    assert not os.path.exists(path) and not [f for f in os.listdir(folder) if f.startswith(".tmp-")]


def test_a_real_read_only_checkpoint_folder_pauses_them_until_it_is_writable(tmp_path):
    """As an unprivileged process, so the folder's mode binds: the first
    checkpoint meets EACCES; the folder is made writable after that try."""
    out = run_script("""
        import json, os, sys, tempfile
        import joblib
        from sklearn.datasets import make_classification
        from sklearn.linear_model import SGDClassifier
        from notebook_ext.core import Scheduler
        from notebook_ext.ml import train

        folder = os.path.join(sys.argv[1], "checkpoints")
        os.mkdir(folder)
        os.chmod(folder, 0o500)
        real_mkstemp, real_dump, tries, written = tempfile.mkstemp, joblib.dump, [], []

        def mkstemp(*args, **kwargs):
            try:
                return real_mkstemp(*args, **kwargs)
            except PermissionError:
                tries.append("denied")
                os.chmod(folder, 0o700)  # the user mends it: the next checkpoint may go through
                raise

        def dump(value, filename, *args, **kwargs):
            written.append(value["step"])
            return real_dump(value, filename, *args, **kwargs)

        tempfile.mkstemp, joblib.dump = mkstemp, dump
        X, y = make_classification(400, 10, random_state=0)
        s = Scheduler(slots=1, history=os.path.join(sys.argv[1], "history.sqlite3"))
        job = train(SGDClassifier(random_state=0), X, y, epochs=4, batch_size=100, checkpoint_every=2,
                    scheduler=s, name="fit")
        job.wait(60)
        s.shutdown()
        print(json.dumps({"state": job.state, "output": job.output, "path": job.resume_spec["path"],
                          "tries": tries, "written": written}))
    """, str(tmp_path), unprivileged=True)
    assert out["state"] == "done"
    (line,) = [x for x in out["output"].splitlines() if x.startswith("checkpoints paused:")]
    assert os.strerror(errno.EACCES) in line and out["path"] in line
    assert out["tries"] == ["denied"] and out["written"][0] == 4


# -- a damaged checkpoint on resume ------------------------------------------------------

def stop_after_checkpoint(job) -> str:
    """Cancel ``job`` once it wrote a checkpoint (a stand-in for a crash)."""
    path = job.resume_spec["path"]
    wait_until(lambda: os.path.exists(path), timeout=60)
    job.cancel("stands in for a crash")
    job.wait(30)
    assert job.state == "cancelled"
    return path


@pytest.mark.parametrize("damage", ["truncated", "emptied", "overwritten"])
def test_a_damaged_checkpoint_is_refused_in_one_line_naming_the_file(sched, data, damage):
    X, y = data
    job = train(SGDClassifier(random_state=0), X, y, epochs=2000, batch_size=40, checkpoint_every=5,
                scheduler=sched, name="fit")
    path = stop_after_checkpoint(job)
    content = Path(path).read_bytes()
    Path(path).write_bytes({"truncated": content[: len(content) // 2], "emptied": b"",
                            "overwritten": np.random.default_rng(0).bytes(len(content))}[damage])
    with pytest.raises(ValueError) as err:
        resume("fit", X, y, scheduler=sched)
    message = str(err.value)
    assert path in message and "\n" not in message
    assert "damaged" in message and "delete it" in message and "train" in message
    with pytest.raises(ValueError, match="damaged"):
        load_artifact("fit", scheduler=sched)
    assert sched.jobs["fit"] is job  # nothing was submitted


def test_an_intact_checkpoint_still_reads(sched, data):
    X, y = data
    job = train(SGDClassifier(random_state=0), X, y, epochs=2000, batch_size=40, checkpoint_every=5,
                scheduler=sched, name="fit")
    assert read_checkpoint(stop_after_checkpoint(job))["step"] >= 5


# -- folders others can write ------------------------------------------------------------

def test_a_checkpoints_folder_others_can_write_is_made_private(sched, data):
    X, y = data
    folder = Path(sched.store.path).parent / "checkpoints"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o777)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = train(SGDClassifier(), X, y, epochs=2, checkpoint_every=2, scheduler=sched, name="fit")
    assert mode(folder) == 0o700
    (message,) = runtime_warnings(caught)
    assert str(folder) in message and "0777" in message and "0700" in message
    assert job.result(60) is not None


def test_a_checkpoints_folder_another_user_owns_is_refused_in_one_line(sched, data):
    X, y = data
    folder = Path(sched.store.path).parent / "checkpoints"
    folder.mkdir(exist_ok=True)
    os.chown(folder, OTHER_UID, OTHER_UID)
    with pytest.raises(PermissionError) as err:
        train(SGDClassifier(), X, y, epochs=2, checkpoint_every=2, scheduler=sched, name="fit")
    message = str(err.value)
    assert str(folder) in message and str(OTHER_UID) in message and "\n" not in message
    assert "fit" not in sched.jobs


def scheduler_on(history: Path) -> tuple[Scheduler, list[str]]:
    """A scheduler with its history at ``history``, and the warnings its opening gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched = Scheduler(slots=1, history=history)
    return sched, runtime_warnings(caught)


def test_a_history_folder_others_can_write_is_made_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    sched, told = scheduler_on(shared / "h.sqlite3")
    try:
        assert sched.store.enabled and mode(shared) == 0o700
        (message,) = told
        assert str(shared) in message and "0777" in message and "0700" in message
    finally:
        sched.shutdown()


def test_a_history_folder_another_user_owns_is_refused_in_one_line(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, OTHER_UID, OTHER_UID)
    sched, told = scheduler_on(theirs / "h.sqlite3")
    try:
        assert not sched.store.enabled and sched.submit(pow, 2, 3).result(timeout=10) == 8
        (message,) = told
        assert "job history disabled" in message and str(theirs) in message and str(OTHER_UID) in message
        assert "\n" not in message and not (theirs / "h.sqlite3").exists()
    finally:
        sched.shutdown()


def test_a_shared_sticky_folder_like_tmp_is_left_as_it_is(tmp_path):
    """Others may create files there but not replace ours: nothing to tighten
    (making /tmp 0700 would break the machine)."""
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    sched, told = scheduler_on(sticky / "h.sqlite3")
    try:
        assert sched.store.enabled and os.stat(sticky).st_mode & 0o7777 == 0o1777
        assert told == []
    finally:
        sched.shutdown()


# -- preprocessing: the sink's item log and the kept results on a full disk --------------

def test_a_sink_log_on_a_full_disk_pauses_checkpoints_and_every_item_reaches_the_sink(sched, monkeypatch):
    """/dev/full: every write fails with a real ENOSPC."""
    from notebook_ext.ml import _checkpoints, preprocess

    real_init = _checkpoints.ItemLog.__init__
    monkeypatch.setattr(_checkpoints.ItemLog, "__init__", lambda self, path: real_init(self, "/dev/full"))
    sink: list[int] = []
    job = preprocess(lambda i: i * 2, list(range(300)), workers=4, into=sink.append, scheduler=sched, name="full")
    assert job.wait(60), job.state
    assert job.state == "done", (job.state, job.error)
    assert sorted(sink) == [i * 2 for i in range(300)]
    lines = paused_lines(job)
    assert len(lines) == 1 and "No space left on device" in lines[0] and "/dev/full" in lines[0], job.output


def test_kept_results_on_a_full_disk_pause_checkpoints_and_the_results_are_whole(sched, monkeypatch):
    from notebook_ext.ml import _preprocess, preprocess

    monkeypatch.setattr(_preprocess, "write_part", lambda base, number, results: joblib.dump(results, "/dev/full"))
    job = preprocess(lambda i: -i, list(range(120)), workers=2, checkpoint_every=10, scheduler=sched, name="parts")
    assert job.wait(60), job.state
    assert job.state == "done", (job.state, job.error)
    assert job.result().results == [-i for i in range(120)]
    lines = paused_lines(job)
    assert len(lines) == 1 and "No space left on device" in lines[0], job.output
