"""In a real kernel: ``%unload_ext notebook_ext`` puts back everything the
extension patched, and ``asyncio.run`` in a cell finalizes async
generators before it returns, as stock asyncio does."""

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

ORIGINALS = (
    "import sys, threading, asyncio, logging, concurrent.futures as cf, tqdm.std\n"
    "from IPython import get_ipython\n"
    "pub = get_ipython().display_pub\n"
    "def snapshot():\n"
    "    return dict(out=sys.stdout, err=sys.stderr, sys_class=type(sys), start=vars(threading.Thread)['start'],\n"
    "                submit=vars(cf.ThreadPoolExecutor)['submit'], tqdm_new=vars(tqdm.std.tqdm)['__new__'],\n"
    "                run=asyncio.run, publish=vars(pub).get('publish'), clear=vars(pub).get('clear_output'),\n"
    "                meta_path=list(sys.meta_path), handlers=[h.stream for h in logging.getLogger().handlers\n"
    "                                                          if isinstance(h, logging.StreamHandler)])\n"
    "before = snapshot()\n"
)


def test_unload_ext_puts_every_patched_attribute_back(bare_kernel):
    k = bare_kernel
    k.execute(ORIGINALS)
    k.execute("%load_ext notebook_ext\nimport notebook_ext as nx")
    # use every hook: a job that prints, logs, shows a bar and a display, in a thread of its own
    k.execute("%%bg -n user\nimport threading, tqdm, logging\nfrom IPython.display import display\n"
              "print('hi'); display('shown')\nfor _ in tqdm.tqdm(range(3)): pass\n"
              "t = threading.Thread(target=print, args=('from a thread',)); t.start(); t.join()\n42")
    k.execute("%wait user")
    assert k.value("nx.jobs['user'].result()") == "42"
    changed = k.value("sorted(key for key, value in snapshot().items() if value != before[key])")
    assert {"out", "err", "start", "submit", "tqdm_new", "run", "publish"} <= set(eval(changed)), changed
    k.execute("%unload_ext notebook_ext")
    assert k.value("[key for key, value in snapshot().items() if value != before[key]]") == "[]"
    assert k.value("sys.stdout is before['out'] and vars(threading.Thread)['start'] is before['start']") == "True"
    # and the extension loads again on top of the originals
    k.execute("%load_ext notebook_ext")
    k.execute("%%bg -n again\nprint('again'); 7")
    k.execute("%wait again")
    assert k.value("nx.jobs['again'].output") == "'again\\n'"


def test_asyncio_run_in_a_cell_finalizes_async_generators_before_it_returns(kernel):
    kernel.execute(
        "import asyncio\nevents = []\n"
        "async def agen():\n    try:\n        yield 1\n        yield 2\n    finally:\n        events.append('finally')\n"
        "async def main():\n    async for _ in agen():\n        break\n    return 'main done'\n")
    kernel.execute("events.append(asyncio.run(main()))")
    assert kernel.value("events") == "['finally', 'main done']"
