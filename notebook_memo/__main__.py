"""``python -m notebook_memo``: see ``notebook_memo._cli``."""

from ._cli import main

raise SystemExit(main())
