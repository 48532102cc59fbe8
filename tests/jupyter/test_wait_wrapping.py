"""``%wait`` in a real kernel prints a failed job's long error message with
its words whole, in lines an output area shows without breaking a word
(issue 27, "%wait output"; the renderers are tested in tests/ui/test_wrapping.py)."""

import pytest

pytestmark = pytest.mark.kernel

WIDTH = 100  # columns a JupyterLab output area shows at its default size
MESSAGE = ("could not read the training table from the shared folder because the network drive "
           "disconnected while the loader was halfway through the second partition; reconnect the "
           "drive (or copy the table to a local folder) and run the job again")


def test_wait_prints_a_long_error_message_in_whole_words(kernel):
    kernel.execute(f"%%bg -n loader\nraise ValueError({MESSAGE!r})\n")
    _, msgs = kernel.execute("%wait loader")
    text = kernel.stdout(msgs)
    assert text.startswith("loader [failed]") and "ValueError:" in text
    tokens = text.split()
    assert [w for w in MESSAGE.split() if w not in tokens] == [], text
    assert [line for line in text.splitlines() if len(line) > WIDTH] == [], text
