"""Every tutorial runs in a fresh kernel and does what its prose promises."""

import pytest
from tutorial_runner import card_states, outputs_text

pytestmark = [pytest.mark.slow, pytest.mark.kernel]


def _cell(nb, needle):
    for cell in nb.cells:
        if cell.cell_type == "code" and needle in cell.source:
            return cell
    raise AssertionError(f"no cell with {needle!r}")


def test_01_quickstart(run):
    check_quickstart(run("01-quickstart.ipynb"))


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


def test_02_background_training(run):
    nb = run("02-background-training.ipynb")
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
    cards = card_states(nb)
    for name in ("sgd", "forest", "logreg", "svc"):
        assert cards[name]["state"] == "done", name
    assert len(cards["sgd"]["curve"]["points"]) == 15


def test_03_preprocessing_pipeline(run):
    nb = run("03-preprocessing-pipeline.ipynb")
    text = outputs_text(_cell(nb, 'print("failed:"'))
    assert "PreprocessResult(39 ok, 1 failed)" in text and "17:" in text
    assert "most items in flight at once: " in text
    assert int(text.rsplit(":", 1)[1]) <= 8
    assert outputs_text(_cell(nb, "X_features = np.stack")) == "(True, (40, 16))"
    count, peak = eval(outputs_text(_cell(nb, "maxima = job.result")))
    assert count == 30 and peak <= 4
    assert card_states(nb)["feats"]["state"] == "done"
    text = outputs_text(_cell(nb, "for s in job.detail.stages"))
    assert "PreprocessResult(195 ok, 5 failed)" in text
    assert "read       loop     done=200 failed=0" in text
    assert "parse      process  done=195 failed=5" in text
    assert "summarize  thread   done=195 failed=0" in text
    stages = card_states(nb)["stages"]
    assert stages["state"] == "done" and stages["failed_count"] == 5
    assert [(s["name"], s["done"], s["failed"]) for s in stages["stages"]] == [
        ("read", 200, 0), ("parse", 195, 5), ("summarize", 195, 0)]


def test_04_hyperparameter_search(run):
    nb = run("04-hyperparameter-search.ipynb")
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


def test_05_async_serving(run):
    nb = run("05-async-serving.ipynb")
    text = outputs_text(_cell(nb, "batched: {len(rows)"))
    assert "same answers: True" in text
    batched = float(text.split("batched: ")[1].split(" req/s")[0].replace(",", ""))
    single = float(text.split("per request: ")[1].split(" req/s")[0].replace(",", ""))
    assert batched > 2 * single and float(text.split("mean batch: ")[1]) > 5
    assert outputs_text(_cell(nb, "predictor.close()")) == "'done'"
    acc = outputs_text(_cell(nb, "final accuracy"))
    assert float(acc.split("final accuracy: ")[1].split()[0]) > 0.9 and "array([1, 0])" in acc
    assert outputs_text(_cell(nb, "asyncio.run(main())")) == str([i * i for i in range(10)])
    assert card_states(nb)["digits-api"]["serving"]["requests"] == 2000


@pytest.mark.slow
def test_06_scale_out_with_dask(run):
    nb = run("06-scale-out-with-dask.ipynb")
    assert outputs_text(_cell(nb, "client.dashboard_link")).startswith("'http://127.0.0.1:")
    job_text = outputs_text(_cell(nb, 'job = nx.jobs["on-dask"]'))
    assert "worker pid" in job_text and job_text.strip().endswith("(True, True)")
    state = outputs_text(_cell(nb, 'nx.jobs["long-on-dask"].state'))
    assert state.startswith("('cancelled'") and "Dask cannot stop a running task" in state
    score, params = eval(outputs_text(_cell(nb, "round(wine.best_score_")))
    assert score > 0.9 and set(params) == {"n_estimators", "max_depth"}
    assert card_states(nb)["on-dask"]["state"] == "done"
