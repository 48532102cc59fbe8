"""Output a process job printed reaches its job before the job ends, however
late the receiver thread reads the worker's pipe. (A clean-clone CI run lost
the whole 50 MB print of `test_50_mb_in_one_print_keeps_its_tail[process]`:
the worker's sender thread had shipped it, the result came back on the pool's
own queue first, and the job forgot its progress route before the receiver
had read the print out of the pipe.)"""

from __future__ import annotations

import threading
import time

from notebook_ext.core import Scheduler
from notebook_ext.executors import ProcessExecutor


def print_then_wait(text: str) -> str:
    print(text)
    time.sleep(0.4)  # the worker's sender ships the print meanwhile (every 0.1 s)
    return "done"


class SlowReader(ProcessExecutor):
    """A receiver that reads progress late, as a loaded machine may."""

    def __init__(self) -> None:
        super().__init__(slots=1)
        self.delayed = threading.Event()

    def _handle(self, worker, msg: tuple) -> None:
        if msg[0] == "progress":
            time.sleep(1.0)  # the fault: a result on another channel would overtake this message
            self.delayed.set()
        super()._handle(worker, msg)


def test_a_print_shipped_before_the_result_is_in_the_output_however_late_it_is_read(flat):
    ex = SlowReader()
    with Scheduler(slots=1, history=None, executors=[ex]) as sched:
        job = sched.submit(print_then_wait, "THE TEXT", executor="process")
        assert job.result(timeout=60) == "done"
        assert ex.delayed.is_set()  # the fault happened
        assert job.output.strip() == "THE TEXT"
