"""The files notebook_ext keeps: private folders, and the checkpoints jobs
keep beside the history.

Checkpoints live in ``checkpoints/`` next to the history file (0700). A job
writes its checkpoint over its previous one, so only the last is kept; a
job that ends ``done`` deletes its own. The folder is capped at
``$NOTEBOOK_EXT_CHECKPOINT_CAP`` bytes (default 2 GiB, suffixes K/M/G
allowed): after each write the oldest checkpoints of jobs not running here
are deleted until the folder fits; those of jobs whose owner is alive, in
this process or another (the ledger says which), are never deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

DEFAULT_CAP = 2 * 1024 ** 3
_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
_in_use: set[str] = set()  # checkpoint groups a job of this process is writing
_lock = threading.Lock()


# -- private folders ----------------------------------------------------------
def private_folder(folder: Path) -> None:
    """Check that only this user (or root) can put files in ``folder``: one
    that group or others can write is made 0700, with a warning; one another
    user owns raises `PermissionError`. A sticky folder (``/tmp``) is left
    as it is: others may add files there but not replace ours."""
    st = os.stat(folder)
    if st.st_uid not in (os.geteuid(), 0):
        raise PermissionError(f"{folder} belongs to another user (uid {st.st_uid}), who could replace the files "
                              f"notebook_ext keeps there; use a folder of your own")
    if st.st_mode & 0o022 and not st.st_mode & 0o1000:
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise PermissionError(f"{folder} can be written by others (mode {st.st_mode & 0o777:04o}) and "
                                  f"cannot be made private ({exc.strerror}); use a folder of your own") from None
        warnings.warn(f"notebook_ext: {folder} could be written by group or others "
                      f"(mode {st.st_mode & 0o777:04o}); made private (0700)", RuntimeWarning, stacklevel=2)


def create_private(path: Path) -> None:
    """Make the missing folders of ``path`` (0700) and the file (0600);
    existing folders are left as they are, but the file's own folder must
    be private (`private_folder`)."""
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    private_folder(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))



# -- checkpoint files ---------------------------------------------------------
def checkpoint_folder(history_path: Path | None) -> Path | None:
    """``checkpoints/`` beside the history file, made private; None without a history."""
    if history_path is None:
        return None
    folder = Path(history_path).parent / "checkpoints"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def new_checkpoint(folder: Path, name: str) -> Path:
    """A fresh base path for one job's checkpoint files (``<base>``, ``<base>.items`` …)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40].strip("._") or "job"
    return folder / f"{safe}-{uuid.uuid4().hex[:10]}.ckpt"


def write_atomic(path: str | os.PathLike[str], write: Callable[[str], Any]) -> str:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over
    ``path``: readers (and a crash) see the old file or the new, never half."""
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _group(path: str | os.PathLike[str]) -> str:
    """The checkpoint a file belongs to: ``x.ckpt``, ``x.ckpt.items`` and ``x.ckpt.part-3`` are one."""
    name = os.path.basename(path)
    head, sep, _ = name.partition(".ckpt")
    return head + sep


def hold(path: str | os.PathLike[str]) -> None:
    """Mark a checkpoint as being written by a job here: pruning leaves it."""
    with _lock:
        _in_use.add(_group(path))


def release(path: str | os.PathLike[str], *, delete: bool) -> None:
    """The job writing ``path`` ended; ``delete`` removes all its files."""
    with _lock:
        _in_use.discard(_group(path))
    if delete:
        folder = os.path.dirname(os.path.abspath(path))
        group = _group(path)
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if _group(entry.name) == group:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def cap_bytes() -> int:
    text = os.environ.get("NOTEBOOK_EXT_CHECKPOINT_CAP", "").strip().upper().removesuffix("B").removesuffix("I")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)", text)
    if not match:
        return DEFAULT_CAP
    return int(float(match[1]) * _UNITS[match[2]])


def prune(folder: "str | os.PathLike[str]", cap: int | None = None, keep: "Iterable[str]" = ()) -> list[str]:
    """Delete the oldest checkpoints not in use here, nor among ``keep`` (paths
    of checkpoints other processes' live jobs use), until ``folder`` holds
    at most ``cap`` bytes; returns the groups deleted."""
    cap = cap_bytes() if cap is None else cap
    groups: dict[str, list[os.DirEntry[str]]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(os.fspath(folder)):
            if ".ckpt" in entry.name and not entry.name.startswith(".tmp-"):
                groups.setdefault(_group(entry.name), []).append(entry)
    sizes = {g: sum(_size(e) for e in entries) for g, entries in groups.items()}
    total = sum(sizes.values())
    deleted = []
    with _lock:
        busy = set(_in_use) | {_group(path) for path in keep}
    for group in sorted(groups, key=lambda g: max(_mtime(e) for e in groups[g])):
        if total <= cap:
            break
        if group in busy:
            continue
        for entry in groups[group]:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        total -= sizes[group]
        deleted.append(group)
    return deleted


def _size(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat().st_size
    except OSError:
        return 0


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0
