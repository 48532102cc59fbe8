"""The README's run command works: a fresh virtual environment runs exactly its
install part; its Notebook 7 (`jupyter notebook tutorials/`, which the README
advertises too) serves the tutorials; then every tutorial runs with that
environment's own Jupyter and does what its prose promises (the check_NN of
test_tutorials.py)."""

import re

import pytest
from venv_runner import INSTALL_TIMEOUT, Venv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def readme_run_command(readme):
    """The command of the README's first ```bash block (its first line)."""
    block = re.search(r"^```bash\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    assert block, "the README has no ```bash block"
    return block.group(1).strip().splitlines()[0].strip()


def test_readme_run_command_installs_what_every_tutorial_needs(tmp_path):
    venv = Venv(tmp_path)
    command = readme_run_command((venv.repo / "README.md").read_text())
    install, sep, lab = command.partition("&& jupyter lab")
    install = install.strip()
    assert sep and lab.strip().rstrip("/") == "tutorials", command
    assert re.fullmatch(r"""python -m pip install -e (['"]?)\.\[lab\]\1""", install), install
    venv.run(["bash", "-c", install], timeout=INSTALL_TIMEOUT)
    venv.assert_package_from_the_copy()
    # what the README advertises beyond the tutorials: `history().to_frame()` (pandas) and Notebook 7
    frame = venv.run([str(venv.bin / "python"), "-c",
                      "import notebook_ext as nx; print(type(nx.history().to_frame()).__name__)"])
    assert frame.stdout.strip() == "DataFrame", frame.stdout
    venv.assert_notebook_opens_a_tutorial()
    venv.execute_and_check_every_tutorial()
