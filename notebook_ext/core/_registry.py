"""The scheduler's book of jobs: unique names, lookup, every job in order;
and the checks a call must pass before it becomes a job."""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

from ._job import Job
from ._text import clean


def check_call(fn: Callable[..., Any], priority: Any = 0, timeout: Any = None, retries: Any = 0) -> None:
    """Refuse a bad submission with one line naming the argument."""
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"`priority` must be an integer, got {priority!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0):
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"`retries` must be a whole number >= 0, got {retries!r}")


class JobRegistry:
    """Name -> newest job of that name, and every job ever submitted."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._by_name: dict[str, Job] = {}
        self._all: list[Job] = []
        self._by_id: dict[int, Job] = {}
        self._counters: dict[str, itertools.count[int]] = {}

    def claim_name(self, name: str | None, kind: str) -> str:
        """``name`` if it is free (or its job ended), else `ValueError`;
        with no name, the next free ``kind-N``. Call with `lock` held."""
        if name is None:
            counter = self._counters.get(kind)
            if counter is None:
                counter = self._counters[kind] = itertools.count(1)
            while True:
                name = f"{kind}-{next(counter)}"
                if name not in self._by_name:
                    return name
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`name` must be a non-empty string, got {name!r}")
        name = clean(name)  # the name it is kept (and looked up) under
        old = self._by_name.get(name)
        if old is not None and not old.done():
            raise ValueError(f"a job named {name!r} is still {old.state}; cancel it or choose another name")
        return name

    def add(self, job: Job) -> None:
        with self.lock:
            self._by_name[job.name] = job
            self._all.append(job)
            self._by_id[job.id] = job

    def resolve(self, job: "Job | str", what: str) -> Job:
        """A job, or the newest job of that name; `ValueError` naming ``what``."""
        if isinstance(job, Job):
            return job
        with self.lock:
            found = self._by_name.get(job) if isinstance(job, str) else None
        if found is None:
            raise ValueError(f"`{what}`: no job named {job!r}")
        return found

    def get(self, name: "str | Job") -> Job:
        if isinstance(name, Job):
            return name
        with self.lock:
            job = self._by_name.get(name)
        if job is None:
            raise KeyError(f"no job named {name!r}")
        return job

    def by_name(self) -> dict[str, Job]:
        with self.lock:
            return dict(self._by_name)

    def by_id(self, job_id: int) -> "Job | None":
        with self.lock:
            return self._by_id.get(job_id)

    def all(self) -> list[Job]:
        with self.lock:
            return list(self._all)
