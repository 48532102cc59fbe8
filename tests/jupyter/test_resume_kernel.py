"""Resume after a real crash: jobs run past a checkpoint, the kernel is
SIGKILLed, a new kernel on the same history resumes them with `%resume`,
and they end exactly where an uninterrupted run ends. Data that differ are
refused in one line; a preprocessing run into a sink runs only the items
the sink had not taken, and the sink holds each item once."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import SGDClassifier

from notebook_ext.core import Scheduler
from notebook_ext.ml import train
from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

DATA = """
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import SGDClassifier
X, y = make_classification(6000, 20, n_informative=8, random_state=0)
sgd = SGDClassifier(random_state=0)
forest = RandomForestClassifier(n_estimators=240, random_state=0)
"""
SGD = dict(epochs=400)
FOREST = dict(epochs=24)


def crash(k):
    """SIGKILL the kernel: no atexit, no shutdown, nothing flushed."""
    pid = k.km.provisioner.process.pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not k.km.is_alive(), timeout=10)


def step_of(path):
    from notebook_ext.ml._checkpoints import read_checkpoint

    try:
        return read_checkpoint(path)["step"]
    except (FileNotFoundError, EOFError, ValueError):
        return -1


def digest(*arrays):
    h = hashlib.md5()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_training_resumes_after_sigkill_to_the_uninterrupted_models(new_kernel, tmp_path):
    X, y = make_classification(6000, 20, n_informative=8, random_state=0)
    with Scheduler(2, history=None) as s:  # the runs that were never interrupted
        ref_sgd = train(SGDClassifier(random_state=0), X, y, scheduler=s, **SGD).result(300)
        ref_forest = train(RandomForestClassifier(n_estimators=240, random_state=0), X, y, scheduler=s,
                           **FOREST).result(300)
    k = new_kernel()
    try:
        k.execute(DATA)
        k.execute("%train sgd X y --epochs 400 --checkpoint 400 -n sgdfit")
        k.execute("%train forest X y --epochs 24 --checkpoint 1 -n forestfit")
        paths = eval(k.value("[nx.jobs[n].resume_spec['path'] for n in ('sgdfit', 'forestfit')]"))
        wait_until(lambda: step_of(paths[0]) >= 800 and step_of(paths[1]) >= 2, timeout=120,
                   message="no checkpoints written")
        states = k.value("[nx.jobs[n].state for n in ('sgdfit', 'forestfit')]")
        assert states == "['running', 'running']"  # past a checkpoint, not finished
    finally:
        crash(k)
    steps = [step_of(p) for p in paths]
    assert steps[0] < 400 * 20 and steps[1] < 24

    k = new_kernel()
    k.execute("import hashlib")
    reply, _ = k.execute("%resume sgdfit", allow_error=True)  # the data cells have not run yet
    assert (reply["ename"], reply["evalue"]) == ("UsageError", "%resume sgdfit: 'X' is not defined; run the "
                                                 "cells that make it (or name the data: %resume sgdfit DATA)")
    reply, _ = k.execute("%resume nope", allow_error=True)
    assert reply["evalue"].startswith("no job named 'nope' in the history")
    k.execute(DATA)
    _, listed = k.execute("%jobs --history")
    listed = str(listed)
    assert "%resume sgdfit" in listed and "%resume forestfit" in listed
    # other data: refused in one line, nothing submitted
    reply, _ = k.execute("X_other = X.copy(); X_other[0, 0] += 1\n%resume sgdfit X_other y", allow_error=True)
    assert reply["status"] == "error" and reply["ename"] == "UsageError"
    assert reply["evalue"] == ("cannot resume 'sgdfit': X has the same shape (6000, 20) but other values; "
                               "resume needs the data it was started with")
    reply, _ = k.execute("%resume forestfit X[:100] y[:100]", allow_error=True)
    assert reply["evalue"].startswith("cannot resume 'forestfit': X has shape (100, 20) float64")
    assert k.value("len(nx.jobs)") == "0"
    # the same data, found by the names the jobs were started with
    _, shown = k.execute("%resume sgdfit\n%resume forestfit")
    cards = str(shown)
    assert f"resumed from step {steps[0]}" in cards and f"resumed from step {steps[1]}" in cards
    k.execute("%wait sgdfit forestfit", timeout=300)
    assert k.value("[nx.jobs[n].state for n in ('sgdfit', 'forestfit')]") == "['done', 'done']"
    got_sgd = k.value("m = nx.jobs['sgdfit'].result(); hashlib.md5(np.ascontiguousarray(m.coef_).tobytes()"
                      " + m.predict(X).tobytes()).hexdigest()")
    got_forest = k.value("f = nx.jobs['forestfit'].result(); "
                         "hashlib.md5(f.predict_proba(X).tobytes()).hexdigest()")
    # the curve goes on from the first kernel's points
    assert eval(k.value("nx.jobs['sgdfit'].metrics['train_score'][0][0]")) < steps[0]
    assert k.value("len(nx.jobs['sgdfit'].metrics['train_score'])") == "400"
    assert got_sgd.strip("'") == digest(ref_sgd.coef_, ref_sgd.predict(X))
    assert got_forest.strip("'") == digest(ref_forest.predict_proba(X))


PREP = """
import os, time
items = list(range(200))
CALLS, SINK = {calls!r}, {sink!r}

def work(i):
    with open(CALLS, "a") as f:
        f.write(f"{{i}}\\n")
    time.sleep(0.02)
    return i

def save(value):
    with open(SINK, "a") as f:
        f.write(f"{{value}}\\n")
"""


def lines(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def test_preprocessing_into_a_sink_resumes_only_the_remaining_items(new_kernel, tmp_path):
    sink = tmp_path / "sink.txt"
    k = new_kernel()
    try:
        k.execute(PREP.format(calls=str(tmp_path / "calls1.txt"), sink=str(sink)))
        k.execute("%preprocess work items --workers 4 --into save -n prep")
        wait_until(lambda: len(lines(sink)) >= 80, timeout=60)
    finally:
        crash(k)
    before = lines(sink)
    assert 80 <= len(before) < 200 and len(set(before)) == len(before)
    k = new_kernel()
    k.execute(PREP.format(calls=str(tmp_path / "calls2.txt"), sink=str(sink)))
    _, shown = k.execute("%resume prep")
    assert f"resumed after {len(before)} items" in str(shown)
    k.execute("%wait prep", timeout=120)
    assert k.value("nx.jobs['prep'].result()") == "PreprocessResult(200 ok, 0 failed, into the sink)"
    assert k.value("nx.jobs['prep'].progress.done, nx.jobs['prep'].progress.total") == "(200, 200)"
    again = lines(tmp_path / "calls2.txt")
    assert sorted(again) == sorted(set(range(200)) - set(before))  # only the remaining items ran
    assert sorted(lines(sink)) == list(range(200))  # every item in the sink exactly once
