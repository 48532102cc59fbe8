"""Shared pieces of the fault suite: every case ends with the process's
threads, file descriptors and child processes back where they started."""

from __future__ import annotations

import gc
import os
import threading
import time

import psutil
import pytest

from notebook_ext.core import checkpoint
from notebook_ext.testing import wait_until


def resources() -> dict[str, int]:
    """Threads, open file descriptors and live child processes of this process."""
    me = psutil.Process()
    children = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    return {
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "children": len(children),
    }


def assert_flat(before: dict[str, int], slack: int = 0) -> None:
    """Wait (a few seconds at most) until threads, fds and children are back
    to ``before`` (plus ``slack`` fds for caches the interpreter keeps)."""

    def back() -> bool:
        gc.collect()  # pools in reference cycles close their pipes when collected
        now = resources()
        return (now["threads"] <= before["threads"] and now["children"] <= before["children"]
                and now["fds"] <= before["fds"] + slack)

    wait_until(back, timeout=10, message=f"not flat: before {before}, now {resources()}")


@pytest.fixture
def flat():
    """Baseline taken before the test; asserted flat after it (the test
    shuts its schedulers down itself)."""
    before = resources()
    yield before
    assert_flat(before, slack=2)


@pytest.fixture(scope="session", autouse=True)
def _warm_process_machinery():
    """The forkserver and multiprocessing's resource tracker live as long
    as the test process once started: start them before any baseline."""
    from notebook_ext.core import Scheduler

    with Scheduler(slots=1, history=None) as s:
        assert s.submit(os.getpid, executor="process").result(timeout=60) != os.getpid()
    yield


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture
def paths(tmp_path):
    """Marker files a job body touches (works across processes and hosts
    of a LocalCluster): ``marker(name)``, ``ran(name)``, and one gate,
    ``release``, opened by ``open_gate()``."""

    class Paths:
        release = str(tmp_path / "release")

        def marker(self, name: str) -> str:
            return str(tmp_path / f"{name}.ran")

        def ran(self, name: str) -> bool:
            return os.path.exists(self.marker(name))

        def open_gate(self) -> None:
            open(self.release, "a").close()

    return Paths()


# -- job bodies shared by the executors' cases (module level: workers import them) --

def touch_then_wait(marker: str, release: str, limit: float = 60.0) -> str:
    """Mark that the body ran, then wait (checkpointing) for ``release``."""
    open(marker, "a").close()
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        checkpoint()
        time.sleep(0.005)
    return "released"


def fail_once(marker: str) -> None:
    with open(marker, "a") as f:
        f.write("x")
    raise ValueError("first attempt fails")


@pytest.fixture
def kernel(tmp_path):
    """A real kernel (jupyter_client), its history in ``tmp_path``: call it
    with extra environment variables to start it; yields a client."""
    from jupyter_client.manager import start_new_kernel

    started = []

    def start(**env: str):
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60,
                                  env={**os.environ, "NOTEBOOK_EXT_HISTORY": str(tmp_path / "h.sqlite3"), **env})
        started.append((km, kc))
        return kc

    yield start
    for km, kc in started:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_in(kc, code: str) -> list:
    """Run ``code`` in the kernel of ``kc``; its IOPub messages (it must succeed)."""
    msgs: list = []
    reply = kc.execute_interactive(code, timeout=60, output_hook=msgs.append)
    assert reply["content"]["status"] == "ok", reply["content"]
    return msgs
