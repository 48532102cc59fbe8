"""A real kernel (jupyter_client), driven the way a notebook frontend does."""

import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel


class Kernel:
    def __init__(self, km, kc):
        self.km, self.kc = km, kc
        self.stray = []  # iopub messages not belonging to an awaited request

    def execute(self, code, timeout=60, allow_error=False):
        """Run ``code``; return (reply content, iopub messages of that request)."""
        msg_id = self.kc.execute(code)
        return self.collect(msg_id, timeout, allow_error)

    def collect(self, msg_id, timeout=60, allow_error=False):
        msgs = []
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no idle for {msg_id} within {timeout} s; got {msgs[-5:]}")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                self.stray.append(msg)
                continue
            msgs.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        reply = self.kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        content = reply["content"]
        if content["status"] == "error" and not allow_error:
            raise AssertionError(f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]))
        return content, msgs

    def value(self, expr, timeout=60):
        """Evaluate ``expr`` in the kernel and return its text/plain repr."""
        _, msgs = self.execute(expr, timeout)
        for m in msgs:
            if m["msg_type"] == "execute_result":
                return m["content"]["data"]["text/plain"]
        raise AssertionError(f"no result for {expr!r}: {[m['msg_type'] for m in msgs]}")

    def stdout(self, msgs):
        return "".join(m["content"]["text"] for m in msgs
                       if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")

    @staticmethod
    def comm_updates(msgs):
        return comm_updates(msgs)

    def errors(self, msgs):
        return [m["content"] for m in msgs if m["msg_type"] == "error"]


def start_kernel(history):
    """A kernel with notebook_ext loaded, its history at ``history``."""
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60,
                              env={**__import__("os").environ, "NOTEBOOK_EXT_HISTORY": str(history)})
    k = Kernel(km, kc)
    try:
        k.execute("%load_ext notebook_ext\nimport notebook_ext as nx, time")
    except BaseException:
        stop_kernel(k)
        raise
    return k


def stop_kernel(k):
    k.kc.stop_channels()
    k.km.shutdown_kernel(now=True)


@pytest.fixture
def new_kernel(tmp_path):
    """Start kernels on one history file (a kernel after another one died); all stopped at the end."""
    started = []

    def start():
        started.append(start_kernel(tmp_path / "history.sqlite3"))
        return started[-1]

    yield start
    for k in started:
        stop_kernel(k)


@pytest.fixture
def kernel(new_kernel):
    return new_kernel()


@pytest.fixture
def bare_kernel(tmp_path):
    """A kernel without notebook_ext loaded yet."""
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60,
                              env={**__import__("os").environ, "NOTEBOOK_EXT_HISTORY": str(tmp_path / "h.sqlite3")})
    k = Kernel(km, kc)
    yield k
    stop_kernel(k)


def comm_updates(msgs):
    return [m for m in msgs if m["msg_type"] == "comm_msg"
            and m["content"]["data"].get("method") == "update"]
