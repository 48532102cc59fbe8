"""The core stands alone: no Jupyter imports, and it works in a plain script."""

import subprocess
import sys
import textwrap


def test_core_imports_no_jupyter_modules():
    code = textwrap.dedent("""
        import sys
        import notebook_ext.core
        bad = sorted(m for m in sys.modules
                     if m.split('.')[0] in {'IPython', 'ipywidgets', 'ipykernel', 'anywidget', 'traitlets'})
        print(bad)
        assert not bad, bad
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout


def test_job_from_a_plain_python_script_completes(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import asyncio
        import notebook_ext as nx

        def square(x):
            for _ in nx.progress(range(3)):
                pass
            return x * x

        async def main():
            jobs = [nx.submit(square, i) for i in range(5)]
            return [await j for j in jobs]

        if __name__ == "__main__":  # as with multiprocessing: workers import the script
            print(asyncio.run(main()), nx.submit(square, 9, executor="process").result(60))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0, 1, 4, 9, 16] 81"


def test_logging_from_a_job_goes_to_its_output_even_with_handlers_made_before(tmp_path):
    script = tmp_path / "logs.py"
    script.write_text(textwrap.dedent("""
        import logging, sys
        logging.basicConfig(level=logging.INFO)       # a handler on the raw stderr, made first
        import notebook_ext as nx

        def job():
            logging.getLogger("prep").warning("dropped %d rows", 3)
            return 1

        j = nx.submit(job)
        j.result(10)
        logging.getLogger("main").warning("foreground line")
        print(repr(j.output))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr("WARNING:prep:dropped 3 rows\n")
    assert "foreground line" in out.stderr and "dropped" not in out.stderr
