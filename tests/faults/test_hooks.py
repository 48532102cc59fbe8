"""The interpreter hooks behave like the stock objects they stand in for,
follow the foreground when it replaces ``sys.stdout``, and are fully
undone: afterwards each patched attribute is the original object again."""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import io
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import notebook_ext as nx
from notebook_ext.core import Scheduler
from notebook_ext.testing import wait_until


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


def _printing_job(sched, lines: int, gate: threading.Event, started: threading.Event):
    def job():
        started.set()
        for i in range(lines):
            print(f"job line {i}")
            if i == lines // 2:
                gate.wait(10)  # half before the foreground's capture starts, half during it
        return "ok"

    return sched.submit(job, name="printer")


@pytest.mark.parametrize("capture", ["redirect_stdout", "sys.stdout = StringIO()"])
def test_a_jobs_prints_stay_on_its_card_while_the_foreground_captures_stdout(sched, capture):
    gate, started = threading.Event(), threading.Event()
    job = _printing_job(sched, 20, gate, started)
    assert started.wait(10)
    wait_until(lambda: "job line 10" in job.output, timeout=10)
    buf = io.StringIO()
    if capture == "redirect_stdout":
        cm = contextlib.redirect_stdout(buf)
    else:
        @contextlib.contextmanager
        def cm_fn():
            old = sys.stdout
            sys.stdout = buf
            try:
                yield
            finally:
                sys.stdout = old
        cm = cm_fn()
    with cm:
        print("foreground line")
        gate.set()
        assert job.wait(10)
    assert buf.getvalue() == "foreground line\n", "a job's line went into the foreground's capture"
    assert job.output.count("job line") == 20


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "latin-1"

    def fileno(self) -> int:
        return 7


def test_the_router_mirrors_the_stream_it_stands_for(sched):
    from notebook_ext.core.lowlevel import JobOutputRouter, install_output_capture

    tty = _Tty()
    with contextlib.redirect_stderr(tty):
        install_output_capture()  # as %load_ext does in a terminal IPython
        router = sys.stderr
        assert isinstance(router, JobOutputRouter) and router.original is tty
        assert router.isatty() and router.encoding == "latin-1" and router.fileno() == 7
        tqdm = pytest.importorskip("tqdm")
        bar = tqdm.tqdm(range(3), disable=None)  # tqdm switches itself off for a stream that is no tty
        assert not bar.disable, "tqdm(disable=None) outside any job turned itself off on a tty"
        list(bar)
    assert "3/3" in tty.getvalue()


def test_a_jobs_bar_takes_no_position_among_the_foregrounds_bars(sched):
    tqdm = pytest.importorskip("tqdm")
    gate, made = threading.Event(), threading.Event()

    def job():
        with tqdm.tqdm(total=10) as bar:
            bar.update(1)
            made.set()
            gate.wait(10)
        return "ok"

    j = sched.submit(job)
    try:
        assert made.wait(10)
        out = io.StringIO()
        with tqdm.tqdm(total=2, file=out, mininterval=0) as fg:
            fg.update(1)
            assert fg.pos == 0
        assert not out.getvalue().startswith("\n"), repr(out.getvalue()[:40])
    finally:
        gate.set()
    assert j.result(timeout=10) == "ok"


def test_shutdown_puts_every_patched_attribute_back(tmp_path):
    tqdm_std = pytest.importorskip("tqdm.std")
    nx.shutdown()  # earlier tests in this process installed the hooks: start from the originals
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    originals = {
        "stdout": sys.stdout, "stderr": sys.stderr, "start": vars(threading.Thread)["start"],
        "submit": vars(ThreadPoolExecutor)["submit"], "tqdm_new": vars(tqdm_std.tqdm)["__new__"],
        "run": asyncio.run, "meta_path": list(sys.meta_path), "handler": handler.stream,
    }
    try:
        from notebook_ext.core.lowlevel import HOOKS, install_asyncio_run

        install_asyncio_run()
        assert nx.submit(lambda: print("x")).result(timeout=10) is None
        assert sys.stdout is not originals["stdout"] and HOOKS.installed()
        nx.shutdown()
        assert sys.stdout is originals["stdout"] and sys.stderr is originals["stderr"]
        assert type(sys) is type(logging)  # the plain module class again
        assert vars(threading.Thread)["start"] is originals["start"]
        assert vars(ThreadPoolExecutor)["submit"] is originals["submit"]
        assert vars(tqdm_std.tqdm)["__new__"] is originals["tqdm_new"]
        assert asyncio.run is originals["run"]
        assert sys.meta_path == originals["meta_path"]
        assert handler.stream is originals["handler"]
        assert not [t for t in copyreg.dispatch_table if t.__name__ == "module"]  # sys's class of ours
        assert HOOKS.installed() == []
        # and the next job puts them in again
        assert nx.submit(lambda: print("y")).result(timeout=10) is None
        assert vars(threading.Thread)["start"] is not originals["start"]
    finally:
        logging.getLogger().removeHandler(handler)
        nx.shutdown()


def test_asyncio_run_under_a_running_loop_finalizes_async_generators_before_it_returns():
    """What a cell sees: a loop already runs in this thread."""
    from notebook_ext.core.lowlevel import run

    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("finally")

    async def main():
        async for _ in agen():
            break  # leaves the generator suspended: stock run finalizes it before returning
        return "main done"

    async def cell():
        value = run(main())
        events.append(value)

    asyncio.new_event_loop().run_until_complete(cell())
    assert events == ["finally", "main done"]


def test_attributes_set_on_the_router_land_on_the_stream_it_stands_for(sched):
    """tqdm's own test sets ``sys.stderr.encoding = None`` on a stream of its own."""
    from notebook_ext.core.lowlevel import JobOutputRouter, install_output_capture

    class Settable(io.StringIO):
        encoding = "utf-8"

    mine = Settable()
    with contextlib.redirect_stderr(mine):
        install_output_capture()
        assert isinstance(sys.stderr, JobOutputRouter)
        sys.stderr.encoding = None
        assert mine.encoding is None and sys.stderr.encoding is None


def test_an_idle_notifier_does_not_wake(sched):
    """A quiet kernel costs no CPU: with no job running, the notifier thread
    sleeps until something changes (it woke ten times a second, enough for
    tqdm's own CPU-time check to call the machine unreliable)."""
    seen = []
    sched.subscribe(seen.append)
    job = sched.submit(lambda: 1)
    assert job.result(timeout=10) == 1
    wait_until(lambda: any(s.id == job.id and s.state == "done" for s in seen), timeout=10)
    notifier = sched.notifier
    wait_until(lambda: notifier._idle, timeout=10)
    before = notifier.wakeups
    threading.Event().wait(0.5)  # a window of quiet, observed (not a synchronisation)
    assert notifier.wakeups == before, f"{notifier.wakeups - before} wake-ups in 0.5 s of nothing"
    second = sched.submit(lambda: 2)  # and a change wakes it
    assert second.result(timeout=10) == 2
    wait_until(lambda: any(s.id == second.id for s in seen), timeout=10)


def test_a_function_using_sys_still_travels_to_a_worker_process(sched):
    """`sys`'s module class is ours while the hooks are in: cloudpickle (whose
    module table is keyed by exact type) must still send it by name."""
    import cloudpickle

    from notebook_ext.core.lowlevel import install_output_capture

    install_output_capture()

    def where():
        return sys.platform, sys.stdout is not None

    assert cloudpickle.loads(cloudpickle.dumps(sys)) is sys
    assert sched.submit(where, executor="process").result(timeout=60) == (sys.platform, True)


def test_a_write_wrapped_around_the_router_wraps_its_routing(sched):
    """IPython 9 tees output into its history by setting ``sys.stdout.write``
    to a function calling the write it found: that must wrap the router
    (it recursed without end when forwarded to the stream it stands for)."""
    from notebook_ext.core.lowlevel import install_output_capture

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        install_output_capture()
        stream = sys.stdout
        found = stream.write
        teed = []

        def write(data):
            result = found(data)
            teed.append(data)
            return result

        stream.write = write  # as IPython's InteractiveShell._tee does
        print("foreground")
        assert sched.submit(print, "from a job").result(timeout=10) is None
    assert buf.getvalue() == "foreground\n" and "".join(teed) == "foreground\n"  # the job's line: not teed


def test_a_fresh_interpreter_with_the_hooks_in_imports_ipython_and_widgets_in_a_job():
    """What a worker process does when it unpickles a job from a module that
    imports the widgets: only `sys`'s `__setattr__` may differ from a module's
    (an attribute lookup of ours on it broke `from IPython import get_ipython`)."""
    import subprocess

    code = ("from notebook_ext.core.lowlevel import JobContext, install_output_capture, job_context\n"
            "install_output_capture()\n"
            "with job_context(JobContext(1)):\n"
            "    import ipywidgets, IPython\n"
            "    from IPython import get_ipython\n"
            "print('imported', sys.modules['sys'] is sys)\n")
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "imported True", out.stderr[-2000:]
