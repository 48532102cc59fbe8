"""`declared_frontend()`: the environment says a widget front end will show
the kernel (Voila, or NOTEBOOK_EXT_FRONTEND), and the pump believes it from
the start instead of waiting for card.js's hello."""

import comm
import pytest
from comm.base_comm import BaseComm

from notebook_ext.core import Scheduler
from notebook_ext.ui import UpdatePump
from notebook_ext.ui._frontend import declared_frontend

VARIABLES = ("SERVER_SOFTWARE", "VOILA_PREHEAT", "NOTEBOOK_EXT_FRONTEND")


class _QuietComm(BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        pass


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    # Whatever started pytest (a Voila or Jupyter kernel, a shell) declares nothing here.
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: _QuietComm(*a, **k))
    return monkeypatch


def test_nothing_declared():
    assert declared_frontend() is None


@pytest.mark.parametrize("value", ["voila/0.5.13", "voila/1.0.0a1"])
def test_voila_server_software(clean_env, value):
    clean_env.setenv("SERVER_SOFTWARE", value)
    assert declared_frontend() == "voila"


@pytest.mark.parametrize("value", ["", "TornadoServer/6.4", "Apache/2.4", "voila"])
def test_other_server_software(clean_env, value):
    clean_env.setenv("SERVER_SOFTWARE", value)
    assert declared_frontend() is None


def test_voila_preheated_kernel(clean_env):
    # A preheated kernel runs the notebook before any request: Voila gives it
    # VOILA_PREHEAT=True, and the request's SERVER_SOFTWARE only later.
    clean_env.setenv("VOILA_PREHEAT", "True")
    assert declared_frontend() == "voila"
    clean_env.setenv("VOILA_PREHEAT", "False")  # a normal Voila kernel has SERVER_SOFTWARE too
    assert declared_frontend() is None


@pytest.mark.parametrize("value", ["lab", "1", "jupyter-server", "  lab "])
def test_notebook_ext_frontend(clean_env, value):
    clean_env.setenv("NOTEBOOK_EXT_FRONTEND", value)
    assert declared_frontend() == value.strip()


@pytest.mark.parametrize("value", ["", "   ", "0", "off", "OFF", "Off"])
def test_notebook_ext_frontend_off(clean_env, value):
    clean_env.setenv("NOTEBOOK_EXT_FRONTEND", value)
    assert declared_frontend() is None


def test_voila_wins_over_our_variable(clean_env):
    clean_env.setenv("SERVER_SOFTWARE", "voila/0.5.13")
    clean_env.setenv("NOTEBOOK_EXT_FRONTEND", "lab")
    assert declared_frontend() == "voila"


class _Handle:
    def __init__(self):
        self.updates = []

    def update(self, obj, **kw):
        self.updates.append(obj)


def _pump_with_dashboard():
    s = Scheduler(slots=1, history=None)
    pump = UpdatePump(s)
    dash = pump.dashboard()
    handle = _Handle()
    pump.set_display_handle(dash, handle)
    return s, pump, handle


def test_pump_believes_the_environment(clean_env):
    # With a declared front end, the cell's end keeps the dashboard a widget
    # (no static table over it), and does not wait for a hello.
    clean_env.setenv("SERVER_SOFTWARE", "voila/0.5.13")
    s, pump, handle = _pump_with_dashboard()
    try:
        assert pump.frontend_seen
        pump.draw_finished()
        assert handle.updates == []
    finally:
        pump.close()
        s.shutdown()


def test_pump_without_declaration_saves_the_table(clean_env):
    clean_env.setattr("notebook_ext.ui._pump.FRONTEND_GRACE", 0.1)
    s, pump, handle = _pump_with_dashboard()
    try:
        assert not pump.frontend_seen
        pump.draw_finished()  # waits out the grace for a hello, then saves the table
        assert len(handle.updates) == 1 and "text/plain" in handle.updates[0]
    finally:
        pump.close()
        s.shutdown()
