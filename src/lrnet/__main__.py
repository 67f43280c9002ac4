"""``python -m lrnet`` runs the ``lrnet`` command."""

import sys

from lrnet.cli import main

sys.exit(main())
