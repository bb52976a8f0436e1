"""``python -m sparselmm``: the command line (see :mod:`sparselmm.cli`)."""

import sys

from sparselmm.cli import main

sys.exit(main())
