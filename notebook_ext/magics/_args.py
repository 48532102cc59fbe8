"""Argument types and shared helpers for the magics: every user mistake
becomes a one-line `UsageError` that names the flag and says how to fix it."""

from __future__ import annotations

import argparse
import keyword
import shlex
import sys
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ..core import Job, Scheduler, get_scheduler


def integer(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{flag}` must be an integer, got {text!r}") from None
    return parse


def count(flag: str, minimum: int = 0) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = integer(flag)(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"`{flag}` must be >= {minimum}, got {value}")
        return value
    return parse


def count_or(flag: str, minimum: int, words: tuple[str, ...]) -> Callable[[str], int | str]:
    """An integer >= ``minimum``, or one of ``words``."""
    def parse(text: str) -> int | str:
        if text in words:
            return text
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"`{flag}` must be an integer or {' or '.join(words)}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"`{flag}` must be >= {minimum}, got {value}")
        return value
    return parse


def number(flag: str, above: float) -> Callable[[str], float]:
    """A number greater than ``above``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{flag}` must be a number, got {text!r}") from None
        if not value > above:
            raise argparse.ArgumentTypeError(f"`{flag}` must be > {above:g}, got {text}")
        return int(value) if value.is_integer() else value
    return parse


def seconds(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{flag}` must be a number of seconds, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"`{flag}` must be positive, got {text}")
        return value
    return parse


def identifier(flag: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.isidentifier() or keyword.iskeyword(text):
            raise argparse.ArgumentTypeError(f"`{flag}` must be a Python variable name, got {text!r}")
        return text
    return parse


def job_name(text: str) -> str:
    """``-n NAME``: quotes as in a shell (``-n 'a b'`` is ``a b``), not empty."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = [text]
    name = " ".join(parts).strip()
    if not name:
        raise argparse.ArgumentTypeError("`--name` must not be empty")
    return name


def executor_choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(
                f"`--executor` must be one of {', '.join(allowed)}, got {text!r}")
        return text
    return parse


def check_executor(scheduler: Scheduler, name: str | None) -> None:
    if name is not None and name not in scheduler.executors:
        hint = " (call notebook_ext.use_dask() first)" if name == "dask" else ""
        raise UsageError(f"`--executor {name}` is not available{hint}")


def existing_jobs(scheduler: Scheduler, names: list[str], flag: str = "NAME") -> list[Job]:
    """Resolve job names, all or nothing, before anything is done."""
    jobs = scheduler.jobs
    missing = [n for n in names if n not in jobs]
    if missing:
        known = ", ".join(list(jobs)[-8:]) or "none yet"
        raise UsageError(f"no job named {missing[0]!r} (known: {known})")
    return [jobs[n] for n in names]


def lookup(ns: dict, name: str, what: str, shell: Any = None) -> Any:
    """A variable of the notebook, or (given ``shell``) a short expression
    such as ``LogisticRegression()`` or ``X[:100]``."""
    if name in ns:
        return ns[name]
    if shell is None or name.isidentifier():
        raise UsageError(f"{what}: no variable named {name!r} in the notebook")
    try:
        return shell.ev(name)
    except Exception as exc:  # noqa: BLE001 - any failure is the user's expression
        raise UsageError(f"{what}: cannot evaluate {name!r} ({type(exc).__name__}: {exc})") from None


def has_widget_frontend(shell: Any) -> bool:
    """Terminal IPython has no widget frontend: show text there."""
    return type(shell).__name__ != "TerminalInteractiveShell" and "ipykernel" in sys.modules


def show_job(shell: Any, job: Job) -> None:
    """Display the job's live card under the running cell (text in a terminal)."""
    from ..ui import show, status_line

    if not has_widget_frontend(shell):
        print(status_line(job.snapshot()), "(see %jobs)")
        return
    show(job)


def scheduler() -> Scheduler:
    return get_scheduler()


def job_options(executors: tuple[str, ...], executor_help: str, *, out_help: str) -> Callable[[Any], Any]:
    """The options every job-making magic shares: ``-n/--name``,
    ``--executor`` (one of ``executors``) and ``--out``, declared once."""
    decorators = [
        argument("-n", "--name", type=job_name, help="job name (default KIND-N)"),
        argument("--executor", type=executor_choice(executors), help=executor_help),
        argument("--out", type=identifier("--out"), help=out_help),
    ]

    def apply(fn: Any) -> Any:
        for deco in reversed(decorators):  # magic_arguments lists them in declaration order
            fn = deco(fn)
        return fn

    return apply
