"""``python -m heron.data.synthetic --out DIR --n N --seed S`` (same as ``heron data synth``)."""

import sys

from heron.data.synthetic.cli import main

sys.exit(main())
