"""pytest plugin that puts notebook_ext into another project's test run.

`test_peer_suites.py` runs tqdm's and IPython's own suites with
``-p nbx_peer_plugin`` and ``NBX_PEER_MODE`` set to one of:

``plain``
    nothing of notebook_ext is touched (the baseline);
``load``
    what ``%load_ext notebook_ext`` does to the interpreter: output capture,
    ``asyncio.run``, the hooks a first job puts in, and the extension loaded
    into the global IPython shell when the suite has made one;
``job``
    as ``load``, plus a thread job that prints and reports progress until
    the session ends (no bar: tqdm's conftest forbids concurrent bars).

Only how notebook_ext runs changes between modes, never the peer's tests. What
the plugin did is written as JSON to ``NBX_PEER_STATUS`` (when set), so the
calling test can check that the job really ran throughout and ended cancelled.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import time
import traceback
from typing import Any

MODE = os.environ.get("NBX_PEER_MODE", "plain")
MODES = ("plain", "load", "job")
JOB_INTERVAL = 0.005  # seconds between the background job's steps

_status: dict[str, Any] = {"mode": MODE, "extension_loaded": False, "errors": []}
_job: Any = None


def pytest_configure(config: Any) -> None:
    if MODE not in MODES:
        raise ValueError(f"`NBX_PEER_MODE` must be one of {', '.join(MODES)}, got {MODE!r}")
    _let_ipdoctest_run_on_this_pytest()
    if MODE == "plain":
        return
    from notebook_ext.core.lowlevel import install_asyncio_run, install_output_capture

    import notebook_ext as nx

    install_output_capture()
    install_asyncio_run()
    # The hooks a first job installs (Thread.start, tqdm, displays) go in now.
    nx.submit(lambda: None, name="peer-warmup").result(timeout=30)
    _load_into_shell()
    if MODE == "job":
        global _job
        _job = nx.submit(_print_and_report, name="peer-background")
        _status["job_started"] = True


def pytest_collection_finish(session: Any) -> None:
    # A suite whose shell appears only while collecting gets the extension here.
    if MODE != "plain":
        _load_into_shell()


def pytest_unconfigure(config: Any) -> None:
    if _job is not None:
        _job.cancel()
        _status["job_ended_in_time"] = _job.wait(10)
        _status["job_state"] = _job.state
        _status["job_error"] = None if _job.error is None else str(_job.error)
        output = _job.output
        _status["job_output_lines"] = output.count("\n")
        _status["job_output_tail"] = output[-200:]
    path = os.environ.get("NBX_PEER_STATUS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(_status, f, indent=1)


# The job's own `print`, taken before any test runs: a peer test that patches
# `builtins.print` (IPython's test_showtraceback_with_surrogates counts its calls)
# would otherwise count the job's prints made while the patch is in place.
_print = print


def _print_and_report() -> None:
    import notebook_ext as nx

    i = 0
    while True:  # until cancelled: `report` is the cancellation point
        i += 1
        _print(f"peer background job: step {i}")
        nx.report(step=i)
        _status["job_steps"] = i
        time.sleep(JOB_INTERVAL)


def _load_into_shell() -> None:
    """``%load_ext notebook_ext`` in the suite's global shell, once it exists
    (IPython's conftest makes it at import: `TerminalInteractiveShell.instance`)."""
    if _status["extension_loaded"] or "IPython" not in sys.modules:
        return
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return
    shell = InteractiveShell.instance()
    try:
        result = shell.extension_manager.load_extension("notebook_ext")
    except Exception:
        _status["errors"].append(traceback.format_exc())
        raise
    _status["extension_loaded"] = True
    _status["extension_load_result"] = result
    _status["extension_loaded_at"] = inspect.stack()[1].function
    _status["shell"] = type(shell).__qualname__


def _let_ipdoctest_run_on_this_pytest() -> None:
    # IPython 8.12's ipdoctest plugin (loaded by its own addopts) was written
    # for pytest < 7.1: pytest 8 wants `consider_namespace_packages` from
    # `import_path` callers and made `FixtureRequest` abstract. Two small
    # shims, the same in every mode, so they cannot make the modes differ.
    plugin = sys.modules.get("IPython.testing.plugin.pytest_ipdoctest")
    if plugin is None or _status.get("ipdoctest_shim"):
        return
    import_path = plugin.import_path
    if "consider_namespace_packages" in inspect.signature(import_path).parameters:
        plugin.import_path = functools.partial(import_path, consider_namespace_packages=False)
    if inspect.isabstract(plugin.FixtureRequest):
        plugin._setup_fixtures = _setup_fixtures
    _status["ipdoctest_shim"] = True


def _setup_fixtures(doctest_item: Any) -> Any:
    # What pytest's own `DoctestItem` does on pytest 8+ (`_initrequest`, `setup`).
    from _pytest.fixtures import TopRequest

    fixtureinfo = doctest_item.session._fixturemanager.getfixtureinfo(node=doctest_item, func=None, cls=None)
    doctest_item.funcargs = {}
    doctest_item._fixtureinfo = fixtureinfo
    doctest_item.fixturenames = fixtureinfo.names_closure
    request = TopRequest(doctest_item, _ispytest=True)
    request._fillfixtures()
    return request
