"""1. Kernel responsiveness: round trip of a trivial cell in a real kernel,
idle and while CPU-bound jobs run in various ways."""

from __future__ import annotations

import os
import time

import numpy as np
from jupyter_client.manager import start_new_kernel

from ._table import Row


def _round_trips(kc, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        msg_id = kc.execute("1", store_history=False)
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    return out


def _run(kc, code: str) -> None:
    msg_id = kc.execute(code)
    while True:
        reply = kc.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg_id:
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{code!r}: {reply['content'].get('evalue')}")
            return


SPIN = "def spin(n=10**12):\n    x = 0\n    for i in progress(range(n)):\n        x += i\n    return x\n"

SCENARIOS = [
    ("2 pure-Python jobs, process executor", "jobs = [nx.submit(spin, executor='process') for _ in range(2)]",
     "for j in jobs: j.cancel()\nnx.wait(*jobs, timeout=10)"),
    ("2 pure-Python jobs, thread executor", "jobs = [nx.submit(spin, executor='thread') for _ in range(2)]",
     "for j in jobs: j.cancel()\nnx.wait(*jobs, timeout=10)"),
    ("2 pure-Python plain threads (IPython backgroundjobs)",
     "from IPython.lib.backgroundjobs import BackgroundJobManager\nstop = [False]\n"
     "def raw():\n    x = 0\n    while not stop[0]:\n        x += 1\n"
     "bj = BackgroundJobManager()\n_ = [bj.new(raw) for _ in range(2)]",
     "stop[0] = True\ntime.sleep(0.5)"),
    ("2 scikit-learn fits, thread executor",
     "from sklearn.ensemble import RandomForestClassifier\nfrom sklearn.datasets import make_classification\n"
     "Xb, yb = make_classification(20000, 40, random_state=0)\n"
     "jobs = [nx.ml.train(RandomForestClassifier(n_estimators=2000, n_jobs=1), Xb, yb) for _ in range(2)]",
     "for j in jobs: j.cancel()\nnx.wait(*jobs, timeout=60)"),
]


def run(quick: bool) -> list[Row]:
    n = 8 if quick else 60
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "NOTEBOOK_EXT_HISTORY": "off"})
    rows = []
    try:
        _run(kc, "%load_ext notebook_ext\nimport notebook_ext as nx, time\n" + SPIN)
        _run(kc, "nx.submit(sum, [1]).result(30); nx.submit(abs, -1, executor='process').result(60)")  # warm
        _round_trips(kc, 5)
        idle = _round_trips(kc, n)
        p50_idle, p99_idle = np.percentile(idle, 50), np.percentile(idle, 99)
        rows.append(Row("responsiveness", "idle kernel: p99 round trip", p99_idle, None, "", "ms",
                        f"p50 {p50_idle:.1f} ms"))
        for case, start, stop in SCENARIOS:
            _run(kc, start)
            time.sleep(1.0)
            busy = _round_trips(kc, max(5, n // (4 if "thread" in case and "fits" not in case else 1)))
            _run(kc, stop)
            p50, p99 = np.percentile(busy, 50), np.percentile(busy, 99)
            target = "p99 <= 1.5x idle" if "process" in case else "reported as is"
            met = ("yes" if p99 <= 1.5 * p99_idle else "NO") if "process" in case else ""
            rows.append(Row("responsiveness", f"{case}: p99", p99, p99_idle, "idle p99", "ms",
                            f"p50 {p50:.1f} ms (idle {p50_idle:.1f})", target, met))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return rows
