"""Whether the environment says a widget front end will show this kernel.

The pump otherwise learns it from card.js's hello, which comes too late
where the notebook runs before any page connects (Voila executes every
cell, then sends the page).
"""

from __future__ import annotations

import os


def declared_frontend() -> str | None:
    """A short reason when the kernel's environment declares a front end
    that draws widgets, else None.

    - ``"voila"``: Voila starts its kernels with ``SERVER_SOFTWARE=voila/<version>``
      (voila/handler.py), or, for a preheated kernel, ``VOILA_PREHEAT=True``
      (voila/voila_kernel_manager.py; the request's variables come later).
    - ``NOTEBOOK_EXT_FRONTEND``'s value, when it is set and not "0" or "off"
      (notebook_ext's Jupyter server extension sets it for its kernels).
    """
    if os.environ.get("SERVER_SOFTWARE", "").startswith("voila/") or os.environ.get("VOILA_PREHEAT") == "True":
        return "voila"
    declared = os.environ.get("NOTEBOOK_EXT_FRONTEND", "").strip()
    if declared and declared.lower() not in ("0", "off"):
        return declared
    return None
