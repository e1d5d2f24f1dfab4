"""``python -m auditkit`` is the ``auditkit`` command."""

import sys

from .cli import main

sys.exit(main())
