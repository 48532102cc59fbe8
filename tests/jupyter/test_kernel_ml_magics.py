"""%train, %search, %preprocess in a real kernel: they schedule, show a card,
assign --out when done, and refuse mistakes with one UsageError line."""

import re

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

SETUP = """
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier, LogisticRegression
from sklearn.tree import DecisionTreeClassifier
X, y = load_digits(return_X_y=True)
X_train, y_train, X_test, y_test = X[:1400], y[:1400], X[1400:], y[1400:]
clf = SGDClassifier(random_state=0)
grid = {"max_depth": [2, 4, 8]}
fixed = []
def double(x):
    if x == 3 and not fixed:
        raise ValueError("bad item 3")
    return 2 * x
items = list(range(10))
async def fetch(x):
    return x + 100
pipe = nx.pipeline(range(6), nx.stage(fetch, workers=3), nx.stage(str, workers=2))
sunk = []
"""


def test_train_search_preprocess_magics(kernel):
    kernel.execute(SETUP)
    _, msgs = kernel.execute("%train clf X_train y_train --eval X_test y_test --epochs 5 --out model -n fit")
    assert any(m["msg_type"] == "display_data" for m in msgs)
    kernel.execute("%search DecisionTreeClassifier() grid X y --cv 3 --executor thread --out best -n s")
    kernel.execute("%search DecisionTreeClassifier(random_state=0) {'max_depth':[1,2,4,8,16,32]} X y "
                   "--halving --factor 2 --random-state 0 --cv 3 --executor thread --out halved -n hs")
    kernel.execute("%preprocess double items --workers 2 --out doubled -n prep")
    kernel.execute("%wait fit s prep hs")
    assert kernel.value("halved.n_candidates_") == "[6, 3, 2]"  # 6 candidates, the best half each rung
    assert kernel.value("nx.jobs['hs'].detail.rungs[-1].startswith('rung 3 of 3: 2 candidates')") == "True"
    assert float(kernel.value("model.score(X_test, y_test)")) > 0.8
    assert kernel.value("hasattr(clf, 'coef_')") == "False"
    assert kernel.value("best.best_params_") in ("{'max_depth': 8}", "{'max_depth': 4}")
    assert kernel.value("doubled") == "[0, 2, 4, None, 8, 10, 12, 14, 16, 18]"
    assert kernel.value("nx.jobs['prep'].result().failed") == "{3: 'ValueError: bad item 3'}"
    kernel.execute("fixed.append(True)")  # the bad input is repaired
    kernel.execute("%retry prep")
    kernel.execute("%wait prep")
    assert kernel.value("nx.jobs['prep'].result().results[3]") == "6"
    kernel.execute("%preprocess pipe -n piped --out piped_out")
    kernel.execute("%preprocess fetch items --into sunk.append --unordered -n sunk_job")
    kernel.execute("%wait piped sunk_job")
    assert kernel.value("piped_out") == "['100', '101', '102', '103', '104', '105']"
    assert kernel.value("[(s.name, s.done) for s in nx.jobs['piped'].detail.stages]") == "[('fetch', 6), ('str', 6)]"
    assert kernel.value("sorted(sunk)") == str(list(range(100, 110)))
    # one record per magic however many items (the search's refit is its one named child job)
    assert kernel.value("sorted(nx.jobs)") == str(sorted(["fit", "s", "s/refit", "hs", "hs/refit", "prep", "piped",
                                                          "sunk_job"]))


BAD = [
    ("%train 42 X_train y_train", "`estimator` must be a scikit-learn estimator"),
    ("%train clf X_train missing_y", "no variable named 'missing_y'"),
    ("%train clf X_train y_test", "same number of rows, got 1400 and 397"),
    ("%train clf X_train y_train --epochs zero", "`--epochs` must be an integer"),
    ("%train clf X_train y_train --eval X_test", "expected 2 arguments"),
    ("%train clf X_train y_train --scoring acc", "not a scikit-learn scorer"),
    ("%train clf X_train y_train --executor gpu", "`--executor` must be one of"),
    ("%search clf nogrid X y", "neither a variable nor a literal dict"),
    ("%search clf {'alpha_typo':[1]} X y", "'alpha_typo' is not a parameter"),
    ("%search clf grid X y --cv 1", "`--cv` must be >= 2"),
    ("%search clf grid X y --factor 2", "are settings of --halving"),
    ("%search clf grid X y --halving --factor 1", "`--factor` must be > 1"),
    ("%search clf grid X y --halving --min-resources few", "must be an integer or exhaust or smallest"),
    ("%search clf {'alpha':[1e-4,1e-3]} X y --halving --resource n_trees", "not supported by estimator"),
    ("%preprocess items items", "is not a function"),
    ("%preprocess double 5", "`items` must be iterable, got int"),
    ("%preprocess double nothing_here", "no variable named 'nothing_here'"),
    ("%train clf X_train[: y_train", "cannot evaluate"),
    ("%preprocess double clf", "`items` must be iterable"),
    ("%preprocess double", "give the items too"),
    ("%preprocess pipe items", "brings its own items"),
    ("%preprocess pipe --workers 3", "set their own workers"),
    ("%preprocess double items --into clf", "is not callable"),
    ("%preprocess double items --executor loop", "is a plain function and would block the loop"),
]


def test_ml_magic_mistakes_are_usage_errors_and_schedule_nothing(kernel):
    kernel.execute(SETUP)
    for code, expected in BAD:
        reply, _ = kernel.execute(code, allow_error=True)
        assert reply["status"] == "error" and reply["ename"] == "UsageError", (code, reply)
        assert expected in reply["evalue"], (code, reply["evalue"])
    assert kernel.value("len(nx.jobs)") == "0"


BUGGY = '''
from sklearn.base import BaseEstimator, ClassifierMixin
class FitBug(BaseEstimator, ClassifierMixin):
    def fit(self, X, y):
        return self.count(X) + 1
    def count(self, X):
        return len(X) + " rows"
class ParamsBug(BaseEstimator, ClassifierMixin):
    def fit(self, X, y):
        return self
    def get_params(self, deep=True):
        return dict(zip(["C"], 1.0))
'''


def _error(msgs):
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1, [m["msg_type"] for m in msgs]
    return errors[0]


def _text(error):
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))


def test_a_bug_inside_the_users_estimator_reaches_them_as_its_traceback(kernel):
    """Only a misuse of a magic is a one-line UsageError: an error raised in
    the user's estimator (in its fit, on the job; or in its get_params, which
    %train calls at once) shows as that error with the user's lines."""
    kernel.execute(SETUP + BUGGY)
    kernel.execute("%train FitBug() X_train y_train -n fitbug")
    kernel.execute("%wait fitbug", allow_error=True)
    reply, msgs = kernel.execute("%result fitbug", allow_error=True)
    assert reply["ename"] == "TypeError", reply
    text = _text(_error(msgs))
    assert 'return len(X) + " rows"' in text and "in count" in text and "in fit" in text, text

    reply, msgs = kernel.execute("%train ParamsBug() X_train y_train -n paramsbug", allow_error=True)
    assert reply["status"] == "error" and reply["ename"] == "TypeError", reply
    text = _text(_error(msgs))
    assert "ParamsBug.get_params" in text and 'dict(zip(["C"], 1.0))' in text, text
    assert kernel.value("'paramsbug' in nx.jobs") == "False"

    # a wrong flag is still one UsageError line, no traceback
    reply, msgs = kernel.execute("%train FitBug() X_train y_train --epochs zero", allow_error=True)
    assert reply["ename"] == "UsageError", reply
    assert not [m for m in msgs if m["msg_type"] == "error"]  # IPython prints a UsageError, no traceback
    said = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert len(said.strip().splitlines()) == 1 and "`--epochs` must be an integer" in said, said
