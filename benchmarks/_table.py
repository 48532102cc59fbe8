"""Rows and the one table every benchmark feeds."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from importlib import metadata


@dataclass
class Row:
    benchmark: str
    case: str
    ours: float
    anchor: float | None
    anchor_name: str
    unit: str
    spread: str = ""
    target: str = ""
    met: str = ""
    note: str = ""

    @property
    def ratio(self) -> str:
        if self.anchor in (None, 0) or self.ours is None:
            return ""
        return f"{self.ours / self.anchor:.2f}x"


def median_spread(values: list[float]) -> tuple[float, str]:
    """Median and min–max of repeated measurements."""
    values = sorted(values)
    return statistics.median(values), f"{fmt(values[0])}–{fmt(values[-1])} (n={len(values)})"


def fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for pkg in ("ipykernel", "ipywidgets", "scikit-learn", "numpy", "distributed"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return (f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}; "
            + ", ".join(versions))


def render(rows: list[Row], quick: bool) -> str:
    head = ["benchmark", "case", "ours", "anchor", "anchor is", "ratio", "unit", "spread (ours)", "target", "met"]
    lines = [f"Measured {machine()}{' (quick sizes: not representative)' if quick else ''}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.benchmark, r.case, fmt(r.ours), fmt(r.anchor), r.anchor_name, r.ratio, r.unit, r.spread,
                 r.target, r.met]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    notes = [f"- **{r.benchmark} / {r.case}**: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
