"""`python -m envforge` is the `envforge` command."""

import sys

from envforge.cli import main

sys.exit(main())
