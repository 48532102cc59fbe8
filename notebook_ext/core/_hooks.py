"""`InterpreterHooks`: everything notebook_ext patches in the interpreter,
installed by one object that records each original and puts it back.

What is patched, and why (the README lists the same):

====================================  ==========================================
hook                                  so that
====================================  ==========================================
``sys.stdout`` / ``sys.stderr``       a job's ``print`` goes to its card, not to
(`JobOutputRouter`)                   whatever cell runs now
``sys``'s module class                a stream set later (``%%capture``,
(``__setattr__`` only)                ``redirect_stdout``, pytest) is wrapped as
                                      it is set: job output stays the job's,
                                      foreground output goes where it was sent
``logging`` handlers' streams         a job's log lines land on its card
``threading.Thread.start``,           threads and pool tasks started by job
``ThreadPoolExecutor.submit``         code belong to that job
``tqdm.std.tqdm.__new__``             a bar made in a job drives its progress
(and a finder until tqdm is
imported)
the shell's ``display_pub``           ``display()`` / ``plt.show()`` from a job
(``publish``, ``clear_output``)       lands on its card
matplotlib's ``Gcf.figs`` (and a      a running job's figures are its own: the
finder until it is imported)          inline backend never draws them mid-job
====================================  ==========================================

`HOOKS.undo()` (called by ``%unload_ext notebook_ext`` and
`notebook_ext.shutdown`) restores every patched attribute to the very
object it was, and the next `job_context` installs them again.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from typing import Any, Callable

_MISSING = object()


class InterpreterHooks:
    """The one owner of our interpreter patches.

    Examples
    --------
    >>> from notebook_ext.core.lowlevel import HOOKS       # doctest: +SKIP
    >>> HOOKS.installed()
    ['sys.stdout', 'sys.stderr', 'threading.Thread.start', ...]
    >>> HOOKS.undo()
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()  #: held while installing or undoing (re-entrant: installers nest)
        self._patches: dict[tuple[int, str], tuple[Any, str, Any, str]] = {}
        self._undos: dict[str, Callable[[], None]] = {}

    def replace(self, target: Any, name: str, new: Any, what: str) -> None:
        """Set ``target.name = new``, remembering the original (the first
        time only: replacing again keeps the true original)."""
        with self.lock:
            key = (id(target), name)
            if key not in self._patches:
                own = vars(target).get(name, _MISSING) if hasattr(target, "__dict__") else _MISSING
                self._patches[key] = (target, name, own, what)
            setattr(target, name, new)

    def on_undo(self, what: str, undo: Callable[[], None]) -> None:
        """A hook that is not one attribute (a finder on ``sys.meta_path``, a
        handler's stream): ``undo()`` removes it. One per ``what``."""
        with self.lock:
            self._undos.setdefault(what, undo)

    def when_imported(self, module: str, patch: Callable[[Any], None], what: str) -> None:
        """``patch(module)`` now if ``module`` is imported, else right after
        its first import (by a finder on ``sys.meta_path``, removed by
        `undo`): a library the user may never import is not imported by us."""
        with self.lock:
            loaded = sys.modules.get(module)
            if loaded is not None:
                patch(loaded)
            elif not any(isinstance(f, _PatchOnImport) and f.module == module for f in sys.meta_path):
                finder = _PatchOnImport(module, patch)
                sys.meta_path.insert(0, finder)
                self.on_undo(what, lambda: _remove(finder))

    def patched(self, target: Any, name: str) -> bool:
        return (id(target), name) in self._patches

    def installed(self) -> list[str]:
        """What is patched now, in the order it was installed."""
        with self.lock:
            return [p[3] for p in self._patches.values()] + list(self._undos)

    def undo(self) -> list[str]:
        """Put every original back (latest first); returns what was undone."""
        with self.lock:
            done = []
            for what, undo in reversed(list(self._undos.items())):
                undo()
                done.append(what)
            self._undos.clear()
            for target, name, own, what in reversed(list(self._patches.values())):
                if own is _MISSING:
                    try:
                        delattr(target, name)  # it was inherited: the class's own shows again
                    except AttributeError:
                        pass
                else:
                    setattr(target, name, own)
                done.append(what)
            self._patches.clear()
            return done


#: the process's one hook layer
HOOKS = InterpreterHooks()


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any, patch: Callable[[Any], None]) -> None:
        self._loader, self._patch = loader, patch

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        self._patch(module)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches ``module`` right after it is first imported."""

    def __init__(self, module: str, patch: Callable[[Any], None]) -> None:
        self.module, self.patch = module, patch

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.module:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self.patch)
        return spec


def _remove(finder: _PatchOnImport) -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if f is not finder]
