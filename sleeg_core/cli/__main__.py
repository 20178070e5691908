"""`python -m sleeg_core.cli ...` (e.g. under torchrun) runs the `sleeg` command line."""

import sys

from sleeg_core.cli.app import main

sys.exit(main())
