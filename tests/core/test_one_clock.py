"""One clock: the package reads time only through `Clock` (the real one
lives in core/_clock.py), so a `FakeClock` moves everything time decides:
here, a training job's ``checkpoint_every="30s"``."""

from __future__ import annotations

import ast
import os
import threading
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from notebook_ext.core import Scheduler
from notebook_ext.ml import train
from notebook_ext.ml._checkpoints import read_checkpoint
from notebook_ext.testing import FakeClock, wait_until

PKG = Path(__file__).resolve().parents[2] / "notebook_ext"
READS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep",
         "process_time", "thread_time"}


def _direct_time_reads(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in READS and isinstance(node.value, ast.Name)
                and node.value.id == "time"):
            found.append((node.lineno, f"time.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found.extend((node.lineno, f"from time import {a.name}") for a in node.names if a.name in READS)
    return found


def test_core_executors_ml_and_ui_read_time_only_through_the_clock():
    found = []
    for layer in ("core", "executors", "ml", "ui"):
        for path in sorted((PKG / layer).rglob("*.py")):
            if path.relative_to(PKG).as_posix() == "core/_clock.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found += [f"{path.relative_to(PKG)}:{line}: {what}" for line, what in _direct_time_reads(tree)]
    assert found == []


def test_the_scan_sees_a_direct_read():
    tree = ast.parse("import time\nfrom time import monotonic\nt = time.perf_counter()\ntime.sleep(1)\n"
                     "s = time.strftime('%Y')\n")
    assert [what for _, what in _direct_time_reads(tree)] == [
        "from time import monotonic", "time.perf_counter", "time.sleep"]


# -- checkpoint_every on a fake clock ---------------------------------------------

GATE = threading.Semaphore(0)
ENTERED = [0]


class Stepper(BaseEstimator):
    """partial_fit one batch per release of GATE (module level: clone keeps no gate)."""

    def partial_fit(self, X, y=None):
        ENTERED[0] += 1
        if not GATE.acquire(timeout=60):
            raise TimeoutError("the test never released this step")
        self.steps_ = getattr(self, "steps_", 0) + 1
        return self

    def fit(self, X, y=None):
        return self.partial_fit(X, y)


def test_checkpoint_every_30s_follows_the_schedulers_clock(tmp_path):
    clock = FakeClock()
    save = tmp_path / "model.joblib"
    ckpt = str(save) + ".ckpt"
    ENTERED[0] = 0
    with Scheduler(slots=1, history=None, clock=clock) as sched:
        job = train(Stepper(), np.zeros((20, 2)), epochs=1, batch_size=1, save=str(save), checkpoint_every="30s",
                    scheduler=sched, name="stepper")

        def step(seconds: float) -> None:
            """Let ``seconds`` of fake time pass, then one more batch (and its checkpoint decision)."""
            clock.advance(seconds)
            entered = ENTERED[0]
            GATE.release()
            wait_until(lambda: ENTERED[0] == entered + 1, timeout=30)  # the next batch began: the last one's
            # checkpoint decision is behind it

        wait_until(lambda: ENTERED[0] == 1, timeout=30)
        step(29.0)
        assert not os.path.exists(ckpt)  # 29 s of the job's clock: not yet
        step(1.0)
        assert read_checkpoint(ckpt)["step"] == 2  # 30 s: the checkpoint of the step just taken
        step(29.9)
        assert read_checkpoint(ckpt)["step"] == 2
        step(0.1)
        assert read_checkpoint(ckpt)["step"] == 4
        assert read_checkpoint(ckpt)["written"] == clock.time()  # stamped by the same clock
        job.cancel("the test is done")
        for _ in range(20):
            GATE.release()
        job.wait(30)
