"""Resume: a training or preprocessing job stopped after a checkpoint goes on
from it and ends as an uninterrupted run would; different data is refused in
one line; the history lists records and resumable jobs; checkpoints are
pruned. (Here the stop is a cancel; tests/jupyter/test_resume_kernel.py
SIGKILLs a real kernel.)"""

import os
import threading

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier

from notebook_ext.core import Scheduler, history, set_scheduler
from notebook_ext.core.lowlevel import hold, prune, release
from notebook_ext.ml import load_artifact, preprocess, resume, train
from notebook_ext.ml._checkpoints import ItemLog, parse_every, read_checkpoint
from notebook_ext.testing import wait_until
from notebook_ext.ui import history_table, snapshot_state, status_line, summary_html


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(3000, 20, n_informative=8, random_state=0)
    return X, y


@pytest.fixture
def sched(tmp_path):
    s = Scheduler(slots=2, history=tmp_path / "history.sqlite3")
    yield s
    s.shutdown()


def stop_after_checkpoint(job, step=1):
    """Cancel ``job`` once its checkpoint holds at least ``step`` (a stand-in for a crash)."""
    path = job.resume_spec["path"]
    wait_until(lambda: os.path.exists(path) and read_checkpoint(path)["step"] >= step, timeout=60)
    job.cancel("stands in for a crash")
    job.wait(30)
    assert job.state == "cancelled"
    return read_checkpoint(path)["step"]


def test_partial_fit_resumes_to_the_uninterrupted_model(sched, data):
    X, y = data
    kw = dict(epochs=40, batch_size=30, scheduler=sched)
    reference = train(SGDClassifier(random_state=0), X, y, name="ref", **kw).result(120)
    job = train(SGDClassifier(random_state=0), X, y, name="fit", checkpoint_every=150, **kw)
    step = stop_after_checkpoint(job, 300)
    assert 300 <= step < 40 * 100  # the stop landed mid-training, past a checkpoint
    again = resume("fit", X, y, scheduler=sched)
    assert again.name == "fit" and again.detail.resumed_from == step
    model = again.result(120)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    # the curve goes on from the saved history: one point per epoch, the early ones from the first run
    steps = [s for s, _ in again.metrics["train_score"]]
    assert len(steps) == 40 and steps == sorted(steps) and steps[0] < step
    snap = again.snapshot()
    assert (snap.progress.done, snap.progress.total) == (4000, 4000)
    assert f"resumed from step {step}" in status_line(snap) and f"resumed from step {step}" in summary_html(snap)
    assert snapshot_state(snap)["resumed_note"] == f"resumed from step {step}"
    assert not os.path.exists(job.resume_spec["path"])  # done: nothing left to resume, the checkpoint went


def test_warm_start_forest_resumes_to_the_uninterrupted_model(sched, data):
    X, y = data
    forest = RandomForestClassifier(n_estimators=120, random_state=0)
    reference = train(forest, X, y, epochs=12, scheduler=sched, name="ref").result(120)
    job = train(forest, X, y, epochs=12, checkpoint_every=1, scheduler=sched, name="forest")
    step = stop_after_checkpoint(job, 2)
    model = resume("forest", X, y, scheduler=sched).result(120)
    assert len(model.estimators_) == 120
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    assert sched.jobs["forest"].detail.resumed_from == step


def test_other_data_is_refused_in_one_line(sched, data):
    X, y = data
    job = train(SGDClassifier(random_state=0), X, y, epochs=200, batch_size=30, checkpoint_every=20,
                scheduler=sched, name="fit")
    stop_after_checkpoint(job)
    with pytest.raises(ValueError) as shape:
        resume("fit", X[:100], y[:100], scheduler=sched)
    assert str(shape.value) == ("cannot resume 'fit': X has shape (100, 20) float64, the checkpoint's had "
                                "(3000, 20) float64; resume needs the data it was started with")
    other = X.copy()
    other[5, 5] += 1e-9
    with pytest.raises(ValueError, match="X has the same shape \\(3000, 20\\) but other values") as values:
        resume("fit", other, y, scheduler=sched)
    assert "\n" not in str(values.value)
    with pytest.raises(ValueError, match="y was given then and is not"):
        resume("fit", X, scheduler=sched)
    assert sched.jobs["fit"] is job  # nothing was submitted


def test_what_cannot_be_resumed_says_why(sched, data, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="no job named 'nope' in the history"):
        resume("nope", X, y, scheduler=sched)
    train(SGDClassifier(), X, y, epochs=2, checkpoint_every=5, scheduler=sched, name="quick").result(60)
    with pytest.raises(ValueError, match="job 'quick' finished \\(done\\): nothing to resume"):
        resume("quick", X, y, scheduler=sched)
    plain = train(SGDClassifier(), X, y, epochs=2000, scheduler=sched, name="plain")
    with pytest.raises(ValueError, match="job 'plain' is still (pending|queued|running) in this kernel: nothing to resume"):
        resume("plain", X, y, scheduler=sched)
    plain.cancel()
    plain.wait(30)
    with pytest.raises(ValueError, match="kept no checkpoint; run it with checkpoint_every="):
        resume("plain", X, y, scheduler=sched)
    with pytest.raises(ValueError, match="LogisticRegression is trained by one uninterrupted solver run"):
        train(LogisticRegression(), X, y, checkpoint_every=10, scheduler=sched)
    off = Scheduler(history=None)
    try:
        with pytest.raises(ValueError, match="needs the job history"):
            train(SGDClassifier(), X, y, checkpoint_every="10s", scheduler=off)
    finally:
        off.shutdown()


@pytest.mark.parametrize("text, expected", [
    (200, (200, None)), ("200", (200, None)), ("50 steps", (50, None)), ("30s", (None, 30.0)),
    ("5 min", (None, 300.0)), ("1h", (None, 3600.0)), ("0.5s", (None, 0.5)),
])
def test_checkpoint_every_reads_steps_or_time(text, expected):
    assert parse_every(text) == expected


@pytest.mark.parametrize("bad", [0, -3, "soon", "10 parsecs", 1.5, True])
def test_checkpoint_every_refuses_what_it_cannot_read(bad):
    with pytest.raises(ValueError, match="`checkpoint_every` must be a number of steps"):
        parse_every(bad)


def test_save_checkpoints_by_default_beside_the_model_and_load_artifact(sched, data, tmp_path):
    X, y = data
    save = tmp_path / "model.joblib"
    job = train(SGDClassifier(random_state=0), X, y, epochs=3, save=str(save), scheduler=sched, name="saved")
    assert job.resume_spec["path"] == str(save) + ".ckpt" and job.resume_spec["every"] == [None, 60.0]
    model = job.result(60)
    assert not os.path.exists(str(save) + ".ckpt")
    np.testing.assert_array_equal(load_artifact("saved", scheduler=sched).coef_, model.coef_)
    # a job that did not finish: its last checkpoint's model
    job = train(SGDClassifier(random_state=0), X, y, epochs=500, batch_size=30, checkpoint_every=40,
                scheduler=sched, name="half")
    step = stop_after_checkpoint(job, 40)
    half = load_artifact("half", scheduler=sched)
    assert half.t_ > 1 and read_checkpoint(job.resume_spec["path"])["step"] == step
    with pytest.raises(ValueError, match="no job named 'nope'"):
        load_artifact("nope", scheduler=sched)


def test_history_records_and_frame(sched, data):
    X, y = data
    train(SGDClassifier(), X, y, epochs=2, scheduler=sched, name="a").result(60)
    job = train(SGDClassifier(), X, y, epochs=500, batch_size=30, checkpoint_every=10, scheduler=sched, name="b")
    stop_after_checkpoint(job)
    old = set_scheduler(sched)
    try:
        recs = history()
    finally:
        set_scheduler(old)
    by_name = {r.name: r for r in recs}
    assert by_name["a"].state == "done" and not by_name["a"].resumable and by_name["a"].duration > 0
    assert by_name["b"].state == "cancelled" and by_name["b"].resumable
    assert by_name["b"].checkpoint == job.resume_spec["path"]
    frame = recs.to_frame()
    assert list(frame["name"]) == ["b", "a"] and list(frame["resumable"]) == [True, False]
    assert str(frame["started"].dtype).startswith("datetime64")
    text, html = history_table(sched.store.load())
    assert "%resume b" in text and "%resume a" not in text and "%resume b" in html


def test_preprocess_into_a_sink_resumes_only_the_remaining_items(sched):
    calls, sink = [], []
    gate = threading.Event()

    def work(i):
        calls.append(i)
        if i >= 60:
            gate.wait(30)  # the "crash" comes while these are in flight
        return i * 10

    items = list(range(200))
    job = preprocess(work, items, workers=4, into=sink.append, scheduler=sched, name="prep")
    log = job.resume_spec["path"]
    wait_until(lambda: len(ItemLog.read(log)) == 60, timeout=30)
    job.cancel("stands in for a crash")
    gate.set()
    job.wait(30)
    done_before = ItemLog.read(log)
    assert done_before == set(range(60)) and sorted(sink) == [i * 10 for i in range(60)]
    with pytest.raises(ValueError, match="items has shape \\(199,\\) list"):
        resume("prep", items[:-1], into=sink.append, func=work, scheduler=sched)
    calls.clear()
    again = resume("prep", items, into=sink.append, func=work, scheduler=sched)
    result = again.result(60)
    assert sorted(calls) == list(range(60, 200))  # only the remaining items ran
    assert sorted(sink) == [i * 10 for i in range(200)]  # each item exactly once
    assert result.count == 200 and result.into and result.ok
    snap = again.snapshot()
    assert (snap.progress.done, snap.progress.total) == (200, 200)
    assert "resumed after 60 items" in status_line(snap)


def test_preprocess_keeps_results_in_parts_when_asked(sched):
    gate = threading.Event()
    calls = []

    def work(i):
        calls.append(i)
        if i >= 50:
            gate.wait(30)
        return -i

    items = list(range(120))
    job = preprocess(work, items, workers=2, checkpoint_every=10, scheduler=sched, name="keep")
    log = job.resume_spec["path"]
    wait_until(lambda: len(ItemLog.read(log)) == 50, timeout=30)
    job.cancel("stands in for a crash")
    gate.set()
    job.wait(30)
    calls.clear()
    result = resume("keep", items, func=work, scheduler=sched).result(60)
    assert result.results == [-i for i in range(120)]
    assert min(calls) >= 50 and len(calls) == 70


def test_prune_deletes_the_oldest_checkpoints_not_in_use(tmp_path, monkeypatch):
    for i, name in enumerate(["old", "mid", "new"]):
        for suffix in ("", ".items"):
            path = tmp_path / f"{name}.ckpt{suffix}"
            path.write_bytes(b"x" * 1000)
            os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "notes.txt").write_bytes(b"x" * 5000)  # not ours: never touched
    hold(tmp_path / "old.ckpt")
    try:
        assert prune(tmp_path, cap=4000) == ["mid.ckpt"]  # old is being written here: kept
    finally:
        release(tmp_path / "old.ckpt", delete=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new.ckpt", "new.ckpt.items", "notes.txt", "old.ckpt", "old.ckpt.items"]
    monkeypatch.setenv("NOTEBOOK_EXT_CHECKPOINT_CAP", "2.5K")
    assert prune(tmp_path) == ["old.ckpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.ckpt", "new.ckpt.items", "notes.txt"]


def test_a_process_job_writes_its_checkpoints_in_the_worker_and_resumes(sched, data):
    X, y = data
    kw = dict(epochs=30, batch_size=30, scheduler=sched, executor="process")
    reference = train(SGDClassifier(random_state=1), X, y, name="ref", **kw).result(120)
    job = train(SGDClassifier(random_state=1), X, y, name="proc", checkpoint_every=100, **kw)
    step = stop_after_checkpoint(job, 200)
    again = resume("proc", X, y, scheduler=sched)
    assert again.executor == "process"  # where it ran before
    model = again.result(120)
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    assert again.metrics["train_score"][0][0] < step  # the history came back from the worker, and on


def test_retrying_a_checkpointed_training_starts_over_and_cleans_up(sched, data):
    X, y = data
    job = train(SGDClassifier(random_state=0), X, y, epochs=300, batch_size=30, checkpoint_every=50,
                scheduler=sched, name="fit")
    stop_after_checkpoint(job)
    again = sched.retry(job)
    assert again.resume_spec["path"] == job.resume_spec["path"] and again.detail.resumed_from is None
    again.cancel()
    again.wait(30)
    third = resume("fit", X, y, scheduler=sched)
    third.result(120)
    assert not os.path.exists(job.resume_spec["path"])


def test_a_pipeline_into_an_async_sink_resumes(sched):
    import asyncio

    from notebook_ext import pipeline, stage

    gate = threading.Event()
    seen, ran = [], []

    def parse(i):
        ran.append(i)
        if i >= 30:
            gate.wait(30)
        return i

    async def store(value):
        await asyncio.sleep(0)
        seen.append(value)

    items = list(range(80))
    pipe = pipeline(items, stage(parse, workers=3), stage(lambda v: v + 1000, workers=2))
    job = preprocess(pipe, into=store, scheduler=sched, name="pipe")
    wait_until(lambda: len(ItemLog.read(job.resume_spec["path"])) == 30, timeout=30)
    job.cancel("stands in for a crash")
    gate.set()
    job.wait(30)
    ran.clear()
    with pytest.raises(TypeError, match="it ran a pipeline; give the pipeline again"):
        resume("pipe", items, into=store, scheduler=sched)
    result = resume("pipe", pipe, into=store, scheduler=sched).result(60)
    assert sorted(ran) == list(range(30, 80))
    assert sorted(seen) == [i + 1000 for i in range(80)] and result.count == 80


def test_fingerprints_tell_data_apart():
    import pandas as pd
    from scipy import sparse

    from notebook_ext.ml._checkpoints import differs, fingerprint

    def same(a, b):
        return differs({"d": fingerprint(a)}, {"d": fingerprint(b)}) is None

    X = np.arange(12.0).reshape(4, 3)
    assert same(X, X.copy()) and same(X, np.asfortranarray(X))  # the values, not the memory layout
    assert not same(X, X.astype(np.float32)) and not same(X, X[:, ::-1])
    assert same(["ab", "c"], ["ab", "c"]) and not same(["ab", "c"], ["a", "bc"])
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert same(frame, frame.copy()) and not same(frame, frame.rename(columns={"b": "c"}))
    assert not same(frame, frame.iloc[::-1])
    S = sparse.random(20, 5, density=0.3, random_state=0, format="csr")
    assert same(S, S.tocoo()) and not same(S, S * 2)
    assert same([{"k": 1}], [{"k": 1}]) and not same([{"k": 1}], [{"k": 2}])
    assert fingerprint(iter([1, 2]))["hash"] is None  # an iterator is not consumed to be hashed
    assert same(iter([1]), iter([2]))  # so it cannot be checked: it is not refused


def test_the_resume_spec_is_typed_and_versioned(sched, tmp_path):
    """The history keeps a job's resume spec as versioned JSON: it reads back
    as the typed spec it was; one written by a newer notebook_ext is refused
    in one line; one from before versions reads as version 1; and `resume`
    takes the job's record as well as its name."""
    import json
    import sqlite3

    from notebook_ext.ml import SPEC_VERSION, PreprocessSpec, read_spec

    sink = []
    job = preprocess(lambda i: i, list(range(50)), into=sink.append, scheduler=sched, name="typed",
                     variables={"items": "numbers"})
    job.result(30)
    spec = read_spec(job.resume_spec)
    assert isinstance(spec, PreprocessSpec) and spec.sink and not spec.pipeline and spec.total == 50
    assert job.resume_spec["version"] == SPEC_VERSION and dict(spec.variables) == {"items": "numbers"}

    gate = threading.Event()
    job = preprocess(lambda i: (i < 10 or gate.wait(30)) and i, list(range(50)), into=sink.append,
                     scheduler=sched, name="later")
    wait_until(lambda: len(ItemLog.read(job.resume_spec["path"])) == 10, timeout=30)
    job.cancel("stands in for a crash")
    gate.set()
    job.wait(30)
    record = sched.store.find("later")
    with sqlite3.connect(sched.store.path) as db:
        newer = {**record.resume, "version": SPEC_VERSION + 1}
        db.execute("UPDATE resumable SET spec = ? WHERE uid = ?", (json.dumps(newer), record.uid))
    with pytest.raises(ValueError, match=f"version {SPEC_VERSION + 1}, made by a newer notebook_ext"):
        resume("later", list(range(50)), func=lambda i: i, into=sink.append, scheduler=sched)
    unversioned = {k: v for k, v in record.resume.items() if k != "version"}
    with sqlite3.connect(sched.store.path) as db:
        db.execute("UPDATE resumable SET spec = ? WHERE uid = ?", (json.dumps(unversioned), record.uid))
    again = resume(sched.store.find("later"), list(range(50)), func=lambda i: i, into=sink.append, scheduler=sched)
    assert again.result(30).count == 50 and again.name == "later"
