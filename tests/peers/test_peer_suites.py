"""Peer suites (issue 23): tqdm's and IPython's own tests must give the same
pass/fail/skip sets with notebook_ext in the interpreter as without it.

Each suite comes from its sdist at the installed version (``pip download``,
kept in ``~/.cache/notebook_ext-peers`` or ``$NBX_PEER_CACHE``), and runs
three times in a subprocess with `nbx_peer_plugin`: ``plain`` (notebook_ext
untouched), ``load`` (what ``%load_ext notebook_ext`` does) and ``job`` (as
``load``, plus a background job printing and reporting throughout). Only how
notebook_ext runs changes; their tests and conftests are used as shipped.

tqdm's suite runs as tqdm's own CI runs it by default, without its perf
tests (see `_tqdm_suite`); that an idle notebook_ext costs no CPU is our own
test (`tests/faults/test_hooks.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGIN_DIR = Path(__file__).resolve().parent
MODES = ("plain", "load", "job")
RUN_TIMEOUT = 150  # seconds for one run of one suite; all six take about 100 s
EXCERPT_LINES = 6


@dataclass(frozen=True)
class PeerSuite:
    """A project whose own tests judge us: the sdist to fetch and what to run in it."""

    name: str
    version: str
    test_paths: tuple[str, ...]
    # Options the same in every mode: the peer's own CI selection, or running a suite
    # written for an older pytest-asyncio on this one.
    pytest_options: tuple[str, ...] = ()
    min_tests: int = 100


def _tqdm_suite() -> PeerSuite:
    import tqdm

    # As tqdm's own CI runs it (tox's default env: `pytest -k "not perf"`): its perf
    # tests run in an env of their own, since they need a process that spends no
    # CPU while it sleeps, which a process running a job (mode "job") is not.
    return PeerSuite("tqdm", tqdm.__version__, ("tests",), ("-k", "not perf"))


def _ipython_suite() -> PeerSuite:
    import IPython

    # "display, capture, magics and the interactive shell": IPython 9 keeps its
    # tests in the sdist's top-level tests/, IPython 8 beside the code.
    names = ("test_display.py", "test_displayhook.py", "test_capture.py", "test_magic.py",
             "test_interactiveshell.py")
    if int(IPython.__version__.split(".")[0]) >= 9:
        paths = tuple(f"tests/{name}" for name in names)
    else:
        paths = tuple(f"IPython/{'utils' if name == 'test_capture.py' else 'core'}/tests/{name}" for name in names)
    # IPython's conftest marks every coroutine test `asyncio` after collection,
    # which pytest-asyncio >= 0.23 in strict mode no longer honours: auto mode
    # is what that conftest means.
    return PeerSuite("ipython", IPython.__version__, paths, ("-o", "asyncio_mode=auto"))


SUITES = {"tqdm": _tqdm_suite, "ipython": _ipython_suite}


def cache_folder() -> Path:
    if "NBX_PEER_CACHE" in os.environ:
        return Path(os.environ["NBX_PEER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "notebook_ext-peers"


def fetch_sdist(suite: PeerSuite) -> Path:
    """The suite's sdist, downloaded once into `cache_folder`; a failed
    download fails the test (no network is a broken CI, not a skip)."""
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    pattern = f"{suite.name}-{suite.version}.tar.gz"
    found = sorted(folder.glob(pattern))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{suite.name}=={suite.version}", "-d", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    found = sorted(folder.glob(pattern))
    if proc.returncode != 0 or not found:
        pytest.fail(f"could not fetch the {suite.name} {suite.version} sdist for its peer suite "
                    f"(`{' '.join(cmd)}` exited {proc.returncode}); this test needs PyPI access, "
                    f"or the sdist placed in {folder}.\n{_tail(proc.stdout + proc.stderr)}", pytrace=False)
    return found[0]


def unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python before 3.10.12
            tar.extractall(dest)
    (root,) = [p for p in dest.iterdir() if p.is_dir()]
    return root


@dataclass(frozen=True)
class PeerRun:
    mode: str
    outcomes: dict[str, str]
    details: dict[str, str]  # failure texts and skip reasons
    status: dict
    output: str
    seconds: float


def run_suite(suite: PeerSuite, sdist: Path, mode: str, work: Path) -> PeerRun:
    """One run of the suite in a fresh copy of its sdist (IPython's conftest
    refuses a profile folder left by an earlier run)."""
    root = unpack(sdist, work / mode)
    missing = [p for p in suite.test_paths if not (root / p).exists()]
    if missing:
        pytest.fail(f"the {suite.name} {suite.version} sdist has no {', '.join(missing)}: update the peer "
                    "suite's paths for this version", pytrace=False)
    junit, status = work / f"{mode}.xml", work / f"{mode}-status.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(NBX_PEER_MODE=mode, NBX_PEER_STATUS=str(status),
               PYTHONPATH=os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", *suite.test_paths, "-p", "nbx_peer_plugin", "-p", "no:cacheprovider",
           *suite.pytest_options, f"--junitxml={junit}", "-q"]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"{suite.name} suite in mode {mode!r} ran over {RUN_TIMEOUT} s:\n{_tail(out)}", pytrace=False)
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    if not junit.exists():
        pytest.fail(f"{suite.name} suite in mode {mode!r} wrote no junit xml (exit {proc.returncode}):\n"
                    f"{_tail(output)}", pytrace=False)
    outcomes, details = parse_junit(junit)
    loaded = json.loads(status.read_text()) if status.exists() else {}
    return PeerRun(mode, outcomes, details, loaded, output, seconds)


def parse_junit(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``{test id: outcome}`` (passed, failed, skipped, error; a test with a
    failure and a teardown error is ``error+failed``) and the failure texts
    and skip reasons."""
    outcomes: dict[str, set[str]] = {}
    details: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        seen = outcomes.setdefault(key, set())
        texts = []
        for child in case:
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
            if kind is None:
                continue
            seen.add(kind)
            parts = [child.get("message")] if kind == "skipped" else [child.get("message"), child.text]
            texts.append("\n".join(filter(None, parts)))
        if not seen:
            seen.add("passed")
        if texts:
            details[key] = "\n".join(texts)
    return {k: "+".join(sorted(v)) for k, v in outcomes.items()}, details


def describe_differences(runs: dict[str, PeerRun]) -> list[str]:
    keys = sorted(set().union(*(r.outcomes for r in runs.values())))
    lines = []
    for key in keys:
        seen = {mode: runs[mode].outcomes.get(key, "absent") for mode in MODES}
        if len(set(seen.values())) == 1:
            continue
        lines.append(f"{key}: " + " ".join(f"{mode}={outcome}" for mode, outcome in seen.items()))
        for mode in ("load", "job"):
            text = runs[mode].details.get(key)
            if text and seen[mode] != seen["plain"]:
                excerpt = [line for line in text.splitlines() if line.strip()][:EXCERPT_LINES]
                lines.extend(f"    {mode}| {line}" for line in excerpt)
    return lines


def job_problems(suite: PeerSuite, runs: dict[str, PeerRun]) -> list[str]:
    """What shows the plugin really did its part: otherwise equal outcomes prove nothing."""
    problems = []
    for mode in ("load", "job"):
        status = runs[mode].status
        if not status:
            problems.append(f"mode {mode!r}: the plugin wrote no status (did `-p nbx_peer_plugin` load?)")
            continue
        if suite.name == "ipython" and not status.get("extension_loaded"):
            problems.append(f"mode {mode!r}: notebook_ext was never loaded into IPython's test shell")
        if "peer background job" in runs[mode].output:
            problems.append(f"mode {mode!r}: the background job's output reached the suite's terminal")
    status = runs["job"].status
    if status:
        if status.get("job_steps", 0) < 10:
            problems.append(f"mode 'job': the background job made only {status.get('job_steps', 0)} steps")
        if not status.get("job_ended_in_time") or status.get("job_state") != "cancelled":
            problems.append(f"mode 'job': the background job did not end cancelled within 10 s of `cancel()` "
                            f"(state {status.get('job_state')!r}, error {status.get('job_error')!r})")
        if "peer background job: step" not in status.get("job_output_tail", ""):
            problems.append("mode 'job': the background job's prints are missing from its captured output")
    return problems


@pytest.mark.parametrize("name", sorted(SUITES))
def test_peer_suite_unchanged_by_notebook_ext(name: str, tmp_path: Path) -> None:
    suite = SUITES[name]()
    sdist = fetch_sdist(suite)
    runs = {mode: run_suite(suite, sdist, mode, tmp_path) for mode in MODES}
    timing = ", ".join(f"{m} {r.seconds:.0f} s" for m, r in runs.items())
    print(f"{suite.name} {suite.version} peer suite: {timing}")

    plain = runs["plain"]
    assert len(plain.outcomes) >= suite.min_tests, (
        f"the {suite.name} suite ran only {len(plain.outcomes)} tests without notebook_ext "
        f"(expected at least {suite.min_tests}):\n{_tail(plain.output)}")
    differences = describe_differences(runs)
    problems = job_problems(suite, runs)
    differing = sum(1 for line in differences if not line.startswith(" "))
    assert not differences and not problems, (
        f"{suite.name} {suite.version}'s own tests change outcome with notebook_ext "
        f"({differing} tests differ):\n" + "\n".join(differences + problems))


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
