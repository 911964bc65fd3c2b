"""``python -m galvana``: the ``galvana`` command without its console script."""

import sys

from galvana.cli import main

sys.exit(main())
