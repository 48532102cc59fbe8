"""A running job's pyplot figures are its own (`notebook_ext.ui._figures`):
the foreground (the inline backend's ``flush_figures`` after a cell, a
``plt.show()`` or ``plt.close('all')``) never touches a figure a job is still
drawing; numbers stay unique; a finished job's figures are the foreground's;
``HOOKS.undo`` puts pyplot's own registry back."""

from __future__ import annotations

import threading

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.core.lowlevel import HOOKS
from notebook_ext.ui._figures import FiguresByJob, own_figures

plt = pytest.importorskip("matplotlib.pyplot")
from matplotlib._pylab_helpers import Gcf  # noqa: E402


@pytest.fixture
def sched():
    own_figures()
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()
    plt.close("all")


def test_a_running_jobs_figure_is_hidden_from_the_foreground(sched):
    made, finish = threading.Event(), threading.Event()

    def draw():
        fig = plt.figure()
        made.set()
        assert finish.wait(10)
        mine = [m.canvas.figure for m in Gcf.get_all_fig_managers()]
        return fig, mine, plt.gcf() is fig

    mine_fg = plt.figure()
    job = sched.submit(draw, name="drawer")
    assert made.wait(10)
    assert isinstance(Gcf.figs, FiguresByJob)
    # the foreground sees its own figure only, and its close('all') leaves the job's
    assert [m.canvas.figure for m in Gcf.get_all_fig_managers()] == [mine_fg]
    assert plt.gcf() is mine_fg
    assert len(plt.get_fignums()) == 2  # numbers are global: no two figures share one
    plt.close("all")
    assert Gcf.get_all_fig_managers() == []
    finish.set()
    fig, mine, current = job.result(timeout=10)
    assert mine == [fig] and current  # the job saw its figure only, and as the current one
    # the job is over: its figure is the foreground's, as a cell's is when the cell ends
    assert [m.canvas.figure for m in Gcf.get_all_fig_managers()] == [fig]


def test_undo_puts_pyplots_registry_back(sched):
    view = Gcf.figs
    assert isinstance(view, FiguresByJob)
    fig = plt.figure()
    HOOKS.undo()
    assert Gcf.figs is view.shared and type(Gcf.figs).__name__ == "OrderedDict"
    assert [m.canvas.figure for m in Gcf.get_all_fig_managers()] == [fig]
    own_figures()
    assert isinstance(Gcf.figs, FiguresByJob) and Gcf.figs.shared is view.shared
