"""tqdm bars made inside a job drive the job's progress and print nothing;
outside jobs tqdm is untouched; without tqdm installed jobs still run."""

import asyncio
import io
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.testing import wait_until


@pytest.fixture(scope="module")
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


def _loop(kind):
    if kind == "std":
        from tqdm import tqdm
    elif kind == "auto":
        from tqdm.auto import tqdm
    elif kind == "notebook":
        from tqdm.notebook import tqdm
    else:
        from tqdm.asyncio import tqdm
    for _ in tqdm(range(40), desc="epochs"):
        pass
    return type(tqdm).__name__


@pytest.mark.parametrize("kind", ["std", "auto", "notebook", "asyncio"])
def test_each_tqdm_flavour_drives_its_job(sched, kind, capsys):
    job = sched.submit(_loop, kind, name=f"tq-{kind}")
    job.result(30)
    assert (job.progress.done, job.progress.total, job.progress.message) == (40, 40, "epochs")
    assert job.output == ""  # no bar text in the job's output either
    out, err = capsys.readouterr()
    assert "epochs" not in out + err


def test_the_outer_bar_drives_and_inner_bars_are_the_message(sched):
    from tqdm import tqdm

    go = threading.Event()
    seen = []

    def nested():
        for _ in tqdm(range(3), desc="epoch"):
            for _ in tqdm(range(50), desc="batch", leave=False, mininterval=0):
                go.wait(30)  # the work of one batch, held until the test looked
        return "ok"

    job = sched.submit(nested, name="nested")
    wait_until(lambda: "batch" in job.progress.message)
    seen.append((job.progress.done, job.progress.total, job.progress.message))
    go.set()
    job.result(30)
    assert seen[0][:2] == (0, 3) and seen[0][2].startswith("epoch · batch ")
    assert seen[0][2].endswith("/50")
    assert (job.progress.done, job.progress.total, job.progress.message) == (3, 3, "epoch")


def test_async_tqdm_and_gather_in_a_coroutine_job(sched):
    from tqdm.asyncio import tqdm

    async def body():
        async def source():
            for i in range(25):
                await asyncio.sleep(0)
                yield i

        return [x async for x in tqdm(source(), total=25, desc="reads")]

    job = sched.submit(body, name="aio")
    assert job.result(30) == list(range(25))
    assert (job.progress.done, job.progress.total, job.progress.message) == (25, 25, "reads")


def _square(x):
    return x * x


@pytest.mark.parametrize("which", ["thread_map", "process_map"])
def test_contrib_concurrent_maps_drive_the_job(sched, which):
    from tqdm.contrib import concurrent

    def body():
        return getattr(concurrent, which)(_square, range(30), max_workers=2)

    job = sched.submit(body, name=which)
    assert job.result(60) == [x * x for x in range(30)]
    assert (job.progress.done, job.progress.total) == (30, 30)


def _tq_in_worker():
    from tqdm.auto import tqdm

    for _ in tqdm(range(40), desc="remote"):
        time.sleep(0.002)
    return "ok"


def test_a_bar_in_a_process_job_reports_home(sched):
    job = sched.submit(_tq_in_worker, name="proc-tq", executor="process")
    assert job.result(60) == "ok"
    assert (job.progress.done, job.progress.total, job.progress.message) == (40, 40, "remote")


def test_a_tqdm_loop_is_a_cancellation_point(sched):
    from tqdm import tqdm

    def forever():
        for _ in tqdm(range(10**9)):
            time.sleep(0.001)

    job = sched.submit(forever, name="endless")
    wait_until(lambda: job.progress.done >= 20)
    job.cancel("enough")
    assert job.wait(5) and job.state == "cancelled"
    # ... without leaving tqdm's global write lock taken (every later bar would hang)
    later = threading.Thread(target=lambda: list(tqdm(range(3), file=io.StringIO())), daemon=True)
    later.start()
    later.join(10)
    assert not later.is_alive(), "a bar made after the cancel hangs on tqdm's lock"


def test_outside_jobs_tqdm_is_untouched():
    from tqdm import tqdm

    buf = io.StringIO()
    bar = tqdm(range(5), file=buf, desc="plain")
    assert type(bar) is tqdm
    list(bar)
    assert "plain: 100%" in buf.getvalue()


def test_jobs_run_when_tqdm_is_not_installed(tmp_path):
    script = tmp_path / "no_tqdm.py"
    script.write_text(textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path, target=None):
                if name == "tqdm" or name.startswith("tqdm."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        from notebook_ext.core import Scheduler
        s = Scheduler(slots=1, history=None)
        print(s.submit(lambda: 6 * 7).result(30))
        s.shutdown()
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "42"
