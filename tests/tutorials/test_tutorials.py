"""Every tutorial runs in a fresh kernel and does what its prose promises, as it is
in the repository, under nbclient, papermill and nbconvert (the `runner` fixture);
every job card it saves for a job that ended shows its final state.

Each tutorial NN-*.ipynb has its checks in check_NN(nb) here; test_install.py
and test_binder.py run the same checks on the tutorials executed in a fresh
virtual environment. Running a tutorial from the repository's tutorials/ folder
leaves no untracked files: whatever it writes there is ignored by git."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from tutorial_runner import TUTORIALS, assert_cards_final, card_displays, card_states, outputs_text

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

ROOT = TUTORIALS.parent


def _cell(nb, needle):
    for cell in nb.cells:
        if cell.cell_type == "code" and needle in cell.source:
            return cell
    raise AssertionError(f"no cell with {needle!r}")


def test_01_quickstart(run, tmp_path):
    nb = run("01-quickstart.ipynb")
    check_01(nb)
    assert_cards_final(nb)
    assert_ignored_by_git(scratch_files(tmp_path, "01-quickstart.ipynb"))


def check_quickstart(nb):
    assert outputs_text(_cell(nb, "1 + 1")) == "2"
    fg = outputs_text(_cell(nb, "time.sleep(2)"))
    assert "the foreground cell is done" in fg and "reached" not in fg
    waited = outputs_text(_cell(nb, "%wait count"))
    assert "count [done]" in waited and "forever [cancelled]" in waited and "boom [failed]" in waited
    assert outputs_text(_cell(nb, "%result count")) == str(sum(range(40)))
    assert "FileNotFoundError: data/missing.csv" in outputs_text(_cell(nb, "%result boom"))
    assert outputs_text(_cell(nb, "prep.result()")) == "(9, 16, 'done')"
    cards = card_states(nb)
    assert cards["count"]["state"] == "done" and cards["count"]["done"] == 40
    assert cards["count"]["curve"]["name"] == "running_mean"
    assert "reached 30" in cards["count"]["output"]
    assert cards["forever"]["state"] == "cancelled" and cards["boom"]["state"] == "failed"
    assert "FileNotFoundError" in cards["boom"]["traceback"]
    # %result re-raises; the cell catches it (no error output: papermill fails on any) and prints
    # the job's traceback: its own frames with the cell's lines, no library frames
    caught = _cell(nb, "%result boom")
    assert [o["ename"] for o in caught.outputs if o["output_type"] == "error"] == []
    tb = outputs_text(caught)
    assert '"<bg cell boom>", line 5' in tb and 'load("data/missing.csv")' in tb and "notebook_ext/" not in tb
    # tqdm drives the card and prints nothing; display() lands on the card
    assert cards["own-code"]["state"] == "done"
    assert (cards["own-code"]["done"], cards["own-code"]["total"]) == (20, 20)
    assert [d["data"] for d in card_displays(nb)["own-code"]] == ["<b>20 epochs done</b>"]
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert "it/s" not in outputs_text(cell) and "epochs done" not in outputs_text(cell), cell.source


check_01 = check_quickstart


def test_02_background_training(run, runner, tmp_path):
    # under nbclient the kernel really dies where the tutorial says "restart the kernel now";
    # papermill and nbconvert run the cell that stands in for it, as a reader's pipeline does
    crashed = runner == "nbclient"
    nb = run("02-background-training.ipynb", crash=crashed)
    check_02(nb, crashed=crashed)
    assert_cards_final(nb)
    scratch = scratch_files(tmp_path, "02-background-training.ipynb")
    assert "digits-sgd.joblib" in scratch  # the model it saves, next to the notebook
    assert_ignored_by_git(scratch)


def check_02(nb, crashed=False):
    scores = eval(outputs_text(_cell(nb, "for name, m in")))
    assert scores["sgd"] > 0.85 and scores["forest"] > 0.9 and scores["logreg"] > 0.9 and scores["svc"] > 0.9
    text = outputs_text(_cell(nb, "strategies:"))
    assert "'sgd': 'partial_fit'" in text and "'forest': 'warm_start'" in text
    assert "'logreg': 'callback'" in text and "'svc': 'fit'" in text
    assert "your estimator was not touched: True" in text
    state, stopped, score = eval(outputs_text(_cell(nb, "job.request_stop()")))
    assert state == "done" and stopped is True and score > 0.5
    loaded_score, artifacts = eval(outputs_text(_cell(nb, "joblib.load")))
    assert loaded_score > 0.8 and artifacts[0].endswith("digits-sgd.joblib")
    check_02_resume(nb, crashed)


def check_02_resume(nb, crashed):
    """The job trained past a checkpoint, died with its kernel (or was
    cancelled in its place) and went on from there in the new one."""
    refusal = outputs_text(_cell(nb, "nx.resume(\"long\", X_test, y_test)"))
    assert refusal.strip() == ("cannot resume 'long': X has shape (450, 64) float64, the checkpoint's had "
                               "(1347, 64) float64; resume needs the data it was started with")
    text = [line for line in outputs_text(_cell(nb, "resumed.detail.resumed_from")).splitlines() if line]
    lines = text[[line.startswith("resumed from step") for line in text].index(True):]
    step = int(lines[0].split()[3])
    assert 200 <= step < 1200 and step % 100 == 0, lines  # the last checkpoint before the stop
    assert lines[0] == f"resumed from step {step} of 1200 -> done"
    assert float(lines[1].split()[1]) > 0.85
    earlier = "interrupted" if crashed else "cancelled"
    assert eval(lines[2]) == [("long", "done", False), ("long", earlier, False)]  # done: its checkpoint went
    widgets = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    longs = [w["state"]["snap"] for w in widgets if w.get("state", {}).get("snap", {}).get("name") == "long"]
    assert sorted((c["state"], c["resumed_note"]) for c in longs) == sorted(
        [("done", f"resumed from step {step}"), ("running" if crashed else "cancelled", None)])
    # (the first card was running when its kernel died: that is what the saved notebook shows)
    (card,) = [c for c in longs if c["state"] == "done"]
    assert card["curve"]["points"][0][0] < step  # the curve goes on from the first run's points
    cards = card_states(nb)
    for name in ("sgd", "forest", "logreg", "svc"):
        assert cards[name]["state"] == "done", name
    assert len(cards["sgd"]["curve"]["points"]) == 15


def test_03_preprocessing_pipeline(run, tmp_path):
    nb = run("03-preprocessing-pipeline.ipynb")
    check_03(nb)
    assert_cards_final(nb)
    scratch = scratch_files(tmp_path, "03-preprocessing-pipeline.ipynb")
    assert "tutorial-data/part-17.csv" in scratch  # the files it writes, next to the notebook
    assert_ignored_by_git(scratch)


def check_03(nb):
    text = outputs_text(_cell(nb, 'print("failed:"'))
    assert "PreprocessResult(39 ok, 1 failed)" in text and "17:" in text
    assert "most items in flight at once: " in text
    assert 2 <= int(text.rsplit(":", 1)[1]) <= 8  # measured: 40 files overlap on 8 workers
    assert outputs_text(_cell(nb, "X_features = np.stack")) == "(True, (40, 16))"
    count, peak = eval(outputs_text(_cell(nb, "maxima = job.result")))
    assert count == 30 and peak <= 4
    assert card_states(nb)["feats"]["state"] == "done"
    text = outputs_text(_cell(nb, "for s in job.detail.stages"))
    assert "PreprocessResult(195 ok, 5 failed)" in text
    assert "read       loop     done=200 failed=0" in text
    peaks = dict(re.findall(r"^(\w+) .*peak in flight=(\d+)/", text, re.MULTILINE))
    assert int(peaks["read"]) >= 2 and int(peaks["parse"]) >= 1, peaks
    assert "parse      process  done=195 failed=5" in text
    assert "summarize  thread   done=195 failed=0" in text
    stages = card_states(nb)["stages"]
    assert stages["state"] == "done" and stages["failed_count"] == 5
    assert [(s["name"], s["done"], s["failed"]) for s in stages["stages"]] == [
        ("read", 200, 0), ("parse", 195, 5), ("summarize", 195, 0)]


def test_04_hyperparameter_search(run, tmp_path):
    nb = run("04-hyperparameter-search.ipynb")
    check_04(nb)
    assert_cards_final(nb)
    assert_ignored_by_git(scratch_files(tmp_path, "04-hyperparameter-search.ipynb"))


def check_04(nb):
    text = outputs_text(_cell(nb, "print(result)"))
    assert "16 candidates" in text and "best_score_=0.9" in text
    same = outputs_text(_cell(nb, "largest difference"))
    diff = float(same.split("largest difference:")[1].split()[0])
    assert diff < 1e-9 and same.strip().endswith("True")
    score, n = eval(outputs_text(_cell(nb, "best = random_job.result()")))
    assert score > 0.9 and n == 8
    board = card_states(nb)["svc-grid"]["leaderboard"]
    assert board[0]["rank"] == 1 and len(board) == 15  # the card shows the top 15 of 16
    card = card_states(nb)["svc-grid"]
    assert (card["done"], card["total"]) == (16, 16)  # every candidate's folds are in
    assert card["children"] == {"done": 1, "total": 1}  # the folds were work items; the refit is a child job
    note = card["leaderboard_note"]  # the top 15 of 16, and the scaler fitted once per fold, not per candidate
    assert note.startswith("showing the best 15 of 16 candidates · ") and note.endswith("fits saved by shared pipeline prefixes")
    assert card["children_text"] == "1 sub-job done"
    halving = outputs_text(_cell(nb, "halving_job = nx.ml.search"))
    assert "candidates per rung: [64, 22, 8, 3]" in halving and halving.strip().endswith("True")
    assert card["executor"] == "process"  # where the folds ran, not the loop that awaited them


def test_05_async_serving(run, tmp_path):
    nb = run("05-async-serving.ipynb")
    check_05(nb)
    assert_cards_final(nb)
    assert_ignored_by_git(scratch_files(tmp_path, "05-async-serving.ipynb"))


def check_05(nb):
    text = outputs_text(_cell(nb, "batched: {len(rows)"))
    assert "same answers: True" in text
    batched = float(text.split("batched: ")[1].split(" req/s")[0].replace(",", ""))
    single = float(text.split("per request: ")[1].split(" req/s")[0].replace(",", ""))
    assert batched > 2 * single and float(text.split("mean batch: ")[1]) > 5
    assert outputs_text(_cell(nb, "predictor.close()")) == "'done'"
    cell = _cell(nb, "final accuracy")
    acc = outputs_text(cell)
    assert "final accuracy: " in acc, cell.get("outputs")  # the cell's every output when the line is missing
    assert float(acc.split("final accuracy: ")[1].split()[0]) > 0.9 and "array([1, 0])" in acc
    assert outputs_text(_cell(nb, "asyncio.run(main())")) == str([i * i for i in range(10)])
    assert card_states(nb)["digits-api"]["serving"]["requests"] == 3 * 2000
    assert card_states(nb)["digits-api"]["unit"] == "requests"


@pytest.mark.slow
def test_06_scale_out_with_dask(run, tmp_path):
    nb = run("06-scale-out-with-dask.ipynb")
    check_06(nb)
    assert_cards_final(nb)
    assert_ignored_by_git(scratch_files(tmp_path, "06-scale-out-with-dask.ipynb"))


def check_06(nb):
    assert outputs_text(_cell(nb, "client.dashboard_link")).startswith("'http://127.0.0.1:")
    job_text = outputs_text(_cell(nb, 'job = nx.jobs["on-dask"]'))
    assert "worker pid" in job_text and job_text.strip().endswith("(True, True)")
    state = outputs_text(_cell(nb, 'nx.jobs["long-on-dask"].state'))
    assert state.startswith("('cancelled'") and "Dask cannot stop a running task" in state
    score, params = eval(outputs_text(_cell(nb, "round(wine.best_score_")))
    assert score > 0.9 and set(params) == {"n_estimators", "max_depth"}
    assert card_states(nb)["on-dask"]["state"] == "done"
    assert card_states(nb)["wine-search"]["executor"] == "dask"  # its folds ran there, not on the loop


def tutorial_check(name):
    """check_NN for the tutorial NN-*.ipynb, or None when it has none."""
    number = name.split("-", 1)[0]
    return globals().get(f"check_{number}") if number.isdigit() else None


def test_every_tutorial_has_a_check_and_a_test():
    names = sorted(p.name for p in TUTORIALS.glob("*.ipynb"))
    assert names, f"no tutorials in {TUTORIALS}"
    assert [n for n in names if tutorial_check(n) is None] == []
    tests = {n.split("_", 2)[1] for n in globals() if n.startswith("test_") and n.split("_", 2)[1].isdigit()}
    assert {n.split("-", 1)[0] for n in names} == tests


def scratch_files(run_dir, *notebooks):
    """Files (relative paths, sorted) a tutorial run left in its folder, apart from
    the notebooks themselves and the job history database."""
    history = os.environ.get("NOTEBOOK_EXT_HISTORY")
    history = Path(history).resolve() if history else None
    run_dir = Path(run_dir).resolve()
    files = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if not path.is_file() or rel in notebooks:
            continue
        # the database and its -wal, -shm and -journal files
        if history and path.parent == history.parent and path.name.startswith(history.name):
            continue
        files.append(rel)
    return files


def assert_ignored_by_git(scratch):
    """Each file, as tutorials/<path>, is ignored by the checkout's git: a user who runs
    the tutorials from tutorials/ gets no untracked files in `git status`."""
    assert (ROOT / ".git").exists(), f"run the tests from a git checkout ({ROOT} has no .git): this checks .gitignore"
    if not scratch:
        return
    paths = [f"{TUTORIALS.name}/{f}" for f in scratch]
    found = subprocess.run(["git", "check-ignore", "--stdin", "-z"], input="\0".join(paths) + "\0", cwd=ROOT,
                           check=False, capture_output=True, text=True, timeout=60)
    assert found.returncode in (0, 1), found.stderr  # 1: none of them is ignored
    assert sorted(set(paths) - set(found.stdout.split("\0"))) == [], "not ignored by git (.gitignore)"
