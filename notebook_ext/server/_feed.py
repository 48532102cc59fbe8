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
from ..core.lowlevel import SCHEMA_VERSION, Ledger, Refused, default_history_path

#: the most ended jobs one listing returns
MAX_ENDED = 10_000


class NotFound(LookupError):
    """No job with that id in the ledger."""


class JobFeed:
    """The ledger as the server extension reads it.

    ``serverapp``: the Jupyter server (its sessions say which notebook each
    kernel has open). ``ledger``: default, the file kernels write
    (`default_history_path`). ``min_interval``: seconds a listing is reused.
    """

    def __init__(self, serverapp: Any = None, ledger: Ledger | None = None, *, min_interval: float = 0.5) -> None:
        self.serverapp = serverapp
        self.ledger = ledger if ledger is not None else Ledger(default_history_path())
        self.min_interval = min_interval
        self._cache: dict[int, tuple[float, str, bytes]] = {}  # ended -> (when read, etag, body)
        self._encoded: dict[str, tuple[Any, str]] = {}  # uid -> (what it was made of, its JSON)
        self._lock = asyncio.Lock()
        self.reads = 0  #: ledger listings made (for tests and benchmarks)

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
            await asyncio.sleep(min(self.min_interval, left))

    async def _current(self, ended: int) -> tuple[str, bytes]:
        async with self._lock:  # one read for every page asking at once
            cached = self._cache.get(ended)
            if cached is not None and time.monotonic() - cached[0] < self.min_interval:
                return cached[1], cached[2]
            notebooks, kernels = await self._sessions()
            records = await asyncio.get_running_loop().run_in_executor(None, self._read, ended)
            encoded, parts = {}, []
            for r in records:  # a job that did not change keeps its JSON
                kernel = r.owner.kernel if r.owner else None
                key = (r, notebooks.get(kernel or ""), bool(kernel and kernel in kernels))
                prev = self._encoded.get(r.uid)
                text = prev[1] if prev is not None and prev[0] == key else json.dumps(
                    self._json(r, notebooks, kernels), default=str)
                encoded[r.uid] = (key, text)
                parts.append(text)
            self._encoded = encoded
            jobs = "[" + ",".join(parts) + "]"
            etag = '"' + hashlib.blake2b(jobs.encode(), digest_size=12).hexdigest() + '"'
            ledger = json.dumps(str(self.ledger.path) if self.ledger.path is not None else None)
            body = (f'{{"schema": {SCHEMA_VERSION}, "now": {time.time()!r}, "ledger": {ledger}, '
                    f'"jobs": {jobs}}}').encode()
            self._cache = {ended: (time.monotonic(), etag, body)}
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
    def _read(self, ended: int) -> list[JobRecord]:
        self.reads += 1
        if not self.ledger.exists:
            return []
        return list(self.ledger.jobs(ended=ended))

    def _find(self, uid: str) -> JobRecord:
        if not self.ledger.exists:
            raise NotFound(f"no job {uid!r}: the ledger {self.where} does not exist yet")
        found = self.ledger.records("WHERE jobs.uid=?", (uid,))
        if not found:
            raise NotFound(f"no job {uid!r} in the ledger {self.where}")
        return found[0]

    async def _sessions(self) -> tuple[dict[str, str], set[str]]:
        """{kernel id: notebook path} of this server's sessions, and its kernels."""
        app = self.serverapp
        if app is None:
            return {}, set()
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
    def _json(record: JobRecord, notebooks: dict[str, str], kernels: set[str]) -> dict[str, Any]:
        data = record.as_json()
        kernel = record.owner.kernel if record.owner else None
        # the path the kernel's session has open now (a renamed notebook), else the one it started with
        data["notebook"] = notebooks.get(kernel or "") or (record.owner.notebook if record.owner else None)
        data["kernel_here"] = bool(kernel and kernel in kernels)
        return data


__all__ = ["JobFeed", "MAX_ENDED", "NotFound", "Refused"]
