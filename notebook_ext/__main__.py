"""``python -m notebook_ext``: the job ledger from a terminal (see `notebook_ext.cli`)."""

import sys

from .cli import main

sys.exit(main())
