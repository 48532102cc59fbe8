"""Turning a notebook cell into a job (what ``%%bg`` does): compile it, find
the value of its last expression, ship its names to a worker process when
asked. No IPython here: `submit_cell` works from plain Python and tests."""

from __future__ import annotations

import ast
import builtins
import inspect
import keyword
from typing import Any, Callable, Mapping, Sequence

from .core import Job, Scheduler, get_scheduler

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
# Names IPython puts in every namespace; never shipped to a worker.
_SKIP = {"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_ih", "_oh", "_dh"}


class CellSource:
    """A cell split into its body and its last expression (the job's value)."""

    def __init__(self, source: str, filename: str = "<bg cell>") -> None:
        try:
            tree = ast.parse(source, filename, "exec")
        except SyntaxError as exc:
            raise SyntaxError(f"line {exc.lineno}: {exc.msg}") from None
        if not tree.body:
            raise ValueError("the cell body is empty: put the code to run under the magic line")
        last = tree.body[-1]
        self.expr: ast.Expression | None = None
        if isinstance(last, ast.Expr):
            self.expr = ast.Expression(last.value)
            tree.body = tree.body[:-1]
        self.tree = tree
        self.source = source
        self.filename = filename
        self.uses_await = _has_top_level_await(source)

    def body_source(self) -> str:
        return ast.unparse(self.tree)

    def expr_source(self) -> str | None:
        return ast.unparse(self.expr) if self.expr is not None else None

    def free_names(self, namespace: Mapping[str, Any]) -> dict[str, Any]:
        """Names the cell reads that exist in ``namespace`` (to ship them)."""
        names: set[str] = set()
        for node in ast.walk(ast.parse(self.source)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
        return {
            n: namespace[n] for n in sorted(names)
            if n in namespace and n not in _SKIP and not n.startswith("_i")
            and not (hasattr(builtins, n) and namespace[n] is getattr(builtins, n))
        }


def _has_top_level_await(source: str) -> bool:
    code = compile(source, "<check>", "exec", flags=_FLAGS)
    return bool(code.co_flags & inspect.CO_COROUTINE)


def run_cell(body: str, expr: str | None, namespace: dict, filename: str = "<bg cell>") -> Any:
    """Run a cell's code in ``namespace`` (a thread or worker process)."""
    exec(compile(body, filename, "exec"), namespace)
    if expr is None:
        return None
    return eval(compile(expr, filename, "eval"), namespace)


async def run_cell_async(body: str, expr: str | None, namespace: dict, filename: str = "<bg cell>") -> Any:
    """Run a cell that may use top-level ``await`` (on the scheduler's loop)."""
    value = eval(compile(body, filename, "exec", flags=_FLAGS), namespace)
    if inspect.isawaitable(value):
        await value
    if expr is None:
        return None
    value = eval(compile(expr, filename, "eval", flags=_FLAGS), namespace)
    if inspect.isawaitable(value):
        value = await value
    return value


def run_cell_shipped(body: str, expr: str | None, names: dict) -> Any:
    """Worker-process side: the cell's names arrive by value."""
    namespace = {"__name__": "__bg_cell__", **names}
    return run_cell(body, expr, namespace)


def unshippable(names: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first name cloudpickle cannot send, with the reason, or None."""
    import cloudpickle

    for name, value in names.items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:  # noqa: BLE001 - any pickling failure refuses the cell
            return name, f"{type(exc).__name__}: {exc}"
    return None


def submit_cell(source: str, namespace: dict, *, executor: str | None = None, name: str | None = None,
                priority: int = 0, timeout: float | None = None, retries: int = 0,
                after: Sequence["Job | str"] = (), out: str | None = None,
                scheduler: Scheduler | None = None) -> Job:
    """Run a cell's ``source`` in the background, in ``namespace``; its last
    expression is the job's value.

    ``executor`` defaults to ``loop`` when the cell uses top-level
    ``await``, else ``thread``; with ``process`` or ``dask`` the names the
    cell reads are sent by value. ``out`` names a variable of
    ``namespace`` that gets the value when the job succeeds.

    Raises `SyntaxError` or `ValueError` for a cell that cannot run that
    way (one line each, naming the fix).

    Examples
    --------
    >>> job = submit_cell("import time\\ntime.sleep(1)\\n6 * 7", {})   # doctest: +SKIP
    >>> job.result()                                                      # doctest: +SKIP
    42
    """
    sched = scheduler or get_scheduler()
    src = CellSource(source)
    if out is not None and not (out.isidentifier() and not keyword.iskeyword(out)):
        raise ValueError(f"`out` must be a Python variable name, got {out!r}")
    executor = executor or ("loop" if src.uses_await else "thread")
    if src.uses_await and executor != "loop":
        raise ValueError("a cell that uses `await` runs with `--executor loop` (executor='loop')")
    body, expr = src.body_source(), src.expr_source()
    if executor in ("process", "dask"):
        names = src.free_names(namespace)
        bad = unshippable(names)
        if bad:
            raise ValueError(f"cannot send `{bad[0]}` to a worker process ({bad[1]}); use `--executor thread`")
        job = sched.submit(run_cell_shipped, body, expr, names, name=name, priority=priority, timeout=timeout,
                           retries=retries, executor=executor, after=after, kind="cell", code=source)
    else:
        call = run_cell_async if executor == "loop" else run_cell
        job = sched.submit(call, body, expr, namespace, name=name, priority=priority, timeout=timeout,
                           retries=retries, executor=executor, after=after, kind="cell", code=source)
    assign_on_success(namespace, out, job)
    return job


def assign_on_success(namespace: dict, var: str | None, job: Job,
                      pick: Callable[[Any], Any] = lambda value: value) -> None:
    """Put ``pick(value)`` in ``namespace[var]`` when ``job`` succeeds (what
    ``--out VAR`` does); nothing when it fails or is cancelled."""
    def assign(j: Job) -> None:
        if j.state == "done":
            namespace[var] = pick(j.result())  # type: ignore[index]

    if var:
        job.add_done_callback(assign)
