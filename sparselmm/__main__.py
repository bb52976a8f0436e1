"""``python -m sparselmm``: the command line (see :mod:`sparselmm.cli`)."""

import sys

from .cli import main

sys.exit(main())
