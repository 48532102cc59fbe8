"""The Dask executor on a real LocalCluster with 2 worker processes."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("distributed")

from notebook_ext.core import Scheduler, WorkerDied, checkpoint, progress, report, use_dask  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dsched():
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
    assert job.info["dashboard_link"].startswith("http://127.0.0.1:")
    assert dsched.executor("dask").slots == 2


def test_cancel_a_running_dask_job_leaves_the_cluster_healthy(dsched):
    job = dsched.submit(count, 100_000, 0.01, executor="dask")
    deadline = time.monotonic() + 30
    while job.progress.done < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.state == "running"
    job.cancel("enough")
    assert job.wait(5) and job.state == "cancelled"
    assert "Dask cannot stop a running task" in job.info["cancel_note"]
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
    deadline = time.monotonic() + 30
    while job.progress.done < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    where = dsched.executor("dask")._starts[job.id][0]
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


def test_timeout_applies_to_dask_jobs(dsched):
    job = dsched.submit(count, 100_000, 0.01, executor="dask", timeout=0.5)
    assert job.wait(5) and job.state == "timed_out"


def test_no_network_listener_without_use_dask():
    code = textwrap.dedent("""
        import psutil, notebook_ext as nx
        assert nx.submit(sum, [1, 2]).result(10) == 3
        assert nx.submit(abs, -4, executor="process").result(60) == 4
        me = psutil.Process()
        procs = [me] + me.children(recursive=True)
        listening = [c for p in procs for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
        print(listening)
        assert not listening, listening
        assert "distributed" not in __import__("sys").modules
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
