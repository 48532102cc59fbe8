"""Output a process job printed reaches its job before the job ends, however
late the receiver thread reads the worker's pipe. (A clean-clone CI run lost
the whole 50 MB print of `test_50_mb_in_one_print_keeps_its_tail[process]`:
the worker's sender thread had shipped it, the result came back on the pool's
own queue first, and the job forgot its progress route before the receiver
had read the print out of the pipe.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from notebook_ext.core import Scheduler
from notebook_ext.executors import ProcessExecutor
from notebook_ext.testing import wait_until


def print_then_wait(text: str, returning: str) -> str:
    print(text)
    time.sleep(0.4)  # the worker's sender ships the print meanwhile (every 0.1 s)
    Path(returning).touch()  # the result is on its way home now
    return "done"


class SlowReader(ProcessExecutor):
    """A receiver that reads progress late, as a loaded machine may: only
    once the job has returned, so its result is already on its way."""

    def __init__(self, returning: Path) -> None:
        super().__init__(slots=1)
        self.returning = returning
        self.delayed = threading.Event()

    def _handle(self, worker, msg: tuple) -> None:
        if msg[0] == "progress" and not self.delayed.is_set():
            # the fault: a result on another channel would overtake this message
            wait_until(self.returning.exists, timeout=30, message="the job never returned")
            self.delayed.set()
        super()._handle(worker, msg)


def test_a_print_shipped_before_the_result_is_in_the_output_however_late_it_is_read(flat, tmp_path):
    returning = tmp_path / "returning"
    ex = SlowReader(returning)
    with Scheduler(slots=1, history=None, executors=[ex]) as sched:
        job = sched.submit(print_then_wait, "THE TEXT", str(returning), executor="process")
        assert job.result(timeout=60) == "done"
        assert ex.delayed.is_set()  # the fault happened
        assert job.output.strip() == "THE TEXT"
