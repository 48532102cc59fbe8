"""`python -m notebook_ext`, run as users run it, against other processes
that run real jobs on the same ledger: `jobs` lists them (text, JSON,
--watch, the 50 most recent ended ones unless --all), `cancel` cancels or
stops-and-keeps one of them, refuses an ambiguous name and tells every
mistake in one line on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from notebook_ext.testing import wait_until

CLI_TIMEOUT = 30  # seconds one command may take (it never should)

#: A thread job named "fit" that runs for hours unless asked to stop; the
#: helper prints its job's uid once submitted, its final state once ended.
FIT = """
import sys, time
import notebook_ext as nx

def fit():
    for i in nx.progress(range(10**6)):
        time.sleep(0.01)

job = nx.submit(fit, name="fit")
print("UID", f"{nx.get_scheduler().store.session}:{job.id}", flush=True)
job.wait()
print("STATE", job.state, flush=True)
print("ERROR", job.error, flush=True)
"""

#: The same, but the job checks for "stop and keep" and returns early.
FIT_KEEPS = """
import sys, time
import notebook_ext as nx

def fit():
    for i in nx.progress(range(10**6)):
        if nx.current_job().stop_requested:
            return i
        time.sleep(0.01)

job = nx.submit(fit, name="fit")
print("UID", f"{nx.get_scheduler().store.session}:{job.id}", flush=True)
job.wait()
print("STATE", job.state, flush=True)
print("RESULT", job.result() if job.state == "done" else None, flush=True)
"""

#: 60 quick jobs, all done, then a normal exit.
SIXTY_DONE = """
import notebook_ext as nx

jobs = [nx.submit(int, i, name=f"quick{i}") for i in range(60)]
nx.wait(*jobs, timeout=60)
assert all(j.state == "done" for j in jobs), [j.state for j in jobs]
print("ALL DONE", flush=True)
"""


# -- helpers -----------------------------------------------------------------
def cli(path, *args, timeout=CLI_TIMEOUT):
    """``python -m notebook_ext --history PATH ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "notebook_ext", "--history", str(path), *args],
                          capture_output=True, text=True, timeout=timeout)


def strict_json(text):
    """``text`` parsed as standard JSON: no NaN nor Infinity (JavaScript's
    ``JSON.parse`` and most other parsers refuse them)."""
    def refuse(constant):
        raise ValueError(f"not standard JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def listed(path, *args):
    """``jobs --json`` parsed (the command must succeed)."""
    done = cli(path, "jobs", "--json", *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return strict_json(done.stdout)


def of_pid(path, pid, name="fit"):
    """The listed records of the job ``name`` that process ``pid`` owns."""
    return [r for r in listed(path) if r["owner"]["pid"] == pid and r["name"] == name]


def running_in_ledger(path, proc, name="fit"):
    """Wait until the ledger shows ``proc``'s job ``name`` running, with a
    live snapshot; return its record."""
    def check():
        found = of_pid(path, proc.pid, name)
        return found[0] if found and found[0]["state"] == "running" and found[0]["progress"]["done"] else None
    return wait_until(check, timeout=20, message=f"{name!r} of pid {proc.pid} never showed running with progress")


def final_lines(proc, timeout=20):
    """The helper's stdout once it exited (it must exit by itself)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"helper failed ({proc.returncode}): {err}"
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


@pytest.fixture
def history(tmp_path):
    return tmp_path / "history.sqlite3"


@pytest.fixture
def helpers(history):
    """Start a helper process running ``script`` on ``history``; every one
    is killed at the end, whatever happened."""
    started: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    env["NOTEBOOK_EXT_HISTORY"] = str(history)

    def start(script):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - nothing more to do
            pass


def rows(text):
    """The data rows of a `jobs` table (the header line left out)."""
    lines = text.rstrip("\n").splitlines()
    assert lines and lines[0].split()[:3] == ["ID", "NAME", "STATE"], text
    return lines[1:]


# -- (a) jobs lists another process's running job -----------------------------
def test_jobs_lists_the_running_job_of_another_process(history, helpers):
    proc = helpers(FIT)
    first = running_in_ledger(history, proc)

    table = cli(history, "jobs")
    assert table.returncode == 0 and table.stderr == ""
    [row] = [r for r in rows(table.stdout) if " fit " in f" {r} "]
    assert re.search(r"\brunning\b", row)
    assert re.search(r"\b\d+/1000000 \(\d+%\)", row), row  # its progress
    assert f"pid {proc.pid}" in row  # where it runs: no kernel, no notebook: its pid
    assert re.match(r"[0-9a-f]{12}:\d+\s", row)  # its id comes first

    keys = {"id", "name", "kind", "state", "live", "executor", "session", "created", "started", "ended", "error", "parent",
            "after", "progress", "metrics", "owner", "resumable"}
    assert set(first) == keys
    assert set(first["progress"]) == {"done", "total", "rate", "eta", "at"}
    assert set(first["owner"]) == {"pid", "host", "kernel", "notebook"}
    assert re.fullmatch(r"[0-9a-f]{12}:\d+", first["id"])
    assert first["id"] in table.stdout
    assert first["live"] is True and first["ended"] is None and first["error"] is None
    assert first["executor"] == "thread" and first["resumable"] is False
    assert first["owner"]["pid"] == proc.pid
    assert first["owner"]["kernel"] is None and first["owner"]["notebook"] is None
    assert first["progress"]["total"] == 10**6 and 0 < first["progress"]["done"] < 10**6
    # live snapshots go on: done grows from one call to a later one
    wait_until(lambda: of_pid(history, proc.pid)[0]["progress"]["done"] > first["progress"]["done"],
               timeout=10, message="progress.done did not grow between two `jobs --json`")
    later = of_pid(history, proc.pid)[0]
    assert later["progress"]["at"] > first["progress"]["at"] and later["state"] == "running"
    assert later["progress"]["rate"] and later["progress"]["rate"] > 0
    assert proc.poll() is None  # reading never disturbed it


def test_json_is_standard_json_even_with_nan_metrics(history, helpers):
    # a diverged loss is NaN: `json.dumps` would write NaN, which is not JSON
    proc = helpers("""
        import time
        import notebook_ext as nx

        def diverge():
            for i in nx.progress(range(10**6)):
                nx.report(loss=float("nan"), gain=float("inf"), acc=0.5)
                time.sleep(0.01)

        nx.submit(diverge, name="fit").wait()
    """)
    record = running_in_ledger(history, proc)
    assert record["metrics"] == {"loss": None, "gain": None, "acc": 0.5}
    watched = cli(history, "jobs", "--json", "--watch", "--count", "2", "--interval", "0.2")
    assert all(strict_json(line) for line in watched.stdout.splitlines() if line.strip())
    assert cli(history, "cancel", "fit").returncode == 0
    proc.wait(timeout=20)
    [ended] = of_pid(history, proc.pid)
    assert ended["state"] == "cancelled"  # its final metrics: standard JSON too (listed parses strictly)


def test_text_from_other_processes_stays_on_its_row_and_escapes_nothing(history, helpers):
    # an error of several lines with a terminal escape in it, and a cancel
    # reason with a newline: each job stays one row, and no escape reaches
    # the terminal
    proc = helpers("""
        import time
        import notebook_ext as nx

        def fit():
            for i in nx.progress(range(10**6)):
                time.sleep(0.01)

        def bad():
            raise ValueError("first line\\nsecond line \\x1b[2J\\x1b[31mred")

        nx.wait(nx.submit(bad, name="bad"), timeout=30)
        job = nx.submit(fit, name="fit")
        job.wait()
        print("STATE", job.state, flush=True)
    """)
    running_in_ledger(history, proc)
    wait_until(lambda: [r for r in listed(history) if r["name"] == "bad" and r["state"] == "failed"], timeout=20)
    done = cli(history, "cancel", "fit", "--reason", "too slow\nand \x1b[31mred")
    assert done.returncode == 0
    assert "\x1b" not in done.stdout
    assert done.stdout.splitlines()[-1].startswith("'fit' is cancelled: too slow and ")
    assert final_lines(proc)["STATE"] == "cancelled"

    table = cli(history, "jobs")
    assert table.returncode == 0 and "\x1b" not in table.stdout
    body = rows(table.stdout)
    assert len(body) == 2 and all(re.match(r"[0-9a-f]{12}:\d+\s", line) for line in body), table.stdout
    [bad] = [line for line in body if re.search(r"\sbad\s", line)]
    assert "failed: ValueError: first line second line" in bad
    [fit] = [line for line in body if re.search(r"\sfit\s", line)]
    assert "cancelled: too slow and" in fit
    # JSON keeps the text as it is (escaped the JSON way)
    [record] = [r for r in listed(history) if r["name"] == "bad"]
    assert record["error"] == "ValueError: first line\nsecond line \x1b[2J\x1b[31mred"


# -- (b) the 50 most recent ended jobs, or --all -------------------------------
def test_jobs_shows_50_ended_jobs_unless_all(history, helpers):
    proc = helpers(SIXTY_DONE)
    assert final_lines(proc, timeout=60) == {"ALL": "DONE"}

    recent = listed(history)
    every = listed(history, "--all")
    assert len(recent) == 50 and len(every) == 60
    assert all(r["state"] == "done" and not r["live"] for r in every)
    assert {r["name"] for r in every} == {f"quick{i}" for i in range(60)}
    assert {r["name"] for r in recent} == {f"quick{i}" for i in range(10, 60)}  # the most recent ones
    assert [r["created"] for r in every] == sorted((r["created"] for r in every), reverse=True)

    assert len(rows(cli(history, "jobs").stdout)) == 50
    assert len(rows(cli(history, "jobs", "--all").stdout)) == 60

    # an ended job cannot be cancelled: refused in one line
    refused = cli(history, "cancel", "quick59")
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1 and "done" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_live_jobs_are_listed_besides_the_50_ended_ones(history, helpers):
    assert final_lines(helpers(SIXTY_DONE), timeout=60) == {"ALL": "DONE"}
    proc = helpers(FIT)
    running_in_ledger(history, proc)
    recent = listed(history)
    assert len(recent) == 51
    assert recent[0]["name"] == "fit" and recent[0]["live"]  # the newest first
    assert len([r for r in recent if r["state"] == "done"]) == 50


# -- (c) cancel, and cancel --keep ---------------------------------------------
def test_cancel_cancels_the_job_of_another_process(history, helpers):
    proc = helpers(FIT)
    record = running_in_ledger(history, proc)

    done = cli(history, "cancel", "fit", "--reason", "too slow")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert record["id"] in done.stdout and f"pid {proc.pid}" in done.stdout
    assert "is cancelled" in done.stdout.splitlines()[-1]

    lines = final_lines(proc)
    assert lines["UID"] == record["id"]
    assert lines["STATE"] == "cancelled"  # the helper's own job says so
    assert "too slow" in lines["ERROR"]
    [after] = of_pid(history, proc.pid)
    assert after["state"] == "cancelled" and not after["live"] and after["ended"] is not None


def test_cancel_keep_asks_for_stop_and_keep(history, helpers):
    proc = helpers(FIT_KEEPS)
    running_in_ledger(history, proc)

    done = cli(history, "cancel", "fit", "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stop and keep" in done.stdout
    assert "is done" in done.stdout.splitlines()[-1]

    lines = final_lines(proc)
    assert lines["STATE"] == "done"  # it returned what it had: not cancelled
    assert int(lines["RESULT"]) > 0
    [after] = of_pid(history, proc.pid)
    assert after["state"] == "done" and after["error"] is None


def test_cancel_without_waiting_returns_at_once_and_the_request_is_still_taken(history, helpers):
    proc = helpers(FIT)
    running_in_ledger(history, proc)
    done = cli(history, "cancel", "fit", "--wait", "0")
    assert done.returncode == 0 and "asked" in done.stdout
    assert final_lines(proc)["STATE"] == "cancelled"


def test_cancel_not_taken_within_wait_exits_3(history, helpers):
    # a thread job that never reaches a cancellation point cannot be cancelled
    proc = helpers("""
        import time
        import notebook_ext as nx

        def stubborn():
            while True:
                time.sleep(0.01)

        job = nx.submit(stubborn, name="fit")
        job.wait()
    """)
    wait_until(lambda: [r for r in of_pid(history, proc.pid) if r["state"] == "running"], timeout=20)
    done = cli(history, "cancel", "fit", "--wait", "1")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "still runs after 1 s" in done.stdout
    assert of_pid(history, proc.pid)[0]["state"] == "running"


def test_a_killed_owner_s_job_reads_interrupted_and_cannot_be_cancelled(history, helpers):
    proc = helpers(FIT)
    running_in_ledger(history, proc)
    proc.kill()
    proc.wait(timeout=10)
    [record] = of_pid(history, proc.pid)
    assert record["state"] == "interrupted" and record["live"] is False and record["error"]
    table = cli(history, "jobs")
    assert re.search(r"\bfit\s+interrupted", table.stdout), table.stdout
    refused = cli(history, "cancel", "fit")
    assert refused.returncode == 1 and "interrupted" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


# -- (d) a name two live jobs share --------------------------------------------
def test_cancel_of_a_shared_name_is_refused_then_an_id_cancels_exactly_one(history, helpers):
    one, two = helpers(FIT), helpers(FIT)
    first, second = running_in_ledger(history, one), running_in_ledger(history, two)
    assert first["id"] != second["id"]

    refused = cli(history, "cancel", "fit")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert first["id"] in refused.stderr and second["id"] in refused.stderr
    # no request was left for either of them ...
    with contextlib.closing(sqlite3.connect(history)) as con:
        assert con.execute("SELECT count(*) FROM mailbox").fetchone()[0] == 0
    # ... and both run on (fresh snapshots, still running)
    for proc, record in ((one, first), (two, second)):
        wait_until(lambda: of_pid(history, proc.pid)[0]["progress"]["done"] > record["progress"]["done"] + 100,
                   timeout=15, message=f"pid {proc.pid}'s job stopped moving after a refused cancel")
        assert of_pid(history, proc.pid)[0]["state"] == "running" and proc.poll() is None

    done = cli(history, "cancel", second["id"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert second["id"] in done.stdout and "is cancelled" in done.stdout
    assert final_lines(two)["STATE"] == "cancelled"
    # the other one runs on
    mark = of_pid(history, one.pid)[0]["progress"]["done"]
    wait_until(lambda: of_pid(history, one.pid)[0]["progress"]["done"] > mark, timeout=10,
               message="the job whose id was not given stopped too")
    assert of_pid(history, one.pid)[0]["state"] == "running" and one.poll() is None
    # now the name is no longer ambiguous
    assert cli(history, "cancel", "fit").returncode == 0
    assert final_lines(one)["STATE"] == "cancelled"


# -- (e) mistakes: one line on stderr, exit 1 ----------------------------------
def test_cancel_of_an_unknown_job_is_one_line(history, helpers):
    proc = helpers(FIT)
    running_in_ledger(history, proc)
    done = cli(history, "cancel", "nosuchjob")
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "nosuchjob" in done.stderr and "Traceback" not in done.stderr
    assert of_pid(history, proc.pid)[0]["state"] == "running"


def test_a_history_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere" / "history.sqlite3"
    done = cli(missing, "jobs")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() == "no jobs in the ledger"
    as_json = cli(missing, "jobs", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    refused = cli(missing, "cancel", "fit")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr
    assert not missing.exists()  # reading made no file


@pytest.mark.parametrize("args", [("jobs",), ("jobs", "--json", "--all"), ("cancel", "fit")])
def test_a_garbage_history_file_is_one_line_on_stderr(tmp_path, args):
    garbage = tmp_path / "history.sqlite3"
    content = os.urandom(8192)
    garbage.write_bytes(content)
    done = cli(garbage, *args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and str(garbage) in done.stderr
    assert garbage.read_bytes() == content  # the user's file is left as it was


# -- (f) --watch ---------------------------------------------------------------
def test_watch_prints_count_tables(history, helpers):
    proc = helpers(FIT)
    running_in_ledger(history, proc)
    done = cli(history, "jobs", "--watch", "--count", "3", "--interval", "0.2")
    assert done.returncode == 0 and done.stderr == ""
    assert "\x1b" not in done.stdout  # not a terminal: no screen clearing
    headers = [line for line in done.stdout.splitlines() if line.split()[:3] == ["ID", "NAME", "STATE"]]
    assert len(headers) == 3
    assert len([line for line in done.stdout.splitlines() if re.search(r"\bfit\s+running\b", line)]) == 3


def test_watch_json_prints_one_document_per_refresh(history, helpers):
    proc = helpers(FIT)
    running_in_ledger(history, proc)
    done = cli(history, "jobs", "--json", "--watch", "--count", "3", "--interval", "0.2")
    assert done.returncode == 0 and done.stderr == ""
    docs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(docs) == 3
    assert all(any(r["name"] == "fit" and r["owner"]["pid"] == proc.pid for r in doc) for doc in docs)


def test_watch_on_an_empty_ledger(tmp_path):
    done = cli(tmp_path / "none.sqlite3", "jobs", "--watch", "--count", "2", "--interval", "0.2")
    assert done.returncode == 0
    assert done.stdout.count("no jobs in the ledger") == 2


def test_watch_into_a_pipe_the_reader_closed_ends_quietly(tmp_path):
    # `python -m notebook_ext jobs --watch | head -1`
    proc = subprocess.Popen([sys.executable, "-m", "notebook_ext", "--history", str(tmp_path / "h.sqlite3"),
                             "jobs", "--watch", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "no jobs in the ledger"
        proc.stdout.close()
        assert proc.wait(timeout=20) == 0
        err = proc.stderr.read()
        assert err == "", err  # no BrokenPipeError traceback
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()


# -- more mistakes -------------------------------------------------------------
def test_history_off_and_no_history_given_is_one_line(tmp_path):
    env = {**os.environ, "NOTEBOOK_EXT_HISTORY": "off"}
    done = subprocess.run([sys.executable, "-m", "notebook_ext", "jobs"], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, env=env, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "off" in done.stderr
    # --history wins over the variable
    given = subprocess.run([sys.executable, "-m", "notebook_ext", "--history", str(tmp_path / "h.sqlite3"), "jobs"],
                           capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
    assert given.returncode == 0 and given.stdout.strip() == "no jobs in the ledger"


def test_the_variable_names_the_ledger_when_history_is_not_given(history, helpers):
    proc = helpers(FIT)
    record = running_in_ledger(history, proc)
    env = {**os.environ, "NOTEBOOK_EXT_HISTORY": str(history)}
    done = subprocess.run([sys.executable, "-m", "notebook_ext", "jobs"], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, env=env)
    assert done.returncode == 0 and record["id"] in done.stdout


def test_a_ledger_of_a_newer_release_is_refused_in_one_line_and_left_alone(tmp_path):
    path = tmp_path / "history.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute("PRAGMA user_version=99")
        con.execute("CREATE TABLE future (x)")
    before = path.read_bytes()
    for args in (("jobs",), ("cancel", "fit")):
        done = cli(path, *args)
        assert done.returncode == 1 and done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1 and "newer" in done.stderr
        assert "Traceback" not in done.stderr
    assert path.read_bytes() == before
