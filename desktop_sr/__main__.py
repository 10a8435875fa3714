"""``python -m desktop_sr``: same as the ``desktop-sr`` command."""

import sys

from .cli import main

sys.exit(main())
