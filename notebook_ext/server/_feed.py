"""What the server's handlers serve: the ledger's jobs, each with the
notebook its kernel's session has open, read at most twice a second however
many pages ask (one read shared by all; a page that has it gets a 304)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from ..core import JobRecord
from ..core.lowlevel import SCHEMA_VERSION, Ledger, Refused, default_history_path, live_numbers

#: the most ended jobs one listing returns
MAX_ENDED = 10_000
#: seconds the server's sessions (which notebook each kernel has open) are reused
SESSIONS_EVERY = 2.0
#: seconds between full readings of the ledger while only live numbers change
#: (what no record's change tells: a checkpoint file removed)
FULL_EVERY = 5.0
#: seconds a live number may reach the file after a later one (writers commit in batches)
LATE_COMMITS = 2.0
#: the longest a listing is reused however much listing costs
MAX_INTERVAL = 1.5


class NotFound(LookupError):
    """No job with that id in the ledger."""


class JobFeed:
    """The ledger as the server extension reads it.

    ``serverapp``: the Jupyter server (its sessions say which notebook each
    kernel has open). ``ledger``: default, the file kernels write
    (`default_history_path`). ``min_interval``: seconds a listing is reused
    at least; ``max_share``: the share of a core listing may take at most.
    """

    def __init__(self, serverapp: Any = None, ledger: Ledger | None = None, *, min_interval: float = 0.5,
                 max_share: float = 0.04) -> None:
        self.serverapp = serverapp
        self.ledger = ledger if ledger is not None else Ledger(default_history_path())
        self.min_interval = min_interval
        self._cache: dict[int, tuple[float, str, bytes]] = {}  # ended -> (when read, etag, body)
        self._encoded: dict[str, tuple[Any, str]] = {}  # uid -> (what it was made of, its JSON)
        self._lock = asyncio.Lock()
        self.reads = 0  #: full readings of the ledger (for tests and benchmarks)
        #: the share of one core listings may take (the reuse interval grows to keep it)
        self.max_share = max_share
        self.cost = 0.0  #: CPU seconds the last listing took
        self._read_cost = 0.0
        self._sessions_seen: tuple[dict[str, str], set[str]] = ({}, set())
        # the last full reading, and what the ledger's pulse said then
        self._records: list[JobRecord] | None = None
        self._ended = -1
        self._mark = -1
        self._owners: dict[str, bool] = {}
        self._full_at = float("-inf")
        self._since = 0.0
        self._numbers: dict[str, tuple] = {}  # uid -> its live numbers read since
        self._sessions_at = float("-inf")

    @property
    def where(self) -> str:
        return str(self.ledger.path) if self.ledger.path is not None else "history off (NOTEBOOK_EXT_HISTORY)"

    async def listing(self, ended: int = 50, *, unlike: str | None = None,
                      wait: float = 0.0) -> tuple[str, bytes]:
        """The JSON body of ``GET /notebook-ext/api/jobs`` (every active job
        and the ``ended`` most recent others, newest first) and its ETag,
        which changes only when a job does. With ``unlike`` (the ETag a page
        has) and ``wait``, it answers as soon as the jobs differ from that,
        or after ``wait`` seconds with the same (a long poll: a page sees a
        change within ``min_interval`` of its reaching the ledger)."""
        deadline = time.monotonic() + wait
        while True:
            etag, body = await self._current(ended)
            left = deadline - time.monotonic()
            if etag != unlike or left <= 0:
                return etag, body
            cached = self._cache.get(ended)
            stale_in = cached[0] + self.interval - time.monotonic() if cached is not None else 0.0
            await asyncio.sleep(min(max(0.02, stale_in), left))  # until the listing may be read again

    @property
    def interval(self) -> float:
        """Seconds a listing is reused: `min_interval`, or longer (up to
        `MAX_INTERVAL`) when listing takes long, so that it costs the server
        at most `max_share` of a core."""
        return min(MAX_INTERVAL, max(self.min_interval, self.cost / self.max_share))

    async def _current(self, ended: int) -> tuple[str, bytes]:
        async with self._lock:  # one read for every page asking at once
            cached = self._cache.get(ended)
            if cached is not None and time.monotonic() - cached[0] < self.interval:
                return cached[1], cached[2]
            notebooks, kernels = await self._sessions()
            records, numbers = await asyncio.get_running_loop().run_in_executor(None, self._read, ended)
            began = time.thread_time()
            encoded, parts = {}, []
            for r in records:
                # its JSON but the live numbers, made again only when the record changed
                kernel = r.owner.kernel if r.owner else None
                key = (r, notebooks.get(kernel or ""), bool(kernel and kernel in kernels))
                prev = self._encoded.get(r.uid)
                if prev is not None and prev[0] == key:
                    text = prev[1]
                else:
                    data = self._json(r, notebooks, kernels, brief=True)
                    del data["progress"]
                    text = json.dumps(data, default=str)[:-1]
                encoded[r.uid] = (key, text)
                t, done, total, rate, eta = numbers.get(r.uid) or (r.updated, r.done, r.total, r.rate, r.eta)
                parts.append(f'{text}, "progress": {json.dumps(live_numbers(t, done, total, rate, eta))}}}')
            self._encoded = encoded
            jobs = "[" + ",".join(parts) + "]"
            etag = '"' + hashlib.blake2b(jobs.encode(), digest_size=12).hexdigest() + '"'
            ledger = json.dumps(str(self.ledger.path) if self.ledger.path is not None else None)
            body = (f'{{"schema": {SCHEMA_VERSION}, "now": {time.time()!r}, "ledger": {ledger}, '
                    f'"jobs": {jobs}}}').encode()
            self._cache = {ended: (time.monotonic(), etag, body)}
            # what listing costs (a moving average): the server's thread, and the executor thread's reading
            self.cost = 0.7 * self.cost + 0.3 * ((time.thread_time() - began) + self._read_cost)
            return etag, body

    async def one(self, uid: str) -> dict[str, Any]:
        """One job (by id), with its traceback."""
        record = await asyncio.get_running_loop().run_in_executor(None, self._find, uid)
        notebooks, kernels = await self._sessions()
        return {**self._json(record, notebooks, kernels), "traceback": record.traceback}

    async def request(self, uid: str, action: str, sender: str | None = None,
                      reason: str | None = None) -> dict[str, Any]:
        """Ask the owner of job ``uid`` to ``cancel`` or ``stop`` it (through
        the ledger's mailbox; ``reason`` shows on its card); `NotFound`, or
        `Refused` when it has ended."""
        reason = reason or f"{'cancelled' if action == 'cancel' else 'stopped'} from the Jupyter server"

        def write() -> JobRecord:
            record = self._find(uid)
            return self.ledger.request(record.uid, action, reason, sender)
        record = await asyncio.get_running_loop().run_in_executor(None, write)
        self._cache.clear()
        notebooks, kernels = await self._sessions()
        return self._json(record, notebooks, kernels)

    # -- helpers -------------------------------------------------------------------
    def _read(self, ended: int) -> tuple[list[JobRecord], dict[str, tuple]]:
        """The jobs, and the live numbers written since they were read
        ({uid: (updated, done, total, rate, eta)}): read in full when a
        record changed (a state, a new job), an owner came or went, or every
        `FULL_EVERY` seconds; else the last reading stands and only the
        live numbers are read (a thousand running jobs change only those,
        every half second)."""
        began = time.thread_time()
        try:
            if not self.ledger.exists:
                return [], {}
            pulse = self.ledger.pulse(self._since)
            if (self._records is None or ended != self._ended or pulse.mark != self._mark
                    or pulse.owners != self._owners or time.monotonic() - self._full_at > FULL_EVERY):
                self.reads += 1
                self._records = list(self.ledger.jobs(ended=ended))
                self._ended, self._mark, self._owners = ended, pulse.mark, pulse.owners
                self._full_at = time.monotonic()
                self._numbers = {}
            numbers = self._numbers
            for uid, *fresh in pulse.numbers:
                numbers[uid] = tuple(fresh)
            if pulse.numbers:  # the next pulse asks from a little before the newest (commits land late)
                self._since = max(self._since, max(n[1] for n in pulse.numbers) - LATE_COMMITS)
            return self._records, numbers
        finally:
            self._read_cost = time.thread_time() - began

    def _find(self, uid: str) -> JobRecord:
        if not self.ledger.exists:
            raise NotFound(f"no job {uid!r}: the ledger {self.where} does not exist yet")
        found = self.ledger.records("WHERE jobs.uid=?", (uid,))
        if not found:
            raise NotFound(f"no job {uid!r} in the ledger {self.where}")
        return found[0]

    async def _sessions(self) -> tuple[dict[str, str], set[str]]:
        """{kernel id: notebook path} of this server's sessions, and its
        kernels (asked of the server at most every `SESSIONS_EVERY` seconds)."""
        app = self.serverapp
        if app is None:
            return {}, set()
        if time.monotonic() - self._sessions_at < SESSIONS_EVERY:
            return self._sessions_seen
        self._sessions_seen = await self._ask_sessions(app)
        self._sessions_at = time.monotonic()
        return self._sessions_seen

    async def _ask_sessions(self, app: Any) -> tuple[dict[str, str], set[str]]:
        notebooks: dict[str, str] = {}
        try:
            for s in await app.session_manager.list_sessions():
                kernel = (s.get("kernel") or {}).get("id")
                if kernel and s.get("path"):
                    notebooks[kernel] = s["path"]
        except Exception:  # noqa: BLE001 - a listing without paths beats none; the owner's path stays
            app.log.warning("notebook_ext: could not list the server's sessions", exc_info=True)
        return notebooks, set(app.kernel_manager.list_kernel_ids())

    @staticmethod
    def _json(record: JobRecord, notebooks: dict[str, str], kernels: set[str], *,
              brief: bool = False) -> dict[str, Any]:
        data = record.as_json(brief=brief)
        kernel = record.owner.kernel if record.owner else None
        # the path the kernel's session has open now (a renamed notebook), else the one it started with
        data["notebook"] = notebooks.get(kernel or "") or (record.owner.notebook if record.owner else None)
        data["kernel_here"] = bool(kernel and kernel in kernels)
        return data


__all__ = ["JobFeed", "MAX_ENDED", "NotFound", "Refused"]
