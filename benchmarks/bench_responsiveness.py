"""1. Kernel responsiveness: round trip of the trivial cell ``1`` in a real
kernel, idle and while two CPU-bound loops run, measured against a floor of
two plain spinning processes at ``nice 10``.

The floor and our process-executor cases are interleaved (idle, floor, ours
without report(), ours with report(), then again …) so machine noise hits
them alike; every case is run once untimed first. The thread cases (threads
share the kernel's GIL, so they are far slower) run after, interleaved with
a floor of their own (the same load, sampled in their rounds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from ._kernel import Kernel
from ._table import Row, median_spread

SLOW_MS = 100.0

PREP = """\
%load_ext notebook_ext
import notebook_ext as nx, time
from IPython.display import display
from notebook_ext.ui import card

def spin_bare():
    x = 0
    while True:
        x += 1

def spin_report():
    x = 0
    while True:
        x += 1
        report(x)

def spin_progress(n=10**12):
    x = 0
    for i in progress(range(n)):
        x += i
    return x

def _running(jobs, timeout=60):
    deadline = time.monotonic() + timeout
    while not all(j.state == "running" for j in jobs):
        if time.monotonic() > deadline:
            raise RuntimeError([j.state for j in jobs])
        time.sleep(0.02)

def _stop(jobs, timeout=60):
    for j in jobs:
        j.cancel()
    nx.wait(*jobs, timeout=timeout)
    assert all(j.done() for j in jobs), [j.state for j in jobs]

# both process workers up before anything is measured
nx.wait(*[nx.submit(abs, -1, executor="process") for _ in range(2)], timeout=120)
"""

STOP_JOBS = "_stop(jobs)"


class Case:
    """One load: ``start()`` it, take round trips, ``stop()`` it."""

    def __init__(self, key: str, label: str, start: str | None = None, stop: str | None = None,
                 local: bool = False) -> None:
        self.key, self.label, self.start_code, self.stop_code, self.local = key, label, start, stop, local
        self.samples: list[float] = []
        self._procs: list[subprocess.Popen] = []

    def start(self, k: Kernel) -> None:
        if self.local:
            self._procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                            preexec_fn=lambda: os.nice(10)) for _ in range(2)]
        elif self.start_code:
            k.run(self.start_code)

    def stop(self, k: Kernel) -> None:
        for p in self._procs:
            p.kill()
            p.wait()
        self._procs = []
        if self.stop_code:
            k.run(self.stop_code)

    def block(self, k: Kernel, n: int, settle: float, keep: bool = True) -> None:
        self.start(k)
        try:
            time.sleep(settle)
            got = []
            for _ in range(n):
                got.append(k.round_trip())
                time.sleep(0.01)
        finally:
            self.stop(k)
            k.drain(quiet=0.05)
        if keep:
            self.samples += got

    def stats(self) -> dict:
        a = np.asarray(self.samples)
        return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()),
                "slow": int((a > SLOW_MS).sum()), "n": len(a)}


def _spread(st: dict) -> str:
    return (f"p50 {st['p50']:.1f} ms, max {st['max']:.1f} ms; {st['slow']} of {st['n']} cells > "
            f"{SLOW_MS:.0f} ms")


RATE_SECONDS = 3.0


def _value(k: Kernel, expression: str) -> float:
    """An expression's value in the kernel, read without running a cell."""
    msg_id = k.kc.execute("", user_expressions={"v": expression}, store_history=False, silent=True)
    while True:
        reply = k.kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            got = reply["content"]["user_expressions"]["v"]
            if got.get("status") != "ok":
                raise RuntimeError(f"{expression}: {got.get('ename')}: {got.get('evalue')}")
            return float(got["data"]["text/plain"])


def _rates(k: Kernel, rounds: int, settle: float, seconds: float) -> dict[str, list[float]]:
    """Iterations per second of 2 pure-Python thread jobs with no kernel
    activity: with our switch interval and giving way, and with neither
    (``nx.switch_interval(None)``, ``nx.give_way(None)``: the interpreter's
    default interval, jobs never wait), interleaved."""
    ours = _value(k, "nx.switch_interval()")
    grace = _value(k, "nx.give_way()")
    settings = {"ours": f"nx.switch_interval({ours!r}); nx.give_way({grace!r})",
                "default": "nx.switch_interval(None); nx.give_way(None)"}
    out: dict[str, list[float]] = {"ours": [], "default": []}
    for r in range(rounds + 1):  # the first round is a warm-up
        for key in (list(settings) if r % 2 == 0 else list(settings)[::-1]):
            k.run(f"{settings[key]}\n"
                  "jobs = [nx.submit(spin_progress, executor='thread') for _ in range(2)]\n_running(jobs)")
            try:
                time.sleep(settle)
                n0, t0 = _value(k, "sum(j.ctx.done for j in jobs)"), time.perf_counter()
                time.sleep(seconds)
                n1, t1 = _value(k, "sum(j.ctx.done for j in jobs)"), time.perf_counter()
            finally:
                k.run(STOP_JOBS + f"\n{settings['ours']}")
            if r:
                out[key].append((n1 - n0) / (t1 - t0))
    return out


def _interleaved(k: Kernel, cases: list[Case], rounds: int, per_block: int, settle: float) -> None:
    for c in cases:  # warm-up: every case once, untimed
        c.block(k, max(3, per_block // 4), settle, keep=False)
    for r in range(rounds):
        for c in (cases if r % 2 == 0 else cases[::-1]):
            c.block(k, per_block, settle)


def run(quick: bool) -> list[Row]:
    rounds, per_block = (2, 5) if quick else (5, 32)  # 160 samples per case
    thread_rounds, thread_block = (2, 3) if quick else (5, 20)  # 100 samples per case
    settle = 0.5 if quick else 1.5
    rate_seconds = 1.0 if quick else RATE_SECONDS

    idle = Case("idle", "idle kernel: round trip p99")
    floor = Case("floor", "floor: 2 plain `while True: pass` processes at nice 10, started outside the kernel: p99",
                 local=True)
    thread_floor = Case("floor2", "the same floor, in the thread cases' rounds", local=True)
    bare = Case("bare", "2 process jobs spinning, no report(): p99",
                "jobs = [nx.submit(spin_bare, executor='process') for _ in range(2)]\n_running(jobs)", STOP_JOBS)
    rep = Case("report", "2 process jobs spinning, report() every iteration, a live card each: p99",
               "jobs = [nx.submit(spin_report, executor='process') for _ in range(2)]\n"
               "for j in jobs: display(card(j))\n_running(jobs)", STOP_JOBS)
    threads = Case("thread", "2 pure-Python jobs, thread executor (progress() loop): p99",
                   "jobs = [nx.submit(spin_progress, executor='thread') for _ in range(2)]\n_running(jobs)", STOP_JOBS)
    bgjobs = Case("bgjobs", "2 pure-Python plain threads (IPython backgroundjobs): p99",
                  "stop = [False]\n"
                  "def raw(flag=stop):\n    x = 0\n    while not flag[0]:\n        x += 1\n"
                  "bj = BackgroundJobManager()\n_ = [bj.new(raw) for _ in range(2)]",
                  "stop[0] = True\ntime.sleep(0.3)")
    fits = Case("fits", "2 scikit-learn fits, thread executor: p99",
                "jobs = [nx.ml.train(RandomForestClassifier(n_estimators=2000, n_jobs=1), Xb, yb, epochs=200)\n"
                "        for _ in range(2)]\n"
                "_running(jobs)", "_stop(jobs, 120)")  # 200 warm_start stages of 10 trees: cancel is prompt

    with Kernel() as k:
        k.run(PREP, timeout=300)
        k.run("from IPython.lib.backgroundjobs import BackgroundJobManager\n"
              "from sklearn.ensemble import RandomForestClassifier\n"
              "from sklearn.datasets import make_classification\n"
              "Xb, yb = make_classification(20000, 40, random_state=0)")
        for _ in range(5):
            k.round_trip()
        main = [idle, floor, bare, rep]
        _interleaved(k, main, rounds, per_block, settle)
        _interleaved(k, [thread_floor, threads, bgjobs, fits], thread_rounds, thread_block, settle)
        interval = _value(k, "nx.switch_interval()")
        grace = _value(k, "nx.give_way()")
        rates = _rates(k, thread_rounds, settle, rate_seconds)

    st = {c.key: c.stats() for c in (idle, floor, bare, rep, thread_floor, threads, bgjobs, fits)}
    for c in (idle, floor, bare, rep, thread_floor, threads, bgjobs, fits):
        s = st[c.key]
        print(f"#   {c.key:8s} n={s['n']:4d} p50 {s['p50']:7.1f}  p99 {s['p99']:7.1f}  max {s['max']:7.1f} ms  "
              f"cells > {SLOW_MS:.0f} ms: {s['slow']}", file=sys.stderr, flush=True)
    fl = st["floor"]["p99"]
    rows = [
        Row("responsiveness", idle.label, st["idle"]["p99"], None, "", "ms", _spread(st["idle"])),
        Row("responsiveness", floor.label, fl, st["idle"]["p99"], "idle p99", "ms", _spread(st["floor"]),
            note="the floor: the same CPU pressure as two pure-Python jobs, with none of our machinery "
                 "(as our process workers, at nice 10). Cases idle / floor / ours without report() / "
                 f"ours with report() interleaved, {rounds} rounds of {per_block} cells each, every case "
                 "run once untimed first; 10 ms between cells"),
    ]
    for c in (bare, rep):
        s = st[c.key]
        ok = s["p99"] <= 1.2 * fl and s["slow"] == 0
        rows.append(Row("responsiveness", c.label, s["p99"], fl, "floor p99", "ms", _spread(s),
                        f"p99 <= 1.2x floor, no cell > {SLOW_MS:.0f} ms", "yes" if ok else "NO",
                        note=("`nx.submit(spin_report, executor='process')`: report(x) on every iteration of "
                              "`while True: x += 1`; a card per job is displayed, so snapshots are made and "
                              "comm messages sent") if c is rep else
                        "`nx.submit(spin_bare, executor='process')`: a bare `while True: x += 1`, "
                        "stopped by cancel (the worker is killed)"))
    fl2 = st["floor2"]["p99"]
    for c in (threads, bgjobs, fits):
        s = st[c.key]
        if c is threads:
            ok = s["p99"] <= 3 * fl2
            rows.append(Row("responsiveness", c.label, s["p99"], fl2, "floor p99, same rounds", "ms", _spread(s),
                            "p99 <= 3x floor", "yes" if ok else "NO",
                            note=(f"threads share the kernel's GIL; while they run the switch interval is "
                                  f"{interval} s (`nx.switch_interval()`; the interpreter's default is 0.005), and "
                                  f"they give way while the kernel handles a request, at most {grace} s "
                                  "(`nx.give_way()`). "
                                  f"{thread_rounds} rounds of {thread_block} cells, interleaved with the other "
                                  "thread cases and the floor (sampled again in these rounds: "
                                  f"{_spread(st['floor2'])})")))
        else:
            rows.append(Row("responsiveness", c.label, s["p99"], fl2, "floor p99, same rounds", "ms", _spread(s),
                            "reported as is"))
    m, ms = median_spread(rates["ours"])
    d, ds = median_spread(rates["default"])
    rows.append(Row("responsiveness", "the same 2 thread jobs' iterations per second, no cells running", m, d,
                    "default switch interval (0.005 s), no giving way", "it/s", ms, ">= 0.9x", "yes" if m >= 0.9 * d else "NO",
                    note=f"default: {ds}. Each sample: both jobs running, {rate_seconds:.0f} s with no kernel "
                         "activity, iterations read from the jobs' progress before and after; the two settings "
                         f"interleaved, {len(rates['ours'])} rounds, the order reversed every other round"))
    return rows
