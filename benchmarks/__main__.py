"""Run every benchmark and print one table: ``python -m benchmarks``.

``--quick`` uses tiny sizes (a smoke run: the numbers mean nothing);
``--only NAME`` runs one benchmark; ``--out PATH`` writes the table there
(default ``benchmarks/results.md``; quick runs write nowhere unless asked).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from ._table import Row, render

NAMES = ["responsiveness", "search", "overhead", "progress", "preprocess", "items", "serving", "dashboard", "dask",
         "checkpoint", "ledger", "panel", "soak"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the scripts work")
    parser.add_argument("--only", choices=NAMES, action="append", help="run only these")
    parser.add_argument("--out", help="where to write the table")
    args = parser.parse_args(argv)
    os.environ.setdefault("NOTEBOOK_EXT_HISTORY", "off")
    rows: list[Row] = []
    failed = []
    for name in args.only or NAMES:
        t0 = time.perf_counter()
        print(f"# {name} …", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            rows.extend(module.run(args.quick))
        except Exception:  # report it, keep going with the others
            traceback.print_exc()
            failed.append(name)
            rows.append(Row(name, "FAILED", None, None, "", "", note="the benchmark raised; see stderr"))
        print(f"# {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    table = render(rows, args.quick)
    print(table)
    out = args.out or (None if args.quick else str(Path(__file__).parent / "results.md"))
    if out:
        Path(out).write_text("# Benchmark results\n\nMade by `python -m benchmarks`.\n\n" + table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
