"""The job magics: ``%%bg``, ``%jobs``, ``%job``, ``%cancel``, ``%wait``,
``%result``, ``%retry``. Each parses, calls the Python API, displays."""

from __future__ import annotations

import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..cells import submit_cell
from ..core import JobCancelled
from ..core.lowlevel import TEXT_WIDTH, describe_error, wrap_text
from . import _args as A


def _blank_lines_on_top(text: str) -> int:
    lines = text.splitlines()
    return next((i for i, line in enumerate(lines) if line.strip()), len(lines))


@magics_class
class JobMagics(Magics):
    @magic_arguments()
    @A.job_options(("loop", "thread", "process", "dask"),
                   "thread (default), loop (default when the cell uses await), process, dask",
                   out_help="variable that gets the value when the job succeeds")
    @argument("-p", "--priority", type=A.integer("--priority"), default=0, help="higher runs first")
    @argument("--timeout", type=A.seconds("--timeout"), help="seconds per attempt")
    @argument("--retries", type=A.count("--retries"), default=0, help="re-runs after an exception")
    @argument("--after", nargs="+", default=[], metavar="NAME", type=A.job_name, help="jobs that must finish first")
    @cell_magic
    def bg(self, line: str, cell: str):
        """Run this cell in the background; its card shows under the cell.

        The value of the cell's last expression is the job's result.
        """
        args = parse_argstring(self.bg, line)
        sched = A.scheduler()
        A.check_executor(sched, args.executor)
        after = A.existing_jobs(sched, args.after)
        code = self.shell.transform_cell(cell)
        # Tracebacks number lines as the editor does: the magic line is 1, and
        # the blank lines IPython drops from the top of the body still count.
        first_line = 2 + _blank_lines_on_top(cell) - _blank_lines_on_top(code)
        try:
            job = submit_cell(code, self.shell.user_ns, executor=args.executor,
                              name=args.name, priority=args.priority, timeout=args.timeout,
                              retries=args.retries, after=after, out=args.out, first_line=first_line,
                              scheduler=sched)
        except (SyntaxError, TypeError, ValueError) as exc:
            raise UsageError(f"%%bg: {exc}") from None
        A.show_job(self.shell, job)

    @magic_arguments()
    @argument("--history", action="store_true", help="add jobs of earlier kernel sessions")
    @argument("--live", action="store_true", help="show the live dashboard")
    @line_magic
    def jobs(self, line: str):
        """List jobs: name, state, progress, elapsed, priority."""
        from ..ui import history_table, jobs_table, show_dashboard

        args = parse_argstring(self.jobs, line)
        sched = A.scheduler()
        if args.live:
            show_dashboard(sched)
            return
        text, html = jobs_table([j.snapshot() for j in sched.all_jobs()])
        display({"text/plain": text, "text/html": html}, raw=True)
        if args.history:
            import sqlite3

            try:
                records = sched.store.load(sessions="earlier", limit=200)
            except sqlite3.Error as exc:  # says which file and what to do, in one line
                print(f"earlier sessions: {exc}")
                return
            text, html = history_table(records)
            display({"text/plain": "earlier sessions:\n" + text,
                     "text/html": "<b>earlier sessions</b>" + html}, raw=True)

    @magic_arguments()
    @argument("name", type=A.job_name, help="the job")
    @line_magic
    def job(self, line: str):
        """Show a job's card again."""
        args = parse_argstring(self.job, line)
        (job,) = A.existing_jobs(A.scheduler(), [args.name])
        A.show_job(self.shell, job)

    @magic_arguments()
    @argument("names", nargs="*", metavar="NAME", type=A.job_name)
    @argument("--all", action="store_true", help="cancel every active job")
    @line_magic
    def cancel(self, line: str):
        """Cancel jobs by name (or ``--all``)."""
        args = parse_argstring(self.cancel, line)
        sched = A.scheduler()
        if not args.names and not args.all:
            raise UsageError("%cancel: name the jobs to cancel, or use --all")
        if args.all:
            print(f"cancel requested for {sched.cancel_all('cancelled with %cancel --all')} job(s)")
            return
        for job in A.existing_jobs(sched, args.names):
            print(f"{job.name}: {'cancel requested' if job.cancel('cancelled with %cancel') else job.state}")

    @magic_arguments()
    @argument("names", nargs="*", metavar="NAME", type=A.job_name, help="default: every active job")
    @argument("--timeout", type=A.seconds("--timeout"), help="stop waiting after this many seconds")
    @line_magic
    def wait(self, line: str):
        """Block this cell until the jobs end; the cards keep moving.
        Interrupting the kernel stops the waiting, not the jobs."""
        from ..ui import get_pump, status_line

        args = parse_argstring(self.wait, line)
        sched = A.scheduler()
        jobs = A.existing_jobs(sched, args.names) if args.names else [j for j in sched.all_jobs() if not j.done()]
        try:
            done, pending = sched.wait(*jobs, timeout=args.timeout)
        except KeyboardInterrupt:
            pending = [j for j in jobs if not j.done()]
            print(f"stopped waiting; {len(pending)} job(s) keep running")
            return
        get_pump(sched).resend(jobs)  # tag final states with this cell (saved notebooks)
        for job in jobs:
            print(status_line(job.snapshot(), width=TEXT_WIDTH))
        if pending:
            print("\n".join(wrap_text(f"still running after {args.timeout:g} s: {', '.join(j.name for j in pending)}",
                                       indent=4)))

    @magic_arguments()
    @argument("name", type=A.job_name, help="the job")
    @argument("--full", action="store_true",
              help="for a failed job, print its traceback with every frame (notebook_ext's and asyncio's too)")
    @line_magic
    def result(self, line: str):
        """The job's value; re-raises its exception if it failed (showing the
        job's own frames, with the cell's lines)."""
        args = parse_argstring(self.result, line)
        (job,) = A.existing_jobs(A.scheduler(), [args.name])
        if not job.done():
            raise UsageError(f"job {job.name!r} is still {job.state}; use `%wait {job.name}` first")
        exc = job.exception()
        if isinstance(exc, JobCancelled):
            raise UsageError(f"job {job.name!r} {job.state}: {exc.reason}")
        if exc is not None and args.full:
            print(job.full_traceback or describe_error(exc), file=sys.stderr)
            return None
        if exc is not None:
            raise exc  # shown as job.traceback (`_render_traceback_`, set when the job ended)
        return job.result()

    @magic_arguments()
    @argument("name", type=A.job_name, help="the job")
    @line_magic
    def retry(self, line: str):
        """Run a finished job again (a preprocessing job: only its failed items)."""
        args = parse_argstring(self.retry, line)
        sched = A.scheduler()
        (job,) = A.existing_jobs(sched, [args.name])
        try:
            new = sched.retry(job)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        A.show_job(self.shell, new)
