"""Every count a pipeline's card shows comes from one reading: the progress
bar, the "ok, failed, in flight" line and the per-stage table agree at every
instant. They came from three places updated at different moments (the bar
at every item, the line and the table four times a second), so a running
card read "184/400 (46%)" beside "113 ok … 6 in flight" and stage totals
that added up to neither. Also here: the peak in flight is measured at each
item's start (it read 0 for runs shorter than the card's update interval),
failed items are named by what the user passed (not by what an earlier
stage made of it), and a `%retry` counts against the original run."""

import json
import random
import re
import threading
import time
from pathlib import Path

import pytest

from notebook_ext.core import Scheduler, pipeline, stage
from notebook_ext.ml import preprocess, retry_failed
from notebook_ext.testing import wait_until
from notebook_ext.ui._render import snapshot_state

from .conftest import run_in

LINE = re.compile(r"(\d+) ok, (\d+) failed(?:, (\d+) in flight)?")


def agree(state: dict) -> list[str]:
    """What disagrees on one card state (empty: all its counts agree)."""
    wrong = []
    m = LINE.search(state["message"] or "")
    if m is None:
        return [f"no counts line in {state['message']!r}"]
    ok, failed = int(m.group(1)), int(m.group(2))
    if ok + failed != state["done"]:
        wrong.append(f"bar {state['done']} != {ok} ok + {failed} failed")
    if failed != state["failed_count"]:
        wrong.append(f"line says {failed} failed, card lists {state['failed_count']}")
    stages = state["stages"]
    if stages:
        if sum(s["failed"] for s in stages) != failed:
            wrong.append(f"stages failed {[s['failed'] for s in stages]} != {failed}")
        if stages[-1]["done"] + failed != state["done"]:
            wrong.append(f"last stage done {stages[-1]['done']} + {failed} failed != bar {state['done']}")
        if m.group(3) is not None and sum(s["in_flight"] for s in stages) != int(m.group(3)):
            wrong.append(f"stages in flight {[s['in_flight'] for s in stages]} != {m.group(3)}")
    return wrong


def _read(x):
    time.sleep(random.random() * 0.002)  # the item's own work
    if x % 37 == 5:
        raise ValueError(f"bad {x}")
    return x * 2


def _parse(x):
    time.sleep(random.random() * 0.003)
    if x % 53 == 8:
        raise KeyError(x)
    return x + 1


@pytest.fixture
def s():
    sched = Scheduler(slots=2, history=None)
    yield sched
    sched.shutdown()


def test_a_running_pipelines_counts_agree_at_20_random_instants(s):
    job = preprocess(pipeline(range(1500), stage(_read, workers=8), stage(_parse, workers=4)),
                     name="feats", scheduler=s)
    wait_until(lambda: job.snapshot().progress.done > 0, timeout=30)
    seen = []
    for _ in range(20):
        state = snapshot_state(job.snapshot())
        seen.append((state["done"], agree(state)))
        time.sleep(random.random() * 0.05)  # a random instant, not a synchronisation
    job.result(60)
    final = snapshot_state(job.snapshot())
    assert not agree(final), agree(final)
    assert final["done"] == final["total"] == 1500
    assert final["executor"] == "thread"  # where the items ran, not the loop that fed them
    running = [(done, wrong) for done, wrong in seen if done < 1500]
    assert running, "the pipeline ended before it was read while running"
    assert [w for _, w in seen if w] == [], seen


def _slowish(x):
    time.sleep(0.02)
    return x


def test_peak_in_flight_is_measured_when_items_overlap(s):
    # 16 items of 20 ms on 8 threads: the run is shorter than the card's update interval
    job = preprocess(_slowish, range(16), workers=8, name="short", scheduler=s)
    job.result(30)
    assert job.detail.max_in_flight >= 2, job.detail
    one = preprocess(pipeline(range(40), stage(_slowish, workers=4), stage(_slowish, workers=2)),
                     name="two", scheduler=s)
    one.result(30)
    peaks = [st.peak_in_flight for st in one.detail.stages]
    assert peaks[0] >= 2 and 1 <= peaks[1] <= 2, peaks


def _contents(path):
    return Path(path).read_text()


def _parse_json(text):
    return json.loads(text)


def test_failed_items_are_named_by_what_the_user_passed(s, tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"file_{i}.json"
        p.write_text("{not json at all, the file's contents" if i == 2 else json.dumps({"i": i}))
        paths.append(p)
    job = preprocess(pipeline(paths, stage(_contents), stage(_parse_json)), name="load", scheduler=s)
    result = job.result(30)
    assert list(result.failed) == [2]
    (failed,) = job.detail.failed_items
    assert failed.stage == "_parse_json"
    assert failed.item.endswith("file_2.json") and "contents" not in failed.item, failed.item
    assert "PosixPath" not in failed.item
    # a retry re-runs `_parse_json` on the contents: still named by the path
    again = retry_failed(job)
    assert list(again.result(30).failed) == [2]
    (failed,) = again.detail.failed_items
    assert failed.item.endswith("file_2.json"), failed.item


_bad = {"on": True}


def _flaky(x):
    if _bad["on"] and x in (3, 7, 11, 19, 23):
        raise ValueError(f"item {x} is bad")
    return x


def test_a_retry_counts_against_the_original_run_and_the_original_keeps_its_numbers(s):
    _bad["on"] = True
    job = preprocess(_flaky, range(40), name="feats", scheduler=s)
    job.result(30)
    before = snapshot_state(job.snapshot())
    assert (before["done"], before["total"], before["failed_count"]) == (40, 40, 5)
    assert before["message"].startswith("35 ok, 5 failed")
    _bad["on"] = False
    again = retry_failed(job)
    result = again.result(30)
    assert result.ok and result.results == list(range(40))
    after = snapshot_state(again.snapshot())
    assert (after["done"], after["total"], after["failed_count"]) == (40, 40, 0), after
    assert after["message"].startswith("retry of 5 failed items: 5 ok, 0 failed"), after["message"]
    # the original run's card and record keep its own final numbers
    kept = snapshot_state(job.snapshot())
    assert (kept["done"], kept["total"], kept["failed_count"], kept["message"]) == (
        40, 40, 5, before["message"])
    assert job.record.done == 40 and job.record.total == 40


@pytest.mark.kernel
@pytest.mark.slow
def test_the_card_a_user_sees_agrees_with_itself_in_a_kernel(kernel):
    kc = kernel()
    run_in(kc, "%load_ext notebook_ext\nimport notebook_ext as nx, random, time\n"
            "from notebook_ext.testing import wait_until\n"
            "def read(x):\n    time.sleep(random.random() * 0.002)\n"
            "    if x % 37 == 5: raise ValueError(x)\n    return x\n"
            "def parse(x):\n    time.sleep(random.random() * 0.003)\n    return x\n"
            "from notebook_ext.ml import preprocess\n"
            "job = preprocess(nx.pipeline(range(1500), nx.stage(read, workers=8), nx.stage(parse, workers=4)),"
            " name='feats')\n"
            "card = nx.ui.card(job)\n"
            "wait_until(lambda: (card.snap.get('done') or 0) > 0, timeout=30)\n"
            "states = []\n"
            "for _ in range(20):\n"
            "    states.append(dict(card.snap))\n"
            "    time.sleep(random.random() * 0.05)\n"
            "job.wait(60)\n")
    msgs = run_in(kc, "import json\nprint(json.dumps(states))")
    text = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    states = json.loads(text)
    assert len(states) == 20
    assert [agree(st) for st in states if agree(st)] == []
