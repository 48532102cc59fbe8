"""Renderers: turn immutable `JobSnapshot`s into what cards, tables and
text fallbacks show. No widgets here, no state: pure functions."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core import JobRecord, JobSnapshot
from ..core.lowlevel import CARD_FIELDS, TEXT_WIDTH, format_number, json_number, printable, shorten, wrap_text
from ._display import best_mime

CARD_OUTPUT_CHARS = 6_000  # the card shows the tail; job.output has more
CURVE_POINTS = 200

#: each state's colour where theme.css's variables are missing (a renderer
#: that drops <style>): white text on each keeps a WCAG contrast >= 4.5
STATE_COLOURS = {
    "pending": "#6c757d",
    "queued": "#6c757d",
    "running": "#1f6feb",
    "done": "#1a7f37",
    "failed": "#cf222e",
    "cancelled": "#9a6700",
    "timed_out": "#bc4c00",
    "interrupted": "#6e40c9",
}

#: the state colours (from JupyterLab's theme variables, light and dark)
THEME_CSS = (Path(__file__).parent / "theme.css").read_text(encoding="utf-8")
# The same rules ride along with each static card and table (a saved notebook
# has no widget to load card.css); comments and spacing dropped.
_STATIC_STYLE = "<style>" + re.sub(r"\s+", " ", re.sub(r"/\*.*?\*/", "", THEME_CSS, flags=re.S)).strip() + "</style>"


def state_badge(state: str) -> str:
    """A state as a coloured badge, for static HTML (theme.css's colours, or
    plain fall-backs where a renderer drops the style sheet)."""
    e = html.escape
    if state not in STATE_COLOURS:
        return f"<span class='nbx-state' style='background:#555;color:#fff'>{e(state)}</span>"
    return (f"<span class='nbx-state nbx-state-{state}' style='background:var(--nbx-{state}, "
            f"{STATE_COLOURS[state]});color:var(--nbx-on-state, #fff);border-radius:8px;padding:0 6px'>"
            f"{e(state)}</span>")


_ERROR_STYLE = f"color:var(--nbx-error-text, {STATE_COLOURS['failed']})"


def error_html(text: str) -> str:
    return f"<span class='nbx-error' style='{_ERROR_STYLE}'>{html.escape(text)}</span>"


_num = json_number


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(seconds), 60)
        return f"{m}:{s:02d}" if m else f"{s}s"
    h, rest = divmod(int(seconds), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def _thin(points: tuple, limit: int) -> list[list[float]]:
    if len(points) > limit:
        step = len(points) / limit
        points = tuple(points[int(i * step)] for i in range(limit - 1)) + (points[-1],)
    return [[_num(float(a)), _num(float(b))] for a, b in points]


def curve_metric(snap: JobSnapshot) -> str | None:
    """Which metric the card plots: the job's ``detail.curve``, else the first one."""
    name = snap.curve
    if name in snap.metrics:
        return name
    return next(iter(snap.metrics), None)


def snapshot_state(snap: JobSnapshot, children: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON a card draws (one comm message per update)."""
    p = snap.progress
    curve = curve_metric(snap)
    detail = snap.detail
    out = snap.output
    state: dict[str, Any] = {
        "id": snap.id,
        "name": snap.name,
        "kind": snap.kind,
        "state": snap.state,
        "priority": snap.priority,
        "executor": snap.executor,
        "attempts": snap.attempts,
        "retries": snap.retries,
        "elapsed": _num(snap.elapsed),
        "done": _num(p.done),
        "total": _num(p.total),
        "fraction": _num(p.fraction),
        "message": p.message,
        "rate": _num(p.rate),
        "eta": _num(p.eta),
        "metrics": {k: _num(v) for k, v in snap.latest_metrics().items()},
        "curve": {"name": curve, "points": _thin(snap.metrics[curve], CURVE_POINTS)} if curve else None,
        "output": out[-CARD_OUTPUT_CHARS:],
        "output_chars": len(out),
        "error": snap.error,
        "traceback": snap.traceback,
        "cancel_requested": snap.cancel_requested,
        "stop_requested": snap.stop_requested,
        "can_stop": bool(detail is not None and detail.can_stop),
        "resumed_note": resumed_note(snap),
        "abandoned": snap.abandoned,
        "cancel_note": snap.cancel_note,
        "after": list(snap.after),
        "parent": snap.parent,
        "dashboard_link": snap.dashboard_link,
        "children": dict(children) if children else None,
        "children_text": children_text(children) if children else None,
        "unit": detail.unit if detail is not None else None,
        "sequence": snap.sequence,
        **CARD_FIELDS,
    }
    if detail is not None:  # the detail says what it adds, among the fields the card draws
        state.update((k, v) for k, v in detail.card_fields(not snap.finished).items() if k in CARD_FIELDS)
    return state


def children_summary(child_states: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    total = 0
    for s in child_states:
        counts[s] = counts.get(s, 0) + 1
        total += 1
    counts["total"] = total
    return counts


#: the order a card lists its sub-jobs' states in: what is still going first
_CHILD_STATE_ORDER = ("running", "queued", "pending", "done", "failed", "timed_out", "cancelled", "interrupted")


def children_text(counts: Mapping[str, int]) -> str:
    """A `children_summary` in words: "1 sub-job done", "3 sub-jobs: 2 done, 1 running"."""
    total = counts.get("total", 0)
    rank = {s: i for i, s in enumerate(_CHILD_STATE_ORDER)}
    states = sorted((k for k in counts if k != "total" and counts[k]), key=lambda k: (rank.get(k, len(rank)), k))
    noun = "sub-job" if total == 1 else "sub-jobs"
    words = [f"{counts[k]} {k.replace('_', ' ')}" for k in states]
    if not words:
        return f"{total} {noun}"
    if len(words) == 1:
        return f"{total} {noun} {states[0].replace('_', ' ')}"
    return f"{total} {noun}: {', '.join(words)}"


def progress_text(snap: JobSnapshot, width: int = 20) -> str:
    p = snap.progress
    if p.total:
        frac = p.fraction or 0.0
        filled = int(round(frac * width))
        return f"[{'#' * filled}{'.' * (width - filled)}] {format_number(p.done)}/{format_number(p.total)} {frac:4.0%}"
    if p.done:
        unit = snap.detail.unit if snap.detail is not None and snap.detail.unit else "steps"
        return f"{format_number(p.done)} {unit}"
    return ""


def resumed_note(snap: JobSnapshot) -> str | None:
    """"resumed from step N" (training) or "resumed after N items" (preprocessing)."""
    n = snap.detail.resumed_from if snap.detail is not None else None
    if n is None:
        return None
    return f"resumed after {format_number(n)} items" if snap.kind == "preprocess" else f"resumed from step {n}"


def status_line(snap: JobSnapshot, width: int | None = None) -> str:
    """One line per job, for terminals and saved notebooks. With a
    ``width`` (what ``%wait`` prints), the line is broken at spaces into
    lines of at most that many characters, indented under the text after
    the job's name and state."""
    parts = [f"{snap.name} [{snap.state}]"]
    prog = progress_text(snap)
    if prog:
        parts.append(prog)
    if snap.elapsed is not None:
        parts.append(format_duration(snap.elapsed))
    if snap.state == "running" and snap.progress.eta is not None:
        parts.append(f"ETA {format_duration(snap.progress.eta)}")
    metrics = snap.latest_metrics()
    if metrics:
        parts.append(" ".join(f"{k}={format_number(v)}" for k, v in list(metrics.items())[:4]))
    if snap.progress.message:
        parts.append(snap.progress.message)
    if snap.error and snap.state != "done":
        parts.append(snap.error)
    parts.extend(f"({note})" for note in _notes(snap))
    if (note := resumed_note(snap)) is not None:
        parts.append(f"({note})")
    if snap.cancel_note:
        parts.append(f"({snap.cancel_note})")
    line = printable("  ".join(parts))
    if width is None:
        return line
    head = len(printable(parts[0])) + 2
    return "\n".join(wrap_text(line, width, indent=head if head <= width // 3 else 4))


def _notes(snap: JobSnapshot) -> tuple[str, ...]:
    return snap.detail.notes() if snap.detail is not None else ()


def summary_html(snap: JobSnapshot) -> str:
    """A static card, saved in the notebook for viewers without widgets."""
    e = html.escape
    rows = [f"<b class='nbx-name'>{e(snap.name)}</b> {state_badge(snap.state)}"]
    prog = progress_text(snap)
    if prog:
        rows.append(f"<code>{e(prog)}</code>")
    if snap.elapsed is not None:
        rows.append(f"elapsed {e(format_duration(snap.elapsed))}")
    metrics = snap.latest_metrics()
    if metrics:
        rows.append(e(", ".join(f"{k}={format_number(v)}" for k, v in metrics.items())))
    rows.extend(e(note) for note in _notes(snap))
    if (note := resumed_note(snap)) is not None:
        rows.append(e(note))
    if snap.error and snap.state != "done":
        rows.append(error_html(snap.error))
    if snap.cancel_note:
        rows.append(f"<i>{e(snap.cancel_note)}</i>")
    body = " &middot; ".join(rows)
    extra = ""
    for table in (snap.detail.tables() if snap.detail is not None else ()):
        extra += f"<pre>{e(table)}</pre>"
    if snap.traceback:
        extra += (f"<details><summary>traceback</summary><pre class='nbx-traceback' "
                  f"style='{_ERROR_STYLE}'>{e(snap.traceback)}</pre></details>")
    for shown in snap.displays:  # display() and figures, for viewers without widgets
        extra += f"<div class='nbx-display'>{_display_html(best_mime(shown))}</div>"
    if snap.output:
        extra += (f"<details><summary>output</summary><pre>{e(snap.output[-CARD_OUTPUT_CHARS:])}"
                  "</pre></details>")
    return (f"{_STATIC_STYLE}<div class='nbx-static nbx-card-static' style='font-family:sans-serif;"
            f"font-size:13px'>{body}{extra}</div>")


def _display_html(d: dict[str, Any]) -> str:
    if d["mime"] in ("text/html", "image/svg+xml"):
        return str(d["data"])  # the user's own output, as Jupyter shows it in a cell
    if d["mime"] in ("image/png", "image/jpeg"):
        return f"<img src='data:{d['mime']};base64,{html.escape(str(d['data']))}' style='max-width:100%'>"
    return f"<pre>{html.escape(str(d['data']))}</pre>"


def static_bundle(snap: JobSnapshot) -> dict[str, str]:
    """A card as renderers without widgets show it: one status line, and the
    static card (state, progress, metrics, error, traceback, displays)."""
    return {"text/plain": status_line(snap), "text/html": summary_html(snap)}


def _progress_cell(done: float | None, total: float | None) -> str:
    if total:
        return f"{format_number(done or 0)}/{format_number(total)}"
    return format_number(done) if done else ""


def jobs_table(snaps: list[JobSnapshot]) -> tuple[str, str]:
    """(text, html) tables of jobs: name, state, progress, elapsed, priority."""
    header = ("name", "state", "progress", "elapsed", "priority", "executor", "error")
    rows = []
    for s in snaps:
        rows.append((s.name, s.state, _progress_cell(s.progress.done, s.progress.total),
                     format_duration(s.elapsed), str(s.priority),
                     s.executor, (s.error or "") if s.state != "done" else ""))
    return _table(header, rows, wrap="error")


def dashboard_bundle(view: Mapping[str, Any]) -> dict[str, str]:
    """A dashboard's page (its ``view``) as renderers without widgets show it."""
    counts = ", ".join(f"{n} {state}" for state, n in sorted((view.get("counts") or {}).items()))
    title = f"{view.get('title', 'jobs')}: {view.get('total', 0)} jobs" + (f" ({counts})" if counts else "")
    rows = [(r["name"], r["state"], _progress_cell(r["done"], r["total"]), format_duration(r["elapsed"]),
             str(r["priority"]), r["executor"]) for r in view.get("rows") or ()]
    text, table = _table(("name", "state", "progress", "elapsed", "priority", "executor"), rows)
    shown = view.get("matching", len(rows))
    more = f"\n(rows {view['first']}-{view['last']} of {shown})" if rows and shown > len(rows) else ""
    return {"text/plain": f"{printable(title)}\n{text}{more}",
            "text/html": f"<div class='nbx-static'><b>{html.escape(title)}</b>{table}"
                         f"{html.escape(more)}</div>"}


def history_table(records: "list[JobRecord]") -> tuple[str, str]:
    """Earlier jobs; a job with a checkpoint to go on from says ``%resume NAME``."""
    header = ("name", "state", "kind", "started", "duration", "resume", "error", "session")
    rows = []
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started)) if r.started else ""
        rows.append((r.name, r.state, r.kind, started, format_duration(r.duration),
                     f"%resume {r.name}" if r.resumable else "", shorten(r.error or "", 80), r.session))
    return _table(header, rows, wrap="error")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], wrap: str | None = None,
           width: int = TEXT_WIDTH) -> tuple[str, str]:
    """(text, html) of a table. The text's ``wrap`` column (free text, such
    as an error message) takes the room the others leave of ``width`` (20
    characters at least), its cells broken at spaces into lines under it."""
    rows = [tuple(printable(str(c)) for c in r) for r in rows]  # names come from users: no raw escapes
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    col = header.index(wrap) if wrap is not None else -1
    if wrap is not None:
        widths[col] = min(widths[col], max(20, width - sum(widths) + widths[col] - 2 * (len(header) - 1)))
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [line(header), line(tuple("-" * w for w in widths))]
    for r in rows:
        if wrap is None:
            lines.append(line(r))
            continue
        first, *more = wrap_text(r[col], widths[col])
        lines.append(line(r[:col] + (first,) + r[col + 1:]))
        lines.extend(line(tuple(part if i == col else "" for i in range(len(r)))) for part in more)
    text = "\n".join(lines)
    e = html.escape
    head = "".join(f"<th style='text-align:left'>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f"<td>{state_badge(c)}</td>" if i == 1
            else f"<td>{e(c)}</td>" for i, c in enumerate(r)
        ) + "</tr>"
        for r in rows
    )
    return text, f"{_STATIC_STYLE}<table class='nbx-static nbx-jobs-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
