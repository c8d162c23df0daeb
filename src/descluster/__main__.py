"""``python -m descluster`` runs the command line (see :mod:`descluster.cli`)."""

import sys

from .cli import main

sys.exit(main())
