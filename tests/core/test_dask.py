"""The Dask executor on a real LocalCluster with 2 worker processes."""

import html
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from notebook_ext import use_dask
from notebook_ext.core import Scheduler, WorkerDied, progress, report
from notebook_ext.testing import FakeClock, wait_until
from notebook_ext.ui import snapshot_state, status_line, summary_html

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dsched():
    pytest.importorskip("distributed")  # only the tests on a cluster need it
    s = Scheduler(slots=2, history=None)
    use_dask(scheduler=s, n_workers=2)
    yield s
    s.shutdown()


def count(n, delay):
    for i in progress(range(n)):
        time.sleep(delay)
        if i % 10 == 0:
            print("step", i)
            report(score=i / n)
    return n


def test_job_on_dask_returns_and_reports_progress_while_running(dsched):
    seen = []
    unsubscribe = dsched.subscribe(lambda s: seen.append(s.progress.done) if s.state == "running" else None)
    job = dsched.submit(count, 40, 0.05, executor="dask")
    try:
        assert job.result(timeout=60) == 40
    finally:
        unsubscribe()
    assert len([d for d in seen if 0 < d < 40]) >= 5
    assert job.output.count("step") == 4 and job.metrics["score"]
    assert job.dashboard_link.startswith("http://127.0.0.1:")
    assert dsched.executor("dask").slots == 2


def tqdm_loop(n):
    from tqdm.auto import tqdm

    for _ in tqdm(range(n), desc="on the cluster"):
        time.sleep(0.005)
    return n


def test_a_tqdm_loop_on_dask_drives_its_job(dsched):
    job = dsched.submit(tqdm_loop, 40, executor="dask")
    assert job.result(timeout=60) == 40
    assert (job.progress.done, job.progress.total, job.progress.message) == (40, 40, "on the cluster")
    assert job.output == ""


def test_cancel_a_running_dask_job_leaves_the_cluster_healthy(dsched):
    job = dsched.submit(count, 100_000, 0.01, executor="dask")
    wait_until(lambda: job.progress.done >= 5, timeout=30)
    assert job.state == "running"
    job.cancel("enough")
    assert job.wait(5) and job.state == "cancelled"
    assert "Dask cannot stop a running task" in job.cancel_note
    # ... and the card says so (README and tutorial 06 promise it), in every renderer.
    snap = job.snapshot()
    assert snapshot_state(snap)["cancel_note"] == job.cancel_note
    assert job.cancel_note in status_line(snap) and html.escape(job.cancel_note) in summary_html(snap)
    # The worker thread stops at its next progress step: both slots work again.
    jobs = [dsched.submit(count, 5, 0.01, executor="dask") for _ in range(2)]
    assert [j.result(timeout=30) for j in jobs] == [5, 5]


def test_killed_worker_fails_the_job_or_retries_it(dsched):
    client = dsched.executor("dask").client

    def slow_pid():
        for _ in progress(range(400)):
            time.sleep(0.05)
        return os.getpid()

    job = dsched.submit(slow_pid, executor="dask", name="victim")
    wait_until(lambda: job.progress.done >= 3, timeout=30)
    where = dsched.executor("dask").worker_of(job)
    pid = client.run(os.getpid, workers=[where])[where]
    os.kill(pid, signal.SIGKILL)
    assert job.wait(30) and job.state == "failed"
    assert isinstance(job.exception(), WorkerDied) and "died" in job.error
    client.wait_for_workers(2, timeout=60)

    flaky = dsched.submit(_die_once, str(os.getpid()), executor="dask", retries=1, backoff=0.1)
    assert flaky.result(timeout=60) == "second try" and flaky.attempts == 2


def _die_once(tag):
    marker = f"/tmp/notebook_ext-die-once-{tag}"
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    os.unlink(marker)
    return "second try"


def test_timeout_applies_to_dask_jobs():
    pytest.importorskip("distributed")
    clock = FakeClock()
    s = Scheduler(slots=2, history=None, clock=clock)
    try:
        use_dask(scheduler=s, n_workers=1)
        job = s.submit(count, 100_000, 0.01, executor="dask", timeout=0.5)
        wait_until(lambda: job.progress.done >= 1, timeout=60)  # really running on the cluster
        clock.advance(0.499)
        assert job.state == "running"
        clock.advance(0.001)
        assert job.wait(10) and job.state == "timed_out" and job.timed_out
    finally:
        s.shutdown()


def test_no_network_listener_without_use_dask():
    # Runs with or without distributed installed (without it is the case it
    # checks). psutil comes with distributed, so without it read Linux's /proc.
    code = textwrap.dedent("""
        import os, sys, notebook_ext as nx
        assert nx.submit(sum, [1, 2]).result(10) == 3
        assert nx.submit(abs, -4, executor="process").result(60) == 4
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            me = psutil.Process()
            procs = [me] + me.children(recursive=True)
            listening = [c for p in procs for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
        else:  # Linux: our process tree from /proc/*/stat, its sockets from /proc/*/fd
            def read(path):
                try:
                    with open(path) as f:
                        return f.read()
                except OSError:
                    return ""
            parents = {int(p): read(f"/proc/{p}/stat").rpartition(")")[2].split()[1:2]
                       for p in os.listdir("/proc") if p.isdigit()}
            procs = {os.getpid()}
            while more := {p for p, pp in parents.items() if pp and int(pp[0]) in procs} - procs:
                procs |= more
            rows = [row.split() for t in ("tcp", "tcp6") for row in read(f"/proc/net/{t}").splitlines()[1:]]
            listen = {f"socket:[{row[9]}]" for row in rows if row[3] == "0A"}  # 0A: TCP_LISTEN
            listening = []
            for p in procs:
                try:
                    fds = os.listdir(f"/proc/{p}/fd")
                except OSError:  # ended meanwhile
                    continue
                for fd in fds:
                    try:
                        if os.readlink(f"/proc/{p}/fd/{fd}") in listen:
                            listening.append((p, fd))
                    except OSError:  # closed meanwhile
                        pass
        print(len(procs), "processes; listening:", listening)
        assert len(procs) > 1, procs  # the process worker is checked too
        assert not listening, listening
        assert "distributed" not in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout


def crunch_or_fail(x):
    if x == 11:
        raise KeyError("eleven")
    if x % 100 == 0:
        print("crunched", x)
    return x * x


def test_preprocess_items_on_dask_keep_order_failures_and_output(dsched):
    from notebook_ext.ml import preprocess

    job = preprocess(crunch_or_fail, range(500), executor="dask", scheduler=dsched, name="dask-items")
    res = job.result(120)
    assert res.results[:3] == [0, 1, 4] and res.results[499] == 499 * 499
    assert res.failed == {11: "KeyError: 'eleven'"} and "in crunch_or_fail" in job.detail.failed_items[0].traceback
    assert "crunched 400" in job.output
    assert [j.name for j in dsched.all_jobs() if j.name.startswith("dask-items")] == ["dask-items"]


def slow_item(x):
    time.sleep(0.05)
    return x


def test_cancelling_dask_items_stops_the_job_within_a_second(dsched):
    from notebook_ext.ml import preprocess

    job = preprocess(slow_item, range(100_000), executor="dask", scheduler=dsched)
    wait_until(lambda: job.progress.done >= 20, timeout=60)
    job.cancel()
    assert job.wait(1.0) and job.state == "cancelled"
    client = dsched.executor("dask").client
    wait_until(lambda: not [k for k in client.processing().values() for k in k if "nbx-items-" in str(k)],
               timeout=10, message="item chunks still processing on the cluster")
