"""``python -m desktop_sr_trainer CONFIG``: the same as the ``desktop-sr-train`` command."""

from .cli import main

raise SystemExit(main())
