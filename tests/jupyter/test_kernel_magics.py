"""The Jupyter layer in a real kernel: %%bg, cards that move while a cell
blocks, per-job output, the job magics and their errors."""

import time

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_bg_returns_at_once_with_a_running_job_and_a_card(kernel):
    t0 = time.monotonic()
    reply, msgs = kernel.execute("%%bg -n five\nfor i in progress(range(50)):\n    time.sleep(0.1)\n'ok'")
    assert time.monotonic() - t0 < 5
    assert kernel.value("nx.jobs['five'].state") == "'running'"
    views = [m for m in msgs if m["msg_type"] == "display_data"]
    assert views and "application/vnd.jupyter.widget-view+json" in views[0]["content"]["data"]
    assert "five [" in views[0]["content"]["data"]["text/plain"]
    assert kernel.value("1 + 1") == "2"


def test_card_moves_while_a_cell_blocks_and_prints_stay_in_the_job(kernel):
    kernel.execute(
        "%%bg -n chatty\n"
        "for i in progress(range(60)):\n"
        "    print('tick', i)\n"
        "    time.sleep(0.1)\n"
    )
    _, msgs = kernel.execute("time.sleep(3); print('foreground done')")
    updates = kernel.comm_updates(msgs) + kernel.comm_updates(kernel.stray)
    kernel.stray.clear()
    assert len(updates) >= 10, len(updates)
    assert len(updates) <= 3 * 10 + 5  # throttled: about 10 per second per card
    out = kernel.stdout(msgs)
    assert "foreground done" in out and "tick" not in out
    assert int(kernel.value("nx.jobs['chatty'].output.count('tick')")) >= 20


def test_failing_job_is_failed_with_traceback_and_others_finish(kernel):
    _, bad_msgs = kernel.execute("%%bg -n bad\ndef inner():\n    raise ValueError('broken input')\ninner()")
    _, good_msgs = kernel.execute("%%bg -n good\ntime.sleep(0.3)\n'fine'")
    _, wait_msgs = kernel.execute("%wait bad good")
    assert kernel.value("nx.jobs['bad'].state") == "'failed'"
    assert kernel.value("'inner' in nx.jobs['bad'].traceback") == "True"
    assert kernel.value("nx.jobs['good'].result()") == "'fine'"
    # What the frontend's cards show last: %wait returns only after both final states went out.
    cards = {}
    for m in sorted(bad_msgs + good_msgs + wait_msgs + kernel.stray, key=lambda m: m["header"]["date"]):
        if m["msg_type"] in ("comm_open", "comm_msg"):
            snap = m["content"]["data"].get("state", {}).get("snap")
            if snap:
                cards[snap["name"]] = snap
    assert cards["bad"]["state"] == "failed" and "broken input" in cards["bad"]["error"]
    assert "inner" in (cards["bad"]["traceback"] or ""), cards["bad"]["traceback"]
    assert cards["good"]["state"] == "done" and cards["good"]["traceback"] is None
    reply, msgs = kernel.execute("%result bad", allow_error=True)
    assert reply["status"] == "error" and reply["ename"] == "ValueError"
    assert reply["evalue"] == "broken input"
    assert kernel.value("%result good") == "'fine'"


BAD_CALLS = [
    ("%%bg -p high\n1", "`--priority` must be an integer, got 'high'"),
    ("%%bg --timeout -3\n1", "--timeout"),
    ("%%bg --retries x\n1", "`--retries` must be an integer"),
    ("%%bg --executor gpu\n1", "`--executor` must be one of"),
    ("%%bg --after nosuchjob\n1", "no job named 'nosuchjob'"),
    ("%%bg --out 3x\n1", "`--out` must be a Python variable name"),
    ("%%bg --out for\n1", "`--out` must be a Python variable name"),
    ("%%bg -n ''\n1", "name"),
    ("%%bg -n '   '\n1", "name"),
    ("%%bg --bogus\n1", "unrecognized arguments"),
    ("%%bg\n", "the cell body is empty"),
    ("%%bg\nx = (", "line"),
    ("%%bg --executor thread\nawait something()", "`await` runs with `--executor loop`"),
    ("%job nosuchjob", "no job named 'nosuchjob'"),
    ("%cancel", "name the jobs to cancel"),
    ("%cancel ghost", "no job named 'ghost'"),
    ("%wait ghost", "no job named 'ghost'"),
    ("%wait --timeout soon", "`--timeout` must be a number of seconds"),
    ("%result ghost", "no job named 'ghost'"),
    ("%retry ghost", "no job named 'ghost'"),
    ("%jobs --nope", "unrecognized arguments"),
]


def test_every_magic_mistake_is_a_one_line_usage_error_and_schedules_nothing(kernel):
    kernel.execute("import threading; lock = threading.Lock()")
    calls = BAD_CALLS + [("%%bg --executor process\nlock.acquire()", "cannot send `lock` to a worker process")]
    for code, expected in calls:
        reply, msgs = kernel.execute(code, allow_error=True)
        assert reply["status"] == "error", code
        assert reply["ename"] == "UsageError", (code, reply["ename"], reply["evalue"])
        assert expected in reply["evalue"], (code, reply["evalue"])
        assert "\n" not in reply["evalue"].strip(), code
    assert kernel.value("len(nx.jobs)") == "0"


def test_result_of_running_and_cancelled_jobs_is_a_usage_error(kernel):
    kernel.execute("%%bg -n slow\nfor i in progress(range(100)):\n    time.sleep(0.05)")
    reply, _ = kernel.execute("%result slow", allow_error=True)
    assert reply["ename"] == "UsageError" and "still running" in reply["evalue"]
    kernel.execute("%cancel slow")
    kernel.execute("%wait slow --timeout 5")
    reply, _ = kernel.execute("%result slow", allow_error=True)
    assert reply["ename"] == "UsageError" and "cancelled" in reply["evalue"]


def test_wait_returns_when_jobs_end_and_honours_timeout(kernel):
    kernel.execute("%%bg -n quick\ntime.sleep(0.5)\n1")
    kernel.execute("%%bg -n long\nfor i in progress(range(200)):\n    time.sleep(0.05)")
    t0 = time.monotonic()
    _, msgs = kernel.execute("%wait quick")
    assert time.monotonic() - t0 < 4 and "quick [done]" in kernel.stdout(msgs)
    t0 = time.monotonic()
    _, msgs = kernel.execute("%wait long --timeout 1")
    took = time.monotonic() - t0
    assert 0.9 < took < 4 and "still running after 1 s: long" in kernel.stdout(msgs)


def _main_thread_runs(kernel, func, timeout=20):
    """Poll, over a kernel subshell (the main shell is busy), until the
    kernel's main thread is inside ``func`` (an expression naming a function)."""
    msg = kernel.kc.session.msg("create_subshell_request", {})
    kernel.kc.control_channel.send(msg)
    subshell_id = kernel.kc.control_channel.get_msg(timeout=10)["content"]["subshell_id"]
    code = ("import sys, threading\n"
            "f, codes = sys._current_frames()[threading.main_thread().ident], []\n"
            "while f is not None:\n    codes.append(f.f_code); f = f.f_back\n"
            f"({func}).__code__ in codes")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = kernel.kc.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False})
        request["header"]["subshell_id"] = subshell_id
        kernel.kc.shell_channel.send(request)
        _, msgs = kernel.collect(request["header"]["msg_id"], timeout=10)
        if any(m["msg_type"] == "execute_result" and m["content"]["data"]["text/plain"] == "True" for m in msgs):
            return True
        time.sleep(0.02)
    return False


def test_interrupting_wait_leaves_jobs_running(kernel):
    kernel.execute("%%bg -n steady\nfor i in progress(range(300)):\n    time.sleep(0.05)")
    msg_id = kernel.kc.execute("%wait steady")
    assert _main_thread_runs(kernel, "type(nx.get_scheduler()).wait"), "%wait never blocked in Scheduler.wait"
    kernel.km.interrupt_kernel()
    _, msgs = kernel.collect(msg_id, timeout=20)
    assert "stopped waiting" in kernel.stdout(msgs)
    assert kernel.value("nx.jobs['steady'].state") == "'running'"


def test_out_assigns_only_on_success(kernel):
    kernel.execute("%%bg -n ok --out answer\n6 * 7")
    kernel.execute("%%bg -n nope --out missing\n1 / 0")
    kernel.execute("%wait ok nope")
    assert kernel.value("answer") == "42"
    assert kernel.value("'missing' in globals()") == "False"


def test_top_level_await_runs_on_the_loop_executor(kernel):
    kernel.execute("import asyncio")
    kernel.execute("%%bg -n aw\nawait asyncio.sleep(0.2)\n'awaited'")
    kernel.execute("%wait aw")
    assert kernel.value("(nx.jobs['aw'].executor, nx.jobs['aw'].result())") == "('loop', 'awaited')"


def test_process_cell_ships_its_names(kernel):
    kernel.execute("base = 40\ndef add(x):\n    return x + base")
    kernel.execute("%%bg -n proc --executor process\nimport os\n(add(2), os.getpid())")
    kernel.execute("%wait proc")
    value, pid = eval(kernel.value("nx.jobs['proc'].result()"))
    assert value == 42 and pid != int(kernel.value("__import__('os').getpid()"))


def test_asyncio_run_in_a_cell_and_a_queued_cell_still_replies(kernel):
    kernel.execute("import asyncio\nasync def main(d):\n    await asyncio.sleep(d)\n    return d")
    assert kernel.value("asyncio.run(main(0.1))") == "0.1"
    first = kernel.kc.execute("asyncio.run(main(1.5))")
    second = kernel.kc.execute("'second ran'")  # queued while the first is inside asyncio.run
    reply1, msgs1 = kernel.collect(first, timeout=30)
    reply2, msgs2 = kernel.collect(second, timeout=30)
    assert reply1["status"] == "ok" and reply2["status"] == "ok"
    assert any(m["msg_type"] == "execute_result" and m["content"]["data"]["text/plain"] == "'second ran'"
               for m in msgs2)


def test_reload_ext_keeps_jobs_and_does_not_duplicate_updates(kernel):
    kernel.execute("%%bg -n keep\nfor i in progress(range(100)):\n    time.sleep(0.05)")
    kernel.execute("pump_before = nx.ui.get_pump()")
    kernel.execute("%reload_ext notebook_ext")
    assert kernel.value("nx.jobs['keep'].state") == "'running'"
    assert kernel.value("nx.ui.get_pump() is pump_before") == "True"
    assert kernel.value("len(nx.get_scheduler().notifier._observers)") == "1"
    _, msgs = kernel.execute("time.sleep(1.5)")
    updates = kernel.comm_updates(msgs) + kernel.comm_updates(kernel.stray)
    assert 5 <= len(updates) <= 20


def test_cancel_and_retry_magics(kernel):
    kernel.execute("%%bg -n c1\nfor i in progress(range(200)):\n    time.sleep(0.05)")
    _, msgs = kernel.execute("%cancel c1")
    assert "c1: cancel requested" in kernel.stdout(msgs)
    kernel.execute("%wait c1 --timeout 5")
    assert kernel.value("nx.jobs['c1'].state") == "'cancelled'"
    kernel.execute("%retry c1")
    assert kernel.value("nx.jobs['c1'].state") in ("'running'", "'queued'", "'pending'")
    kernel.execute("%cancel --all")


def test_jobs_table_and_history(kernel):
    kernel.execute("%%bg -n listed\n1")
    kernel.execute("%wait listed")
    _, msgs = kernel.execute("%jobs --history")
    texts = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "display_data"]
    assert "listed" in texts[0] and "done" in texts[0] and "priority" in texts[0]
    assert "earlier sessions" in texts[1]


def test_dashboard_over_5000_jobs_makes_a_bounded_number_of_widgets(kernel):
    kernel.execute("s = nx.get_scheduler()\njobs = [s.submit(int) for _ in range(5000)]\n_ = s.wait(*jobs)")
    _, msgs = kernel.execute("%jobs --live")
    opens = [m for m in msgs if m["msg_type"] == "comm_open"]
    assert 1 <= len(opens) <= 3, len(opens)
    assert kernel.value("len(nx.ui.get_pump()._dashboards[0].view['rows'])") == "25"
    assert kernel.value("nx.ui.get_pump()._dashboards[0].view['total']") == "5000"


def test_quoted_names_are_unquoted_and_escapes_are_shown_escaped(kernel):
    kernel.execute("%%bg -n 'two words'\nx = 1")
    kernel.execute("%wait 'two words' --timeout 10")
    assert kernel.value("nx.jobs['two words'].state") == "'done'"
    kernel.execute("nx.submit(len, 'ab', name='\\x1b[31mred').wait(10)")
    _, msgs = kernel.execute("%jobs")
    text = "".join(m["content"]["data"].get("text/plain", "") for m in msgs if m["msg_type"] == "display_data")
    assert "two words" in text and "'two words'" not in text
    assert "\\x1b[31mred" in text and "\x1b" not in text

