"""`python -m clusterdns` is the `clusterdns` command."""

import sys

from clusterdns.cli import main

sys.exit(main())
