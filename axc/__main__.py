"""``python -m axc``: the same as the ``axc`` command."""

import sys

from axc.cli import main

sys.exit(main())
