"""`python -m vidiff.cli ...` runs the `vidiff` command."""
import sys

from . import main

sys.exit(main())
