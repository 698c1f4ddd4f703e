"""``python -m monitor.cli``: the ``monitor`` command."""

import sys

from monitor.cli import main

sys.exit(main())
