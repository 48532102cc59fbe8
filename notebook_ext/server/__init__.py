"""The Jupyter server extension: the job ledger over HTTP, for the jobs
panel and the cards of the JupyterLab / Notebook 7 extension.

It reads the ledger (`notebook_ext.core.lowlevel.Ledger`) and writes only
what any process may: cancel and stop requests to the ledger's mailbox,
which each job's owner acts on. It never talks to kernels and opens no
port of its own: its handlers live under the server's base URL, behind
Jupyter's authentication and XSRF checks.

Endpoints (under the server's base URL)::

    GET  /notebook-ext/api/jobs                the live jobs and recent ended ones
    GET  /notebook-ext/api/jobs/<id>           one job, with its traceback
    POST /notebook-ext/api/jobs/<id>/cancel    ask its owner to cancel it
    POST /notebook-ext/api/jobs/<id>/stop      ... to stop it and keep what it made
"""

from __future__ import annotations

import os
from typing import Any

from ._feed import JobFeed
from ._handlers import handlers

__all__ = ["JobFeed", "load"]

#: set in the environment of the kernels this server starts: a front end
#: that draws widgets (JupyterLab, Notebook 7, with this extension) shows
#: their outputs, so the kernel need not wait for a card's "hello"
FRONTEND_ENV = "NOTEBOOK_EXT_FRONTEND"


def load(serverapp: Any) -> JobFeed:
    """Add the handlers to ``serverapp``; returns the feed they serve."""
    feed = JobFeed(serverapp)
    web_app = serverapp.web_app
    base = web_app.settings.get("base_url", "/")
    web_app.add_handlers(".*$", handlers(base, feed))
    os.environ.setdefault(FRONTEND_ENV, "jupyter-server")
    serverapp.log.info("notebook_ext: job ledger served at %snotebook-ext/api/jobs (%s)", base, feed.where)
    return feed


def _load_jupyter_server_extension(serverapp: Any) -> None:
    load(serverapp)
