"""The ML magics: ``%train``, ``%search``, ``%preprocess``. Each looks up its
variables, calls `notebook_ext.ml`, and shows the job's card."""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import ml
from ..core import Pipeline
from ..core.lowlevel import raised_by_notebook_ext
from ..cells import assign_on_success
from ..ml import DEFAULT_CHECKPOINT_EVERY as DEFAULT_EVERY
from . import _args as A


def _call(fn, *args, **kwargs):
    """The API's refusals of its arguments become one-line UsageErrors; an
    error raised inside the user's own objects (an estimator's get_params or
    repr, a function our code called) goes on with its own traceback."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError, FileNotFoundError) as exc:
        if not raised_by_notebook_ext(exc):
            raise
        raise UsageError(str(exc).splitlines()[0]) from None


@magics_class
class MLMagics(Magics):
    @magic_arguments()
    @argument("estimator", help="variable holding a scikit-learn estimator")
    @argument("X", help="variable holding the training data")
    @argument("y", nargs="?", help="variable holding the targets")
    @argument("--eval", nargs=2, metavar=("XV", "YV"), help="validation data, scored every epoch/stage")
    @argument("--epochs", type=A.count("--epochs", 1), help="epochs (partial_fit) or stages (warm_start)")
    @argument("--scoring", help="scikit-learn scorer name for --eval")
    @argument("--save", help="joblib file the fitted model is written to (atomically)")
    @argument("--checkpoint", nargs="?", const=DEFAULT_EVERY, metavar="EVERY",
              help="checkpoint every EVERY steps (200) or seconds (30s, 5min) for %%resume "
                   f"(default {DEFAULT_EVERY}; on by default with --save)")
    @A.job_options(("thread", "process", "dask"), "thread (default)", out_help="variable that gets the fitted model")
    @line_magic
    def train(self, line: str):
        """Train a scikit-learn estimator in the background with live progress.

        Example: ``%train clf X_train y_train --eval X_test y_test --out model``
        """
        args = parse_argstring(self.train, line)
        ns = self.shell.user_ns
        est = A.lookup(ns, args.estimator, "%train", self.shell)
        X = A.lookup(ns, args.X, "%train", self.shell)
        y = A.lookup(ns, args.y, "%train", self.shell) if args.y else None
        ev = (A.lookup(ns, args.eval[0], "--eval", self.shell), A.lookup(ns, args.eval[1], "--eval", self.shell)) if args.eval else None
        A.check_executor(A.scheduler(), args.executor)
        names = {"X": args.X, "y": args.y, "eval": args.eval, "out": args.out}
        job = _call(ml.train, est, X, y, eval=ev, scoring=args.scoring, epochs=args.epochs,
                    save=args.save, name=args.name, executor=args.executor, checkpoint_every=args.checkpoint,
                    variables=_identifiers(names))
        assign_on_success(ns, args.out, job)
        A.show_job(self.shell, job)

    @magic_arguments()
    @argument("estimator", help="variable holding a scikit-learn estimator")
    @argument("params", help="variable (or literal dict) with the parameter grid / distributions")
    @argument("X", help="variable holding the data")
    @argument("y", help="variable holding the targets")
    @argument("--cv", type=A.count("--cv", 2), default=5, help="folds (default 5)")
    @argument("--n-iter", type=A.count("--n-iter", 1), help="random search: candidates to draw")
    @argument("--scoring", help="scikit-learn scorer name")
    @argument("--halving", action="store_true", help="successive halving, as HalvingGridSearchCV")
    @argument("--factor", type=A.number("--factor", above=1), default=3,
              help="halving: the best 1/factor candidates go on, with factor times the resources (default 3)")
    @argument("--resource", default="n_samples", help="halving: rows (n_samples, the default) or a parameter")
    @argument("--min-resources", type=A.count_or("--min-resources", 1, ("exhaust", "smallest")),
              default="exhaust", help="halving: resources of the first rung (default exhaust)")
    @argument("--max-resources", type=A.count_or("--max-resources", 1, ("auto",)), default="auto",
              help="halving: resources at most (default auto: every row)")
    @argument("--aggressive-elimination", action="store_true", help="halving: more rungs on the first resources")
    @argument("--random-state", type=A.integer("--random-state"), help="random search draws, halving's rows")
    @A.job_options(("thread", "process", "dask"), "process (default)", out_help="variable that gets the search result")
    @line_magic
    def search(self, line: str):
        """Hyper-parameter search: each (candidate, fold) a work item, a live leaderboard.

        Example: ``%search clf grid X y --cv 5 --out best``;
        ``%search clf grid X y --halving --factor 3 --random-state 0``
        """
        args = parse_argstring(self.search, line)
        ns = self.shell.user_ns
        est = A.lookup(ns, args.estimator, "%search", self.shell)
        params = _literal_or_variable(ns, args.params)
        X, y = A.lookup(ns, args.X, "%search", self.shell), A.lookup(ns, args.y, "%search", self.shell)
        A.check_executor(A.scheduler(), args.executor)
        halving = {"halving": True, "factor": args.factor, "resource": args.resource,
                   "min_resources": args.min_resources, "max_resources": args.max_resources,
                   "aggressive_elimination": args.aggressive_elimination} if args.halving else {}
        if not args.halving and (args.factor, args.resource, args.min_resources, args.max_resources,
                                 args.aggressive_elimination) != (3, "n_samples", "exhaust", "auto", False):
            raise UsageError("%search: --factor, --resource, --min-resources, --max-resources and "
                             "--aggressive-elimination are settings of --halving")
        job = _call(ml.search, est, params, X, y, cv=args.cv, n_iter=args.n_iter, scoring=args.scoring,
                    name=args.name, executor=args.executor, random_state=args.random_state, **halving)
        assign_on_success(ns, args.out, job)
        A.show_job(self.shell, job)

    @magic_arguments()
    @argument("func", help="variable holding the function applied to each item, or a pipeline")
    @argument("items", nargs="?", help="variable holding the items (a list, an iterable, files …); "
                                       "not with a pipeline, which brings its own")
    @argument("--workers", type=A.count("--workers", 1), help="items processed at once (I/O: any number)")
    @argument("--cpu", type=A.count("--cpu", 1), help="worker processes for --executor process")
    @argument("--max-pending", type=A.count("--max-pending", 1), help="items in flight at most")
    @argument("--retries", type=A.count("--retries", 0), default=0, help="re-runs of a failing item")
    @argument("--unordered", action="store_true", help="results as they finish, not in input order")
    @argument("--into", help="variable holding a sink: each result goes to it instead of a list")
    @argument("--checkpoint", nargs="?", const=DEFAULT_EVERY, metavar="EVERY",
              help="without --into: keep the results every EVERY items (500) or seconds (30s) for %%resume "
                   "(with --into the items the sink took are always logged)")
    @A.job_options(("loop", "thread", "process", "dask"), "thread (default; loop for async def)",
                   out_help="variable that gets the list of results")
    @line_magic
    def preprocess(self, line: str):
        """Apply a function (or a pipeline of stages) to many items as the
        work items of one job, with back-pressure.

        Failed items are listed on the card; ``%retry NAME`` re-runs only them.

        Examples: ``%preprocess clean paths --workers 32 --out cleaned``,
        ``%preprocess pipe -n features`` (``pipe = notebook_ext.pipeline(...)``).
        """
        args = parse_argstring(self.preprocess, line)
        ns = self.shell.user_ns
        func = A.lookup(ns, args.func, "%preprocess", self.shell)
        is_pipe = isinstance(func, Pipeline)
        if not is_pipe and not callable(func):
            raise UsageError(f"%preprocess: {args.func!r} is not a function or a pipeline")
        if is_pipe and args.items is not None:
            raise UsageError(f"%preprocess: {args.func!r} is a pipeline and brings its own items; "
                             f"drop {args.items!r}")
        if not is_pipe and args.items is None:
            raise UsageError("%preprocess: give the items too: %preprocess FUNC ITEMS")
        if is_pipe and (args.workers or args.cpu or args.executor or args.unordered or args.retries):
            raise UsageError("%preprocess: a pipeline's stages set their own workers, executor, "
                             "order and retries")
        items = A.lookup(ns, args.items, "%preprocess", self.shell) if not is_pipe else None
        into = A.lookup(ns, args.into, "%preprocess", self.shell) if args.into else None
        if into is not None and not callable(into):
            raise UsageError(f"%preprocess: --into {args.into!r} is not callable (a function or a list's append)")
        if args.executor not in (None, "loop", "thread"):
            A.check_executor(A.scheduler(), args.executor)
        names = {"func": args.func, "items": args.items, "into": args.into, "out": args.out}
        options: dict[str, Any] = {"max_pending": args.max_pending, "name": args.name, "into": into,
                                   "checkpoint_every": args.checkpoint, "variables": _identifiers(names)}
        if not is_pipe:
            options.update(workers=args.workers, executor=args.executor, cpu=args.cpu, retries=args.retries,
                           ordered=not args.unordered)
        job = _call(ml.preprocess, func, items, **options)
        assign_on_success(ns, args.out, job, pick=lambda r: getattr(r, "results", r))
        A.show_job(self.shell, job)


    @magic_arguments()
    @argument("name", type=A.job_name, help="the interrupted job (from the history, any session)")
    @argument("data", nargs="*", metavar="DATA",
              help="its data again (X y, or the items); default: the variables the job was started with")
    @argument("--eval", nargs=2, metavar=("XV", "YV"), help="training: validation data for the curve")
    @argument("--func", help="preprocessing: the function (default: the one of the same name)")
    @argument("--into", help="preprocessing: the sink (default: the one it had)")
    @argument("--out", type=A.identifier("--out"), help="variable that gets the result (default: the job's)")
    @argument("--executor", type=A.executor_choice(("thread", "process", "dask")), help="training: where it runs")
    @line_magic
    def resume(self, line: str):
        """Go on with a job from its last checkpoint after the kernel died.

        Example: ``%resume fit`` (finds ``fit`` in the history, checks that
        ``X_train``/``y_train`` are the data it was trained on, and goes on
        from the step it had reached).
        """
        args = parse_argstring(self.resume, line)
        ns = self.shell.user_ns
        sched = A.scheduler()
        record = sched.store.find(args.name) if sched.store.enabled else None
        spec = _spec(record, f"%resume {args.name}")
        names = dict(spec.variables) if spec is not None else {}
        where = f"%resume {args.name}"
        pipeline = isinstance(spec, ml.PreprocessSpec) and spec.pipeline
        if args.data:
            data = [A.lookup(ns, d, where, self.shell) for d in args.data]
        elif spec is not None:
            keys = ["X", "y"] if isinstance(spec, ml.TrainSpec) else ["func"] if pipeline else ["items"]
            if keys[0] not in names:
                raise UsageError(f"{where}: it was not started by a magic; name its data: {where} DATA")
            data = [_variable(ns, names[k], where) for k in keys if k in names]
        else:
            data = []  # ml.resume says why there is nothing to resume
        ev = args.eval or (names.get("eval") if not args.data else None)
        eval_ = (A.lookup(ns, ev[0], "--eval", self.shell), A.lookup(ns, ev[1], "--eval", self.shell)) if ev else None
        fname = args.func or (names.get("func") if not pipeline else None)
        func = A.lookup(ns, fname, where, self.shell) if fname else None
        iname = args.into or names.get("into")
        into = A.lookup(ns, iname, where, self.shell) if iname else None
        saved = {**names, "out": args.out or names.get("out")}
        job = _call(ml.resume, record if record is not None else args.name, *data, eval=eval_, func=func,
                    into=into, executor=args.executor, variables=saved)
        out = saved["out"]
        pick = (lambda r: getattr(r, "results", r)) if job.kind == "preprocess" else (lambda r: r)
        assign_on_success(ns, out, job, pick=pick)
        A.show_job(self.shell, job)


def _spec(record: Any, where: str) -> "ml.ResumeSpec | None":
    """The job's resume spec, or a one-line UsageError for one this version cannot read."""
    try:
        return ml.read_spec(record.resume) if record is not None else None
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _variable(ns: dict, name: str, where: str) -> Any:
    if name not in ns:
        raise UsageError(f"{where}: {name!r} is not defined; run the cells that make it (or name the data: "
                         f"{where} DATA)")
    return ns[name]


def _identifiers(names: dict[str, Any]) -> dict[str, Any]:
    """The variable names a job was started with, for ``%resume`` (not expressions)."""
    def ok(v: Any) -> bool:
        return isinstance(v, str) and v.isidentifier()

    return {k: v for k, v in names.items()
            if ok(v) or (isinstance(v, list) and all(ok(x) for x in v))}


def _literal_or_variable(ns: dict, text: str) -> Any:
    if text in ns:
        return ns[text]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise UsageError(f"%search: {text!r} is neither a variable nor a literal dict") from None
