"""``python -m desktop_sr.cli``: same as the ``desktop-sr`` command."""

import sys

from .entry import main

sys.exit(main())
