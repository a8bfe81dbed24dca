"""``python -m smoothadv`` (and ``torchrun -m smoothadv``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
