"""The Binder files alone build a working environment: a fresh virtual
environment gets binder/requirements.txt and binder/postBuild, then runs every
tutorial with its own Jupyter, checked as test_tutorials.py checks them."""

import pytest
from venv_runner import INSTALL_TIMEOUT, Venv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_binder_environment_runs_every_tutorial(tmp_path):
    venv = Venv(tmp_path)
    venv.run([str(venv.bin / "python"), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
             timeout=INSTALL_TIMEOUT)
    venv.run(["bash", "binder/postBuild"], timeout=INSTALL_TIMEOUT)
    venv.assert_package_from_the_copy()
    venv.execute_and_check_every_tutorial()
