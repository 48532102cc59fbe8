"""A missing optional dependency is one line naming what to install, in a
notebook too (IPython shows the line, not a traceback)."""

import subprocess
import sys
import textwrap

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
"""


def run_in_ipython(code, blocked, tmp_path):
    script = tmp_path / "cell.py"
    script.write_text(BLOCK.format(blocked=set(blocked)) + textwrap.dedent(f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        result = shell.run_cell({code!r})
        print("SUCCESS" if result.success else "FAILED")
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={"NOTEBOOK_EXT_HISTORY": str(tmp_path / "h.sqlite3"), "PATH": "/usr/bin:/bin"})
    return [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]


def test_use_dask_without_dask_says_which_extra_in_one_line(tmp_path):
    lines = run_in_ipython("import notebook_ext as nx\nnx.use_dask()", {"dask", "distributed"}, tmp_path)
    assert lines == ["ModuleNotFoundError: the dask executor needs dask, which is not installed: "
                     "pip install 'notebook_ext[dask]'", "FAILED"]


def test_search_results_to_frame_without_pandas_says_so_in_one_line(tmp_path):
    code = ("from notebook_ext.ml import SearchResult\n"
            "SearchResult(best_estimator_=None, best_params_={}, best_score_=0.0, best_index_=0, cv_results_={}).to_frame()")
    lines = run_in_ipython(code, {"pandas"}, tmp_path)
    assert lines == ["ModuleNotFoundError: SearchResult.to_frame() needs pandas, which is not installed: "
                     "pip install pandas", "FAILED"]
