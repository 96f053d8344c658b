"""``python -m heron`` is the ``heron`` command."""

import sys

from heron.cli import main

sys.exit(main())
