"""A real IPython kernel for the benchmarks: run cells, time round trips,
record the IOPub traffic it really sends."""

from __future__ import annotations

import os
import queue
import time

from jupyter_client.manager import start_new_kernel


class Kernel:
    """A fresh ``python3`` kernel (history off) with a blocking client."""

    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(
            kernel_name="python3", startup_timeout=120, env={**os.environ, "NOTEBOOK_EXT_HISTORY": "off"})

    def close(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- cells -------------------------------------------------------------------
    def run(self, code: str, timeout: float = 180, record: list | None = None) -> None:
        """Run ``code``; raise if it fails. With ``record``, every IOPub message
        seen until the cell is idle again is appended to it (see `read_iopub`)."""
        msg_id = self.kc.execute(code)
        if record is not None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = self._iopub(0.2, record)
                if (msg is not None and msg["msg_type"] == "status"
                        and msg["parent_header"].get("msg_id") == msg_id
                        and msg["content"].get("execution_state") == "idle"):
                    break
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content["status"] != "ok":
            tb = "\n".join(content.get("traceback", []))
            raise RuntimeError(f"kernel cell failed: {content.get('ename')}: {content.get('evalue')}\n{code}\n{tb}")

    def round_trip(self) -> float:
        """Milliseconds from sending the trivial cell ``1`` to its execute reply."""
        t0 = time.perf_counter()
        msg_id = self.kc.execute("1", store_history=False)
        while True:
            reply = self.kc.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                return (time.perf_counter() - t0) * 1000

    # -- IOPub -------------------------------------------------------------------
    def _iopub(self, timeout: float, record: list | None) -> dict | None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        if record is not None:
            record.append((sent_at(msg), msg["msg_type"]))
        return msg

    def read_iopub(self, seconds: float, record: list | None = None) -> list:
        """Read IOPub for ``seconds``; returns (kernel send time, msg_type) pairs."""
        record = [] if record is None else record
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._iopub(min(0.05, left), record)
        return record

    def drain(self, quiet: float = 0.3, limit: float = 30.0, record: list | None = None) -> list:
        """Read IOPub until nothing came for ``quiet`` seconds."""
        record = [] if record is None else record
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self._iopub(quiet, record) is None:
                break
        return record


def sent_at(msg: dict) -> float:
    """When the kernel made ``msg`` (its header's date; the arrival time if absent), as time.time()."""
    date = msg.get("header", {}).get("date")
    try:
        return date.timestamp()
    except AttributeError:
        return time.time()


def peak_per_second(times: list[float], window: float = 1.0) -> int:
    """The most messages in any ``window``-second interval."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
