"""Turning a notebook cell into a job (what ``%%bg`` does): compile it, find
the value of its last expression, ship its names to a worker process when
asked. No IPython here: `submit_cell` works from plain Python and tests."""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import itertools
import keyword
import linecache
from typing import Any, Callable, Mapping, Sequence

from .core import Job, Scheduler, get_scheduler

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
# Names IPython puts in every namespace; never shipped to a worker.
_SKIP = {"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_ih", "_oh", "_dh"}


class CellSource:
    """A cell split into its body and its last expression (the job's value).

    The parts keep the cell's own line numbers, counted from ``first_line``
    (2 for the body of a ``%%bg`` cell: the editor numbers the magic line
    1), and `register` puts the source where ``linecache`` finds it (as
    IPython does for its cells), so a traceback shows the cell's lines."""

    def __init__(self, source: str, filename: str = "<bg cell>", first_line: int = 1) -> None:
        # Blank lines in front put every line at its editor number, for the
        # compiler, linecache and syntax errors alike.
        source = "\n" * max(first_line - 1, 0) + source
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

    @functools.cached_property
    def uses_await(self) -> bool:
        """The cell awaits at top level (it runs on the loop)."""
        return _has_top_level_await(self.source)

    def register(self) -> None:
        """Let tracebacks (and debuggers) read this cell's lines by its file name."""
        linecache.cache[self.filename] = (len(self.source), None, self.source.splitlines(True), self.filename)

    def compiled(self, flags: int = 0) -> tuple[Any, Any]:
        """(body, last expression or None) as code objects, with the cell's line numbers."""
        body = compile(self.tree, self.filename, "exec", flags=flags)
        expr = compile(self.expr, self.filename, "eval", flags=flags) if self.expr is not None else None
        return body, expr

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


_cell_numbers = itertools.count(1)


def cell_filename(name: str | None) -> str:
    """The file name a cell's frames show in tracebacks: ``<bg cell NAME>``."""
    return f"<bg cell {name}>" if name else f"<bg cell #{next(_cell_numbers)}>"


def run_cell(source: str, namespace: dict, filename: str = "<bg cell>", first_line: int = 1) -> Any:
    """Run a cell's code in ``namespace`` (a thread or worker process); its
    last expression's value is returned. ``first_line`` is the line number
    of the code's first line (tracebacks count from it)."""
    cell = CellSource(source, filename, first_line)
    cell.register()
    body, expr = cell.compiled()
    exec(body, namespace)
    return eval(expr, namespace) if expr is not None else None


async def run_cell_async(source: str, namespace: dict, filename: str = "<bg cell>", first_line: int = 1) -> Any:
    """Run a cell that may use top-level ``await`` (on the scheduler's loop)."""
    cell = CellSource(source, filename, first_line)
    cell.register()
    body, expr = cell.compiled(_FLAGS)
    value = eval(body, namespace)
    if inspect.isawaitable(value):
        await value
    if expr is None:
        return None
    value = eval(expr, namespace)
    if inspect.isawaitable(value):
        value = await value
    return value


def run_cell_shipped(source: str, names: dict, filename: str = "<bg cell>", first_line: int = 1) -> Any:
    """Worker-process side: the cell's names arrive by value."""
    namespace = {"__name__": "__bg_cell__", **names}
    return run_cell(source, namespace, filename, first_line)


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
                after: Sequence["Job | str"] = (), out: str | None = None, first_line: int = 1,
                scheduler: Scheduler | None = None) -> Job:
    """Run a cell's ``source`` in the background, in ``namespace``; its last
    expression is the job's value.

    ``executor`` defaults to ``loop`` when the cell uses top-level
    ``await``, else ``thread``; with ``process`` or ``dask`` the names the
    cell reads are sent by value. ``out`` names a variable of
    ``namespace`` that gets the value when the job succeeds. ``first_line``
    is the number its tracebacks give the source's first line (``%%bg``
    passes 2 and up: the editor's numbers, the magic line being 1).

    Raises `SyntaxError` or `ValueError` for a cell that cannot run that
    way (one line each, naming the fix).

    Examples
    --------
    >>> job = submit_cell("import time\\ntime.sleep(1)\\n6 * 7", {})   # doctest: +SKIP
    >>> job.result()                                                      # doctest: +SKIP
    42
    """
    sched = scheduler or get_scheduler()
    if isinstance(first_line, bool) or not isinstance(first_line, int) or first_line < 1:
        raise ValueError(f"`first_line` must be a positive integer, got {first_line!r}")
    src = CellSource(source, cell_filename(name), first_line)
    if out is not None and not (out.isidentifier() and not keyword.iskeyword(out)):
        raise ValueError(f"`out` must be a Python variable name, got {out!r}")
    executor = executor or ("loop" if src.uses_await else "thread")
    if src.uses_await and executor != "loop":
        raise ValueError("a cell that uses `await` runs with `--executor loop` (executor='loop')")
    src.register()  # the kernel's tracebacks (thread and loop jobs) read the cell's lines
    if executor in ("process", "dask"):
        names = src.free_names(namespace)
        bad = unshippable(names)
        if bad:
            raise ValueError(f"cannot send `{bad[0]}` to a worker process ({bad[1]}); use `--executor thread`")
        job = sched.submit(run_cell_shipped, source, names, src.filename, first_line, name=name, priority=priority,
                           timeout=timeout, retries=retries, executor=executor, after=after, kind="cell",
                           code=source)
    else:
        call = run_cell_async if executor == "loop" else run_cell
        job = sched.submit(call, source, namespace, src.filename, first_line, name=name, priority=priority,
                           timeout=timeout, retries=retries, executor=executor, after=after, kind="cell",
                           code=source)
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
